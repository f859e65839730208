import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { AvatarGen, UserView } from '@avatargen/core';
import { LRUCache } from 'lru-cache';

type Session = Record<string, unknown>;
/** lru-cache keeps no undefined or null, and "no such session" is worth remembering too. */
type Box<T> = { value: T };

/**
 * A very short-lived per-process memory of sessions, accounts and API tokens in front of
 * PostgreSQL. A page of the gallery makes a hundred thumbnail requests with one cookie, and a
 * script's fifty clients share one token; without it each request would read the session (or the
 * token) and the account again. Requests that miss together share one read (lru-cache's fetch).
 * Writes and destroys in this process update it at once (a token revoked here is forgotten at
 * once); a logout, a revoked token or a disabled account in another process takes effect here
 * within `ttlMs` (0 keeps nothing).
 */
export class AuthCache {
  private readonly sessions: LRUCache<string, Box<Session | undefined>>;
  private readonly users: LRUCache<number, Box<UserView | null>>;
  /** Keyed by the token's SHA-256, so the cache holds no usable token (the token is the fetch context). */
  private readonly tokens: LRUCache<string, Box<UserView | null>, string>;

  constructor(
    private readonly gen: AvatarGen,
    private readonly ttlMs: number,
    maxEntries = 10_000,
  ) {
    const cache = <K extends {}, T, C = unknown>(load: (key: K, context: C) => Promise<T>) =>
      new LRUCache<K, Box<T>, C>({
        max: maxEntries,
        ttl: Math.max(ttlMs, 1),
        // A write or a destroy while a read is on its way: the read's (older) answer goes to those
        // waiting for it, and is not kept.
        ignoreFetchAbort: true,
        fetchMethod: async (key, _stale, { context }) => ({ value: await load(key, context) }),
      });
    this.sessions = cache((key: string) => gen.sessions.get(key));
    this.users = cache((id: number) => gen.users.findById(id));
    this.tokens = cache((_hash: string, token: string) => gen.users.authenticateToken(token));
    // Nothing here is fed by notifications (entries live ttlMs), but after an outage of the
    // notification connection (`resync`) everything is read again anyway: it costs one read each.
    gen.pipeline.events.on('resync', () => this.clear());
  }

  /** Forgets every session, account and token read (reads in flight are not kept either). */
  clear(): void {
    this.sessions.clear();
    this.users.clear();
    this.tokens.clear();
  }

  /** Forgets every token checked (after a token is revoked in this process). */
  forgetTokens(): void {
    this.tokens.clear();
  }

  /** The value fetched; with ttlMs 0 it is not kept once the requests that asked together have it. */
  private unbox<K extends {}, T, C>(cache: LRUCache<K, Box<T>, C>, key: K, box: Box<T> | undefined): T {
    if (this.ttlMs <= 0) cache.delete(key);
    return (box as Box<T>).value;
  }

  /** The store koa-session uses: gen.sessions behind the short memory. */
  readonly store = {
    get: async (key: string) => {
      const data = this.unbox(this.sessions, key, await this.sessions.fetch(key));
      // koa-session copies the fields into its own object; a copy keeps the cached one intact.
      return data ? { ...data } : undefined;
    },
    set: async (key: string, data: Session, maxAge: number) => {
      await this.gen.sessions.set(key, data, maxAge);
      if (this.ttlMs > 0) this.sessions.set(key, { value: { ...data } });
      else this.sessions.delete(key);
    },
    destroy: async (key: string) => {
      this.sessions.delete(key);
      await this.gen.sessions.destroy(key);
      this.sessions.delete(key);
    },
  };

  async user(id: number): Promise<UserView | null> {
    return this.unbox(this.users, id, await this.users.fetch(id));
  }

  /** The active account of an API token, or null for an unknown, revoked or disabled one. */
  async tokenUser(token: string): Promise<UserView | null> {
    const hash = createHash('sha256').update(token).digest('base64url');
    return this.unbox(this.tokens, hash, await this.tokens.fetch(hash, { context: token }));
  }
}

/**
 * Koa's `keys` (Keygrip's signatures: HMAC-SHA1 in base64url, the first secret signs, any one
 * verifies) with its verdicts remembered. koa-session checks the session cookie's signature on
 * every request, with an HMAC per secret and a constant-time compare; the same cookie comes back
 * on every request of a visit, so the verdict for a (value, signature) pair is kept.
 */
export function rememberedKeys(secrets: string[], max = 10_000) {
  if (secrets.length === 0) throw new Error('rememberedKeys: give at least one secret');
  const sign = (data: string, secret: string) => createHmac('sha1', secret).update(data).digest('base64url');
  const verdicts = new LRUCache<string, number>({ max });
  const index = (data: string, digest: string): number => {
    const key = `${digest}\n${data}`;
    let found = verdicts.get(key);
    if (found === undefined) {
      const given = Buffer.from(digest);
      found = secrets.findIndex((secret) => {
        const expected = Buffer.from(sign(data, secret));
        return expected.length === given.length && timingSafeEqual(expected, given);
      });
      verdicts.set(key, found);
    }
    return found;
  };
  return {
    sign: (data: string) => sign(data, secrets[0] as string),
    verify: (data: string, digest: string) => index(data, digest) > -1,
    index,
  };
}
