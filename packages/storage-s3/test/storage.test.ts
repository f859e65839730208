import { Readable } from 'node:stream';
import { inspect } from 'node:util';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { StorageError } from '@avatargen/core';
import { describeObjectStorageContract } from '@avatargen/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Storage, InvalidKeyError, publicReadPolicy, type S3Storage, type S3StorageOptions } from '../src/index.js';
import { forEachLimited, readAll, S3RVER_KEY, startS3rver, type TestS3, countCommands } from './support.js';

// s3rver checks the access key but not the secret; a distinctive secret lets tests look for leaks.
const SECRET = 'storage-s3-test-secret-0f9a7c';
const BUCKET = 'avatar-images';

let s3: TestS3;
const opened: S3Storage[] = [];

function storageFor(overrides: Partial<S3StorageOptions> = {}): S3Storage {
  const storage = createS3Storage({
    endpoint: s3.endpoint,
    accessKeyId: S3RVER_KEY,
    secretAccessKey: SECRET,
    region: 'us-east-1',
    bucket: BUCKET,
    ...overrides,
  });
  opened.push(storage);
  return storage;
}

async function head(storage: S3Storage, key: string) {
  return storage.client.send(new HeadObjectCommand({ Bucket: storage.bucket, Key: key }));
}

async function listKeys(storage: S3Storage, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of storage.list(prefix)) keys.push(object.key);
  return keys;
}

beforeAll(async () => {
  s3 = await startS3rver([BUCKET]);
});

afterAll(async () => {
  for (const storage of opened) await storage.close();
  await s3?.close();
});

describeObjectStorageContract('S3 on s3rver', {
  create: () => storageFor(),
});

