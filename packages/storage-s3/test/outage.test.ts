// S3 going away for real: s3rver killed while calls are in flight, then started again on the same
// port over the same folder. Every failure must be a retryable StorageError, and the same storage
// object must work again once the server is back, with no restart of ours.
import { Readable } from 'node:stream';
import { StorageError } from '@avatargen/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Storage, type S3Storage } from '../src/index.js';
import { readAll, S3RVER_KEY, startS3rver, type TestS3 } from './support.js';

const BUCKET = 'avatar-outage';
const PNG = { contentType: 'image/png' };

let s3: TestS3;
let storage: S3Storage;

beforeAll(async () => {
  s3 = await startS3rver([BUCKET]);
  storage = createS3Storage({
    endpoint: s3.endpoint,
    accessKeyId: S3RVER_KEY,
    secretAccessKey: 'outage-test-secret',
    bucket: BUCKET,
    maxAttempts: 2,
    connectTimeoutMs: 1000,
    requestTimeoutMs: 5000,
  });
});

afterAll(async () => {
  await storage?.close();
  await s3?.close();
});

async function listKeys(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of storage.list(prefix)) keys.push(object.key);
  return keys.sort();
}

function expectRetryable(error: unknown, operation: string): void {
  expect(error, operation).toBeInstanceOf(StorageError);
  expect(error, operation).toMatchObject({ operation, retryable: true, notFound: false, keyRefused: false });
}

describe('S3 storage when the server goes away and comes back', () => {
  it('fails in-flight and new calls with retryable StorageErrors; works again once s3rver is back on its port', {
    timeout: 60_000,
  }, async () => {
    await storage.put('tasks/t1/before.png', Buffer.from('before'), PNG);
    // A download stopped half-way: more than the sockets' buffers hold stays on the server's side.
    const large = Buffer.alloc(32 * 1024 * 1024, 3);
    await storage.put('tasks/t1/large.bin', large, { contentType: 'application/octet-stream' });
    const download = (await storage.get('tasks/t1/large.bin'))[Symbol.asyncIterator]();
    expect((await download.next()).done).toBe(false);
    const body = Buffer.alloc(512 * 1024, 7);
    const keys = Array.from({ length: 16 }, (_, i) => `tasks/t1/in-flight-${i}.png`);
    const inFlight = keys.map((key) =>
      storage.put(key, body, PNG).then(
        () => 'ok' as const,
        (error: unknown) => error,
      ),
    );
    await s3.stop(); // SIGKILL: open connections are reset, new ones refused
    for (const outcome of await Promise.all(inFlight)) {
      if (outcome !== 'ok') expectRetryable(outcome, 'put');
    }
    const broken = await (async () => {
      for (let next = await download.next(); !next.done; next = await download.next());
    })().catch((e: unknown) => e);
    expectRetryable(broken, 'get');
    expect((broken as StorageError).key).toBe('tasks/t1/large.bin');
    expect((broken as Error).message).toMatch(/the connection to 127\.0\.0\.1:\d+ broke \(ECONNRESET\)/);

    const refused = /cannot reach 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/;
    const calls: Array<[string, () => Promise<unknown>]> = [
      ['put', () => storage.put('tasks/t1/during.png', body, PNG)],
      ['put', () => storage.put('tasks/t1/during-stream.png', Readable.from([body]), PNG)],
      ['get', () => storage.get('tasks/t1/before.png')],
      ['read', async () => storage.read?.('tasks/t1/before.png')],
      ['delete', () => storage.delete('tasks/t1/before.png')],
      ['deleteMany', () => storage.deleteMany(['tasks/t1/before.png'])],
      ['deletePrefix', () => storage.deletePrefix('tasks/t1/')],
      ['list', () => listKeys('tasks/')],
    ];
    for (const [operation, call] of calls) {
      const error = await call().catch((e: unknown) => e);
      expectRetryable(error, operation);
      expect((error as Error).message, operation).toMatch(refused);
      expect((error as Error).message, operation).not.toContain('outage-test-secret');
    }

    await s3.restart();
    // The same storage object, its client and connection pool: the failed writes, tried again.
    for (const key of [...keys, 'tasks/t1/during.png']) await storage.put(key, body, PNG);
    await storage.put('tasks/t1/during-stream.png', Readable.from([body]), PNG);
    expect((await readAll(await storage.get('tasks/t1/before.png'))).toString()).toBe('before');
    expect((await readAll(await storage.get('tasks/t1/during.png'))).equals(body)).toBe(true);
    expect(await listKeys('tasks/t1/')).toEqual(
      ['tasks/t1/before.png', 'tasks/t1/during-stream.png', 'tasks/t1/during.png', 'tasks/t1/large.bin', ...keys].sort(),
    );
    expect(await storage.deletePrefix('tasks/t1/')).toBe(keys.length + 4);
    expect(await listKeys('tasks/')).toEqual([]);
  });
});
