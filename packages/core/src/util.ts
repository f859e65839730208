import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { AvatarGenError, CancelledError, isRetryable } from './errors.js';

/** A name-based UUID (v5 layout over SHA-1): the same parts always give the same id. */
export function stableUuid(...parts: Array<string | number>): string {
  const hash = createHash('sha1').update(parts.join('\u0000')).digest();
  hash[6] = ((hash[6] as number) & 0x0f) | 0x50;
  hash[8] = ((hash[8] as number) & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const ALPHABET = '23456789abcdefghijkmnpqrstuvwxyz';

/** A short, url-safe, unguessable id (about 60 bits), for task ids people see. */
export function shortId(length = 12): string {
  const bytes = randomBytes(length);
  let out = '';
  for (const byte of bytes) out += ALPHABET[byte % ALPHABET.length];
  return out;
}

/** Resolves after `ms`, or rejects with CancelledError when the signal fires first. */
export async function delay(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return;
  try {
    await sleep(ms, undefined, { signal });
  } catch {
    throw new CancelledError();
  }
}

export interface RetryOptions {
  /** Tries in all for errors that are retryable but not an outage (an unusable answer). */
  attempts: number;
  baseDelayMs: number;
  /** Longest wait between two tries. Default 30 s. */
  maxDelayMs?: number;
  /**
   * How long an outage (connection refused or reset, timeout, 5xx, 429, a storage that refuses
   * writes) is ridden out, counted from the first failure: such errors are retried until then,
   * whatever `attempts` says. Default 0: outages count against `attempts` like any error.
   */
  windowMs?: number;
  signal?: AbortSignal;
  onRetry?: (error: unknown, attempt: number, waitMs: number) => void;
  /** For tests: the random source of the jitter. */
  random?: () => number;
}

/** Errors that say a service is down or overloaded for now, not that the request or answer was bad. */
const OUTAGE_KINDS = new Set(['network', 'timeout', 'server', 'rate-limit', 'storage']);

export function isOutage(error: unknown): boolean {
  return error instanceof AvatarGenError && error.retryable && OUTAGE_KINDS.has(error.kind);
}

/**
 * Runs `fn` while it fails with a retryable error: outages for up to `windowMs`, other retryable
 * errors up to `attempts` tries. Waits grow exponentially with jitter (so a fleet of workers that
 * failed together does not retry together), or follow the server's Retry-After when longer.
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const maxDelay = options.maxDelayMs ?? 30_000;
  const random = options.random ?? Math.random;
  let firstFailure = 0;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (options.signal?.aborted) throw new CancelledError();
      if (!isRetryable(error)) throw error;
      firstFailure ||= Date.now();
      const elapsed = Date.now() - firstFailure;
      const windowMs = options.windowMs ?? 0;
      const withinWindow = isOutage(error) && elapsed < windowMs;
      if (!withinWindow && attempt >= options.attempts) throw error;
      const backoff = Math.min(options.baseDelayMs * 2 ** Math.min(attempt - 1, 30), maxDelay);
      // "Equal jitter": at least half the backoff, so waits still grow.
      const jittered = backoff / 2 + (backoff / 2) * random();
      const advised = (error as AvatarGenError).retryAfterMs ?? 0;
      let wait = Math.round(Math.max(jittered, advised));
      // Past the window's end there is no point waiting longer than it has left (plus one try).
      if (withinWindow) wait = Math.max(0, Math.min(wait, windowMs - elapsed));
      options.onRetry?.(error, attempt, wait);
      await delay(wait, options.signal);
    }
  }
}
