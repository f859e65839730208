import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CancelledError, isRetryable, type AvatarGenError } from './errors.js';

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
  attempts: number;
  baseDelayMs: number;
  maxDelayMs?: number;
  signal?: AbortSignal;
  onRetry?: (error: unknown, attempt: number, waitMs: number) => void;
}

/**
 * Runs `fn` up to `attempts` times while it fails with a retryable error, waiting with
 * exponential backoff (or the server's Retry-After, when longer) between attempts.
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (options.signal?.aborted) throw new CancelledError();
      if (attempt >= options.attempts || !isRetryable(error)) throw error;
      const backoff = Math.min(options.baseDelayMs * 2 ** (attempt - 1), options.maxDelayMs ?? 60_000);
      const advised = (error as AvatarGenError).retryAfterMs ?? 0;
      const wait = Math.max(backoff, advised);
      options.onRetry?.(error, attempt, wait);
      await delay(wait, options.signal);
    }
  }
}
