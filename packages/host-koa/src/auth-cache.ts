import type { AvatarGen, UserView } from '@avatargen/core';

interface Cached<T> {
  value: T;
  until: number;
}

/**
 * A very short-lived per-process memory of sessions and accounts in front of PostgreSQL. A page
 * of the gallery makes a hundred thumbnail requests with one cookie; without it each would read
 * the session and the account again. Writes and destroys in this process update it at once;
 * a logout or a disabled account in another process takes effect here within `ttlMs`.
 */
export class AuthCache {
  private readonly sessions = new Map<string, Cached<Record<string, unknown> | undefined>>();
  private readonly users = new Map<number, Cached<UserView | null>>();

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

  /** The store koa-session uses: gen.sessions behind the short memory. */
  readonly store = {
    get: async (key: string) => {
      const hit = this.fresh(this.sessions, key);
      // koa-session copies the fields into its own object; a copy keeps the cached one intact.
      if (hit) return hit.value ? { ...hit.value } : undefined;
      const data = await this.gen.sessions.get(key);
      return this.remember(this.sessions, key, data) ? { ...data } : undefined;
    },
    set: async (key: string, data: Record<string, unknown>, maxAge: number) => {
      await this.gen.sessions.set(key, data, maxAge);
      this.remember(this.sessions, key, { ...data });
    },
    destroy: async (key: string) => {
      this.sessions.delete(key);
      await this.gen.sessions.destroy(key);
    },
  };

  async user(id: number): Promise<UserView | null> {
    const hit = this.fresh(this.users, id);
    if (hit) return hit.value;
    return this.remember(this.users, id, await this.gen.users.findById(id));
  }
}
