import { createHash } from 'node:crypto';
import type { AvatarGen, UserView } from '@avatargen/core';

interface Cached<T> {
  value: T;
  until: number;
}

/**
 * A very short-lived per-process memory of sessions, accounts and API tokens in front of
 * PostgreSQL. A page of the gallery makes a hundred thumbnail requests with one cookie, and a
 * script's fifty clients share one token; without it each request would read the session (or the
 * token) and the account again. Requests that miss together share one read (when the entry
 * expires under load, fifty requests would otherwise queue fifty reads of the same row).
 * Writes and destroys in this process update it at once (a token revoked here is forgotten at
 * once); a logout, a revoked token or a disabled account in another process takes effect here
 * within `ttlMs`.
 */
export class AuthCache {
  private readonly sessions = new Map<string, Cached<Record<string, unknown> | undefined>>();
  private readonly users = new Map<number, Cached<UserView | null>>();
  private readonly loadingSessions = new Map<string, Promise<Record<string, unknown> | undefined>>();
  private readonly loadingUsers = new Map<number, Promise<UserView | null>>();
  /** Keyed by the token's SHA-256, so the map holds no usable token. */
  private readonly tokens = new Map<string, Cached<UserView | null>>();
  private readonly loadingTokens = new Map<string, Promise<UserView | null>>();

  constructor(
    private readonly gen: AvatarGen,
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {
    // Nothing here is fed by notifications (entries live ttlMs), but after an outage of the
    // notification connection (`resync`) everything is read again anyway: it costs one read each.
    gen.pipeline.events.on('resync', () => this.clear());
  }

  /** Forgets every session and account read (reads in flight are not remembered either). */
  clear(): void {
    this.sessions.clear();
    this.users.clear();
    this.loadingSessions.clear();
    this.loadingUsers.clear();
    this.forgetTokens();
  }

  /** Forgets every token checked (after a token is revoked in this process). */
  forgetTokens(): void {
    this.tokens.clear();
    this.loadingTokens.clear();
  }

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

  /** The active account of an API token, or null for an unknown, revoked or disabled one. */
  async tokenUser(token: string): Promise<UserView | null> {
    const key = createHash('sha256').update(token).digest('base64url');
    return this.read(this.tokens, this.loadingTokens, key, () => this.gen.users.authenticateToken(token));
  }
}
