import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Context, Next } from 'koa';

/** The Content-Security-Policy: no inline script, every asset from this host (images also from the storage's public origin). */
export function contentSecurityPolicy(imageOrigins: readonly string[] = []): string {
  const img = ["'self'", 'data:', ...imageOrigins].join(' ');
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    `img-src ${img}`,
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Security headers on every response; HSTS only when the request came over TLS. */
export function securityHeaders(imageOrigins: readonly string[] = []) {
  const csp = contentSecurityPolicy(imageOrigins);
  return async (ctx: Context, next: Next) => {
    ctx.set('Content-Security-Policy', csp);
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('X-Frame-Options', 'DENY');
    ctx.set('Referrer-Policy', 'same-origin');
    ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
    ctx.set('Cross-Origin-Resource-Policy', 'same-origin');
    ctx.set('Permissions-Policy', 'camera=(), microphone=(), geolocation=(), interest-cohort=()');
    if (ctx.secure) ctx.set('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
    await next();
  };
}

export const CSRF_FIELD = '_csrf';
export const CSRF_HEADER = 'x-csrf-token';

/** Lifetime of a session that has not logged in (it holds only a CSRF token). */
export const ANONYMOUS_SESSION_MS = 60 * 60_000;

export function newCsrfToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Constant-time comparison of the sent token with the session's. */
export function csrfMatches(expected: unknown, sent: unknown): boolean {
  if (typeof expected !== 'string' || typeof sent !== 'string' || expected.length === 0) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(sent);
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface ThrottleLimits {
  /** Failed logins allowed per IP address in the window (any account). */
  perIp: number;
  /** Failed logins allowed per account from one IP address in the window. */
  perAccountIp: number;
  windowMs: number;
}

export const DEFAULT_THROTTLE: ThrottleLimits = { perIp: 30, perAccountIp: 5, windowMs: 15 * 60_000 };

/** Where the counters live: core's LoginAttempts (PostgreSQL, shared by every web process). */
export interface AttemptStore {
  count(keys: readonly string[], now: number, windowMs: number): Promise<Map<string, { attempts: number; resetAt: number }>>;
  release(key: string): Promise<void>;
  clear(key: string): Promise<void>;
}

/**
 * Login throttling. Attempts are counted per IP and per (account, IP) pair, never per account
 * alone: someone guessing a password from elsewhere fills their own buckets and cannot lock the
 * account's owner out from the owner's address. The counters are in the database, so the limits
 * hold for the whole site however many web processes serve it.
 *
 * An attempt is counted before its password is checked (one atomic increment), so attempts sent
 * at the same moment cannot all slip under the limit while bcrypt runs; a login that succeeds
 * takes its count back.
 */
export class LoginThrottle {
  constructor(
    private readonly store: AttemptStore,
    private readonly limits: ThrottleLimits = DEFAULT_THROTTLE,
  ) {}

  private keys(ip: string, account: string): [string, string] {
    return [`ip:${ip}`, `pair:${account.trim().toLowerCase()}|${ip}`];
  }

  /**
   * Counts one attempt; answers 0 when it may go on to the password check, else the milliseconds
   * until the window that refused it ends. Ended windows are deleted by the web process's
   * periodic sweep (HostApp.sweepExpired).
   */
  async attempt(ip: string, account: string, now = Date.now()): Promise<number> {
    const [ipKey, pairKey] = this.keys(ip, account);
    const counters = await this.store.count([ipKey, pairKey], now, this.limits.windowMs);
    const byIp = counters.get(ipKey);
    const byPair = counters.get(pairKey);
    let wait = 0;
    if (byIp && byIp.attempts > this.limits.perIp) wait = Math.max(wait, byIp.resetAt - now);
    if (byPair && byPair.attempts > this.limits.perAccountIp) wait = Math.max(wait, byPair.resetAt - now);
    return Math.max(wait, 0);
  }

  /** The pair's failures are forgiven; the address keeps its other attempts, not this success. */
  async succeeded(ip: string, account: string): Promise<void> {
    const [ipKey, pairKey] = this.keys(ip, account);
    await Promise.all([this.store.clear(pairKey), this.store.release(ipKey)]);
  }
}

/** A `next` parameter that stays on this site: a path, never `//host` or a URL. */
export function safeNext(next: unknown, fallback = '/dashboard'): string {
  if (typeof next !== 'string' || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return fallback;
  return /^[\w\-./?=&%~+]*$/.test(next) ? next : fallback;
}