describe('S3 storage on s3rver', () => {
  it('stores bytes with their content type and cache-control', async () => {
    const storage = storageFor();
    const bytes = Buffer.from([137, 80, 78, 71, 1, 2, 3]);
    await storage.put('tasks/t1/p1/base.png', bytes, {
      contentType: 'image/png',
      cacheControl: 'public, max-age=31536000, immutable',
    });
    expect(await readAll(await storage.get('tasks/t1/p1/base.png'))).toEqual(bytes);
    const stored = await head(storage, 'tasks/t1/p1/base.png');
    expect(stored.ContentType).toBe('image/png');
    expect(stored.CacheControl).toBe('public, max-age=31536000, immutable');
    expect(stored.ContentLength).toBe(bytes.length);
  });

  it('streams a body of unknown length, in one request or as a multipart upload', async () => {
    const storage = storageFor();
    const counts = countCommands(storage.client);
    const small = Buffer.from('a small export line\n'.repeat(100));
    await storage.put('exports/small.csv', Readable.from([small.subarray(0, 7), small.subarray(7)]), {
      contentType: 'text/csv',
      cacheControl: 'no-store',
    });
    expect((await readAll(await storage.get('exports/small.csv'))).equals(small)).toBe(true);
    expect((await head(storage, 'exports/small.csv')).CacheControl).toBe('no-store');

    // Over one 5 MiB part: lib-storage switches to a multipart upload.
    const big = Buffer.alloc(5 * 1024 * 1024 + 123_457);
    for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
    async function* chunks() {
      for (let i = 0; i < big.length; i += 256 * 1024) yield big.subarray(i, i + 256 * 1024);
    }
    await storage.put('exports/big.zip', Readable.from(chunks()), { contentType: 'application/zip' });
    expect(counts.get('CreateMultipartUploadCommand')).toBe(1);
    expect(counts.get('UploadPartCommand')).toBe(2);
    expect((await readAll(await storage.get('exports/big.zip'))).equals(big)).toBe(true);
    const stored = await head(storage, 'exports/big.zip');
    expect(stored.ContentType).toBe('application/zip');
    expect(stored.ContentLength).toBe(big.length);
  });

  it('refuses a failing source stream with a StorageError', async () => {
    const storage = storageFor();
    const failing = new Readable({
      read() {
        this.destroy(new Error('disk went away'));
      },
    });
    const error = await storage.put('exports/failing.zip', failing, { contentType: 'application/zip' }).catch((e) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect(error.message).toContain('put exports/failing.zip');
    expect(error.message).toContain('disk went away');
    expect(await listKeys(storage, 'exports/failing')).toEqual([]);
  });

  // Usually a few seconds; the timeout leaves room for a busy CI machine.
  it('lists 2,500 objects across pages and deletes them in batches of 1,000', { timeout: 120_000 }, async () => {
    const storage = storageFor();
    // Spread over 50 folders like personas of a task (s3rver rescans a folder on every delete).
    const keys = Array.from({ length: 2500 }, (_, i) => `tasks/many/p${i % 50}/${String(i).padStart(4, '0')}.txt`).sort();
    await forEachLimited(keys, 16, (key) => storage.put(key, Buffer.from(key), { contentType: 'text/plain' }));
    await storage.put('tasks/many-other/outside.txt', Buffer.from('x'), { contentType: 'text/plain' });

    const counts = countCommands(storage.client);
    const listed: { key: string; size: number }[] = [];
    for await (const object of storage.list('tasks/many/')) listed.push(object);
    expect(listed.map((o) => o.key).sort()).toEqual(keys);
    expect(listed.every((o) => o.size === o.key.length)).toBe(true);
    expect(counts.get('ListObjectsV2Command')).toBeGreaterThanOrEqual(3);

    // Duplicates and a key that never existed are fine.
    await storage.deleteMany([...keys, keys[0] as string, 'tasks/many/never-there.txt']);
    expect(counts.get('DeleteObjectsCommand')).toBe(3);
    expect(await listKeys(storage, 'tasks/many/')).toEqual([]);
    expect(await listKeys(storage, 'tasks/many-other/')).toEqual(['tasks/many-other/outside.txt']);
    await storage.deleteMany([]);
  });

  it('deletes everything under a prefix a page at a time: one ListObjectsV2 and one DeleteObjects per 1,000 keys', {
    timeout: 120_000,
  }, async () => {
    const storage = storageFor();
    const keys = Array.from({ length: 1100 }, (_, i) => `tasks/dp/p${i % 20}/${String(i).padStart(4, '0')}.txt`);
    await forEachLimited(keys, 16, (key) => storage.put(key, Buffer.from(key), { contentType: 'text/plain' }));
    await storage.put('tasks/dp-other/outside.txt', Buffer.from('x'), { contentType: 'text/plain' });
    const counts = countCommands(storage.client);
    expect(await storage.deletePrefix('tasks/dp/')).toBe(1100);
    expect(counts.get('ListObjectsV2Command')).toBe(2);
    expect(counts.get('DeleteObjectsCommand')).toBe(2);
    expect(await listKeys(storage, 'tasks/dp/')).toEqual([]);
    expect(await listKeys(storage, 'tasks/dp-other/')).toEqual(['tasks/dp-other/outside.txt']);
    expect(await storage.deletePrefix('tasks/dp/')).toBe(0);
    for (const bad of ['', '/tasks/', 'tasks/../', 'tasks//dp/', 'tasks/\u0085/']) {
      await expect(storage.deletePrefix(bad), JSON.stringify(bad)).rejects.toMatchObject({ keyRefused: true, retryable: false });
    }
    expect(await listKeys(storage, 'tasks/dp-other/')).toEqual(['tasks/dp-other/outside.txt']);
  });

  it('round-trips keys with spaces and non-Latin characters, also through their public URL', async () => {
    const storage = storageFor();
    const keys = ['tasks/Ärger ü/фото 1.jpg', 'tasks/任务 #1/图片?2%.png', "tasks/x/a+b&c=d;e,f'g(h)!.webp", 'tasks/emoji/🙂 face.png'];
    for (const [i, key] of keys.entries()) {
      await storage.put(key, Buffer.from(`body ${i}`), { contentType: 'image/png' });
    }
    expect((await listKeys(storage, 'tasks/')).filter((k) => keys.includes(k)).sort()).toEqual([...keys].sort());
    for (const [i, key] of keys.entries()) {
      expect((await readAll(await storage.get(key))).toString()).toBe(`body ${i}`);
      // s3rver serves anyone: the URL must lead back to exactly this object.
      const answer = await fetch(storage.publicUrl(key));
      expect(answer.status, key).toBe(200);
      expect(await answer.text()).toBe(`body ${i}`);
    }
    expect(storage.publicUrl('tasks/任务 #1/图片?2%.png')).toBe(
      `${s3.endpoint}/${BUCKET}/tasks/%E4%BB%BB%E5%8A%A1%20%231/%E5%9B%BE%E7%89%87%3F2%25.png`,
    );
  });

  it('builds public URLs from the public base, the bucket and the encoded key', () => {
    const cdn = storageFor({ publicUrlBase: 'https://cdn.example.com/' });
    expect(cdn.publicUrl('tasks/t1/p 1/0.jpg')).toBe('https://cdn.example.com/avatar-images/tasks/t1/p%201/0.jpg');
    const withPath = storageFor({ publicUrlBase: 'https://example.com/storage//' });
    expect(withPath.publicUrl('tasks/a.png')).toBe('https://example.com/storage/avatar-images/tasks/a.png');
    const fromEndpoint = storageFor();
    expect(fromEndpoint.publicUrl('tasks/a.png')).toBe(`${s3.endpoint}/avatar-images/tasks/a.png`);
    expect(() => storageFor({ publicUrlBase: 'https://user:pw@cdn.example.com' })).toThrow(/S3_PUBLIC_URL_BASE/);
    expect(() => storageFor({ publicUrlBase: 'not a url' })).toThrow(/S3_PUBLIC_URL_BASE/);
  });

  it('refuses bad keys with InvalidKeyError before any request', async () => {
    const storage = storageFor();
    const counts = countCommands(storage.client);
    const bad: Array<[string, RegExp]> = [
      ['', /empty/],
      ['/tasks/a.png', /starts with/],
      ['tasks/../exports/a.zip', /"\.\." path segment/],
      ['..', /"\.\." path segment/],
      ['tasks/./a.png', /"\." path segment/],
      ['tasks//a.png', /empty path segment/],
      ['tasks/a/', /empty path segment/],
      ['tasks/a\u0000.png', /control character/],
      ['tasks/a\nb.png', /control character/],
      ['tasks/a\u007f.png', /control character/],
      ['tasks/\ud800.png', /not valid Unicode/],
      [`tasks/${'é'.repeat(600)}`, /longer than 1024 bytes/],
    ];
    for (const [key, reason] of bad) {
      const attempts = [
        () => storage.put(key, Buffer.from('x'), { contentType: 'text/plain' }),
        () => storage.get(key),
        () => storage.delete(key),
        () => storage.deleteMany(['tasks/fine.png', key]),
        async () => storage.publicUrl(key),
      ];
      for (const attempt of attempts) {
        const error = await attempt().catch((e: unknown) => e);
        expect(error, JSON.stringify(key)).toBeInstanceOf(InvalidKeyError);
        expect(error).toBeInstanceOf(StorageError);
        expect((error as InvalidKeyError).retryable).toBe(false);
        expect((error as InvalidKeyError).message).toMatch(reason);
        expect((error as InvalidKeyError).invalidKey).toBe(key);
        // Control characters are shown escaped, never raw.
        expect((error as Error).message).not.toMatch(/[\u0000\n\u007f]/);
      }
    }
    expect(() => storage.list('tasks//x/')).toThrow(InvalidKeyError);
    expect(() => storage.list('/tasks/')).toThrow(InvalidKeyError);
    expect([...counts.values()].reduce((a, b) => a + b, 0)).toBe(0);
    // Keys that only look odd are fine: dots inside a segment, a trailing dot.
    await storage.put('tasks/.../a..b/c.', Buffer.from('ok'), { contentType: 'text/plain' });
    expect((await readAll(await storage.get('tasks/.../a..b/c.'))).toString()).toBe('ok');
  });

  it('refuses a content type or cache-control that is not a clean header value', async () => {
    const storage = storageFor();
    for (const contentType of ['', 'png', 'image/png\r\nx-amz-acl: public-read']) {
      await expect(storage.put('tasks/ct.png', Buffer.from('x'), { contentType })).rejects.toBeInstanceOf(StorageError);
    }
    await expect(
      storage.put('tasks/ct.png', Buffer.from('x'), { contentType: 'image/png', cacheControl: 'max-age=1\r\nx-amz-acl: public-read' }),
    ).rejects.toThrow(/invalid cache-control/);
    await storage.put('tasks/ct.png', Buffer.from('x'), { contentType: 'image/svg+xml; charset=utf-8' });
    expect((await head(storage, 'tasks/ct.png')).ContentType).toBe('image/svg+xml; charset=utf-8');
  });

  it('names the missing bucket, and a missing key is notFound', async () => {
    const storage = storageFor({ bucket: 'no-such-bucket-here' });
    const error = await storage.get('tasks/a.png').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).notFound).toBe(false);
    expect((error as StorageError).message).toContain('bucket "no-such-bucket-here" does not exist');
    const missing = await storageFor()
      .get('tasks/never.png')
      .catch((e: unknown) => e);
    expect(missing).toMatchObject({ notFound: true, operation: 'get', key: 'tasks/never.png', retryable: false });
    for (const text of [String(error), inspect(error, { depth: 5 }), JSON.stringify(error)]) expect(text).not.toContain(SECRET);
  });

  it('creates a missing bucket and logs once that s3rver has no bucket policies', async () => {
    const warnings: Array<[Record<string, unknown>, string]> = [];
    const storage = storageFor({ bucket: 'fresh-images', logger: { warn: (object, message) => warnings.push([object, message]) } });
    const first = await storage.put('tasks/a.png', Buffer.from('x'), { contentType: 'image/png' }).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(StorageError);
    await storage.ensureBucket();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.[1]).toMatch(/does not support bucket policies.*"tasks\/"/);
    expect(JSON.stringify(warnings)).not.toContain(SECRET);
    await storage.put('tasks/a.png', Buffer.from('x'), { contentType: 'image/png' });
    // A second call on the existing bucket is harmless.
    await storage.ensureBucket();
    expect(await listKeys(storage, '')).toEqual(['tasks/a.png']);
    // No public prefix: no policy, no warning.
    const quiet: unknown[] = [];
    await storageFor({ bucket: 'private-stuff', publicPrefix: null, logger: { warn: (o) => quiet.push(o) } }).ensureBucket();
    expect(quiet).toEqual([]);
  });
});

describe('bucket policy', () => {
  it('makes only the image prefix publicly readable, with GetObject only', () => {
    const policy = publicReadPolicy('avatar-images', 'tasks/');
    expect(JSON.parse(JSON.stringify(policy))).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'PublicReadGeneratedImages',
          Effect: 'Allow',
          Principal: { AWS: ['*'] },
          Action: ['s3:GetObject'],
          Resource: ['arn:aws:s3:::avatar-images/tasks/*'],
        },
      ],
    });
  });

  it('refuses prefixes that would open more than the images', () => {
    for (const prefix of ['', 'tasks', '/tasks/', 'tasks/*', 't?sks/', '../', 'tasks//', '$' + '{aws:username}/']) {
      expect(() => publicReadPolicy('avatar-images', prefix), prefix).toThrow(/publicPrefix/);
      expect(() => storageFor({ publicPrefix: prefix }), prefix).toThrow(/publicPrefix/);
    }
    expect(() => publicReadPolicy('Bad_Bucket', 'tasks/')).toThrow(/bucket/);
  });
});
