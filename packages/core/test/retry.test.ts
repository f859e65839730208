import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  InvalidResponseError,
  isDatabaseUnavailable,
  isOutage,
  ProviderError,
  StorageError,
  ValidationError,
  withRetry,
} from '../src/index.js';
import { testServerUrl } from '../src/testing.js';
import { findFreePort } from './support/free-port.js';

/** Runs withRetry over a script of outcomes; returns what happened. */
async function run(outcomes: Array<Error | 'ok'>, options: { attempts: number; windowMs?: number; baseDelayMs?: number }) {
  const waits: number[] = [];
  let calls = 0;
  const started = Date.now();
  const result = await withRetry(
    async () => {
      const outcome = outcomes[Math.min(calls++, outcomes.length - 1)];
      if (outcome !== 'ok') throw outcome;
      return 'done';
    },
    { baseDelayMs: options.baseDelayMs ?? 1, maxDelayMs: 20, ...options, onRetry: (_e, _a, wait) => waits.push(wait) },
  ).catch((error: unknown) => error);
  return { result, calls, waits, elapsed: Date.now() - started };
}

describe('withRetry', () => {
  const down = ProviderError.network('flowise', 'connect ECONNREFUSED');
  const garbage = new InvalidResponseError('flowise', 'not JSON');

  it('rides out an outage for the whole window, far past the attempt limit', async () => {
    const outcomes: Array<Error | 'ok'> = [...Array.from({ length: 25 }, () => down), 'ok'];
    const { result, calls } = await run(outcomes, { attempts: 3, windowMs: 5_000 });
    expect(result).toBe('done');
    expect(calls).toBe(26);
  });

  it('gives up on an outage when the window has passed', async () => {
    const { result, elapsed, calls } = await run([down], { attempts: 3, windowMs: 300, baseDelayMs: 10 });
    expect(result).toBe(down);
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(calls).toBeGreaterThan(3);
  });

  it('retries an unusable answer only `attempts` times, whatever the window', async () => {
    const { result, calls } = await run([garbage], { attempts: 3, windowMs: 60_000 });
    expect(result).toBe(garbage);
    expect(calls).toBe(3);
  });

  it('never retries what cannot get better', async () => {
    const auth = ProviderError.auth('openai', 'bad key', 401);
    const { result, calls } = await run([auth], { attempts: 5, windowMs: 60_000 });
    expect(result).toBe(auth);
    expect(calls).toBe(1);
  });

  it('waits with jitter between half and all of the backoff, and follows Retry-After', async () => {
    const waits: number[] = [];
    let calls = 0;
    await withRetry(
      async () => {
        if (calls++ < 6) throw ProviderError.server('x', 'HTTP 503', 503);
        return 1;
      },
      { attempts: 10, baseDelayMs: 100, maxDelayMs: 400, random: () => (calls % 2 ? 0 : 0.999), onRetry: (_e, _a, w) => waits.push(w) },
    ).catch(() => undefined);
    // backoff 100, 200, 400, 400...: each wait in [backoff/2, backoff]
    const backoffs = [100, 200, 400, 400, 400, 400];
    waits.forEach((wait, i) => {
      expect(wait).toBeGreaterThanOrEqual((backoffs[i] as number) / 2);
      expect(wait).toBeLessThanOrEqual(backoffs[i] as number);
    });
    expect(new Set(waits).size).toBeGreaterThan(1);
    const advised: number[] = [];
    let once = true;
    await withRetry(
      async () => {
        if (once) {
          once = false;
          throw ProviderError.rateLimited('openai', '429', 150);
        }
        return 1;
      },
      { attempts: 2, baseDelayMs: 1, onRetry: (_e, _a, w) => advised.push(w) },
    );
    expect(advised).toEqual([150]);
  });

  it('counts storage failures and provider failures as outages, bad input not', () => {
    expect(isOutage(new StorageError('put', 'k', 'EROFS: read-only file system'))).toBe(true);
    expect(isOutage(new StorageError('get', 'k', 'not found', { notFound: true }))).toBe(false);
    expect(isOutage(ProviderError.timeout('openai', 'no answer'))).toBe(true);
    expect(isOutage(garbage)).toBe(false);
    expect(isOutage(new ValidationError({ count: 'too big' }))).toBe(false);
  });
});

describe('isDatabaseUnavailable, on errors PostgreSQL and pg really raise', () => {
  it('a refused connection', async () => {
    const url = new URL(testServerUrl());
    url.port = String(await findFreePort());
    const client = new pg.Client({ connectionString: url.toString() });
    const error = await client.connect().catch((e: unknown) => e);
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it('a connection terminated by the server (57P01), then the dead client', async () => {
    const victim = new pg.Client({ connectionString: testServerUrl() });
    victim.on('error', () => undefined);
    await victim.connect();
    const { rows } = await victim.query('select pg_backend_pid() as pid');
    const admin = new pg.Client({ connectionString: testServerUrl() });
    await admin.connect();
    const pending = victim.query('select pg_sleep(5)').catch((e: unknown) => e);
    // terminated while the query runs: wait until the server says it is running
    await expect
      .poll(async () => (await admin.query('select state, query from pg_stat_activity where pid = $1', [rows[0].pid])).rows[0], {
        timeout: 4_000,
        interval: 10,
      })
      .toMatchObject({ state: 'active', query: 'select pg_sleep(5)' });
    await admin.query('select pg_terminate_backend($1)', [rows[0].pid]);
    await admin.end();
    const terminated = await pending;
    expect((terminated as { code?: string }).code).toBe('57P01');
    expect(isDatabaseUnavailable(terminated)).toBe(true);
    const dead = await victim.query('select 1').catch((e: unknown) => e);
    expect(isDatabaseUnavailable(dead)).toBe(true);
    await victim.end().catch(() => undefined);
  });

  it('not a query that is simply wrong, nor a wrapped one', async () => {
    const client = new pg.Client({ connectionString: testServerUrl() });
    await client.connect();
    const syntax = await client.query('select from where').catch((e: unknown) => e);
    const missing = await client.query('select * from no_such_table').catch((e: unknown) => e);
    await client.end();
    expect(isDatabaseUnavailable(syntax)).toBe(false);
    expect(isDatabaseUnavailable(missing)).toBe(false);
    expect(isDatabaseUnavailable(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) }))).toBe(true);
    expect(isDatabaseUnavailable(undefined)).toBe(false);
  });

  it('not a provider or storage that cannot be reached, whatever its cause says', async () => {
    const port = await findFreePort();
    const refused = await fetch(`http://127.0.0.1:${port}/`).catch((e: unknown) => e);
    expect(isDatabaseUnavailable(refused)).toBe(true); // the socket error alone looks the same...
    // ...but wrapped in our own error it is that service's outage, not the database's
    expect(isDatabaseUnavailable(ProviderError.network('flowise', 'the request failed (ECONNREFUSED)', refused))).toBe(false);
    const reset = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
    expect(isDatabaseUnavailable(new StorageError('put', 'k', 'EPIPE', { cause: reset }))).toBe(false);
  });
});
