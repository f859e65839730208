import type { AvatarGen, UserView } from '@avatargen/core';

interface Cached<T> {
  value: T;
  until: number;
}

/**
 * A very short-lived per-process memory of sessions and accounts in front of PostgreSQL. A page
 * of the gallery makes a hundred thumbnail requests with one cookie; without it each would read
 * the session and the account again. Requests that miss together share one read (when the entry
 * expires under load, fifty requests would otherwise queue fifty reads of the same row).
 * Writes and destroys in this process update it at once; a logout or a disabled account in
 * another process takes effect here within `ttlMs`.
 */
export class AuthCache {
  private readonly sessions = new Map<string, Cached<Record<string, unknown> | undefined>>();
  private readonly users = new Map<number, Cached<UserView | null>>();
  private readonly loadingSessions = new Map<string, Promise<Record<string, unknown> | undefined>>();
  private readonly loadingUsers = new Map<number, Promise<UserView | null>>();

  constructor(
    private readonly gen: AvatarGen,
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  private remember<K, T>(map: Map<K, Cached<T>>, key: K, value: T): T {
    if (this.ttlMs <= 0) return value;
    if (map.size >= this.maxEntries) map.delete(map.keys().next().value as K);
    map.set(key, { value, until: Date.now() + this.ttlMs });
    return value;
  }

  private fresh<K, T>(map: Map<K, Cached<T>>, key: K): Cached<T> | undefined {
    const hit = map.get(key);
    if (hit && hit.until > Date.now()) return hit;
    if (hit) map.delete(key);
    return undefined;
  }

  /**
   * The cached value, or one read shared by everyone who asks while it runs. A write to the key
   * drops the shared read from `loading`, so its possibly older answer is not remembered.
   */
  private async read<K, T>(map: Map<K, Cached<T>>, loading: Map<K, Promise<T>>, key: K, load: () => Promise<T>): Promise<T> {
    const hit = this.fresh(map, key);
    if (hit) return hit.value;
    let pending = loading.get(key);
    if (!pending) {
      const started: Promise<T> = load().then(
        (value) => {
          if (loading.get(key) === started) {
            loading.delete(key);
            this.remember(map, key, value);
          }
          return value;
        },
        (error: unknown) => {
          if (loading.get(key) === started) loading.delete(key);
          throw error;
        },
      );
      pending = started;
      loading.set(key, pending);
    }
    return pending;
  }

  /** The store koa-session uses: gen.sessions behind the short memory. */
  readonly store = {
    get: async (key: string) => {
      const data = await this.read(this.sessions, this.loadingSessions, key, () => this.gen.sessions.get(key));
      // koa-session copies the fields into its own object; a copy keeps the cached one intact.
      return data ? { ...data } : undefined;
    },
    // a read that started before the write finished may hold the old row: it is dropped after
    // the write too, so it cannot overwrite what the write remembers
    set: async (key: string, data: Record<string, unknown>, maxAge: number) => {
      await this.gen.sessions.set(key, data, maxAge);
      this.loadingSessions.delete(key);
      this.remember(this.sessions, key, { ...data });
    },
    destroy: async (key: string) => {
      this.loadingSessions.delete(key);
      this.sessions.delete(key);
      await this.gen.sessions.destroy(key);
      this.loadingSessions.delete(key);
      this.sessions.delete(key);
    },
  };

  async user(id: number): Promise<UserView | null> {
    return this.read(this.users, this.loadingUsers, id, () => this.gen.users.findById(id));
  }
}
