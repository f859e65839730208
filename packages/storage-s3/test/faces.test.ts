import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CancelledError, readImageInfo, StorageError } from '@avatargen/core';
import { describeFaceSourceContract, encodePng } from '@avatargen/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3FaceSource, type S3FaceSource, type S3FaceSourceOptions } from '../src/index.js';
import { S3RVER_KEY, startS3rver, type TestS3, countCommands } from './support.js';

const SECRET = 'faces-test-secret-8c1e55';
const FACES = 'avatar-faces';
const EMPTY = 'avatar-faces-empty';
const BROKEN = 'avatar-faces-broken';

const female = ['female/anna.png', 'female/beth.PNG', 'female/sub/cara.png'];
const male = ['male/dan.png', 'male/eli.png'];

let s3: TestS3;
let client: S3Client;
const opened: S3FaceSource[] = [];

function faceSource(overrides: Partial<S3FaceSourceOptions> = {}): S3FaceSource {
  const source = createS3FaceSource({
    endpoint: s3.endpoint,
    accessKeyId: S3RVER_KEY,
    secretAccessKey: SECRET,
    bucket: FACES,
    ...overrides,
  });
  opened.push(source);
  return source;
}

/** A small PNG, different per key, so the bytes show which face came back. */
function face(key: string): Buffer {
  const seed = [...key].reduce((a, c) => a + c.charCodeAt(0), 0);
  return encodePng(8, 8, (x, y) => [(seed + x) % 256, (seed * 3 + y) % 256, seed % 256]);
}

async function upload(bucket: string, key: string, body: Buffer, contentType = 'image/png'): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }));
}

beforeAll(async () => {
  s3 = await startS3rver([FACES, EMPTY, BROKEN]);
  client = new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: S3RVER_KEY, secretAccessKey: SECRET },
  });
  for (const key of [...female, ...male]) await upload(FACES, key, face(key));
  // Not faces: other files, and bytes that only pretend to be an image.
  await upload(FACES, 'female/README.txt', Buffer.from('put female faces here'), 'text/plain');
  await upload(FACES, 'female/corrupt.png', Buffer.from('not really a png at all'));
  await upload(FACES, 'male/notes.md', Buffer.from('# male faces'), 'text/markdown');
  await upload(FACES, 'other/zed.png', face('other/zed.png'));
  await upload(BROKEN, 'female/bad-1.png', Buffer.from('garbage bytes, not an image'));
  await upload(BROKEN, 'female/bad-2.jpg', Buffer.from([0xff, 0xd8, 0x00, 0x01, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
  await upload(BROKEN, 'female/bad-3.webp', Buffer.from('RIFF....WEBPnope'));
});

afterAll(async () => {
  for (const source of opened) await source.close();
  client?.destroy();
  await s3?.close();
});

describeFaceSourceContract('S3 faces on s3rver', {
  create: () => ({
    source: faceSource(),
    faces: { f: female, m: male },
    empty: faceSource({ bucket: EMPTY }),
  }),
});

describe('S3 face source on s3rver', () => {
  it('draws faces of the locked gender only, and all of them over many draws', async () => {
    const source = faceSource();
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const drawn = await source.randomFace({ gender: 'f' });
      expect(female).toContain(drawn?.key);
      expect(Buffer.from(drawn?.data ?? []).equals(face(drawn?.key ?? ''))).toBe(true);
      expect(drawn?.contentType).toBe('image/png');
      seen.add(drawn?.key ?? '');
    }
    expect([...seen].sort()).toEqual([...female].sort());
    for (let i = 0; i < 10; i++) expect(male).toContain((await source.randomFace({ gender: 'm' }))?.key);
  });

  it('draws from both genders when gender is not locked, never outside male/ and female/', async () => {
    const source = faceSource();
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) seen.add((await source.randomFace({ gender: null }))?.key ?? 'none');
    expect([...seen].every((key) => female.includes(key) || male.includes(key))).toBe(true);
    expect([...seen].some((key) => key.startsWith('female/'))).toBe(true);
    expect([...seen].some((key) => key.startsWith('male/'))).toBe(true);
  });

  it('reads a recorded face again by its key (for pictures made in a later run); null when gone or outside the face folders', async () => {
    const source = faceSource();
    const again = await source.face?.('male/dan.png');
    expect(again?.key).toBe('male/dan.png');
    expect(Buffer.from(again?.data ?? []).equals(face('male/dan.png'))).toBe(true);
    expect(again?.contentType).toBe('image/png');
    expect(await source.face?.('male/gone.png')).toBeNull();
    expect(await source.face?.('female/corrupt.png')).toBeNull(); // not an image: skipped, as when drawn
    expect(await source.face?.('other/zed.png')).toBeNull(); // in the bucket, but not a face folder
    const aborted = new AbortController();
    aborted.abort();
    await expect(source.face?.('male/dan.png', { signal: aborted.signal })).rejects.toBeInstanceOf(CancelledError);
  });

  it('returns null for an empty bucket and for a gender without faces', async () => {
    expect(await faceSource({ bucket: EMPTY }).randomFace({ gender: 'm' })).toBeNull();
    const onlyFemale = faceSource({ prefixes: { f: 'female/', m: 'nobody/' } });
    expect(await onlyFemale.randomFace({ gender: 'm' })).toBeNull();
    expect(female).toContain((await onlyFemale.randomFace({ gender: null }))?.key);
  });

  it('skips bytes that are not an image, a bounded number of times, then returns null', async () => {
    const warnings: Array<Record<string, unknown>> = [];
    const source = faceSource({ bucket: BROKEN, maxTries: 2, logger: { warn: (object) => warnings.push(object) } });
    expect(await source.randomFace({ gender: 'f' })).toBeNull();
    // Two faces tried (maxTries), each refused with its reason, then one "gave up" line.
    const skipped = warnings.filter((w) => typeof w.reason === 'string');
    expect(skipped).toHaveLength(2);
    expect(warnings).toHaveLength(3);
    // The next call tries the faces not yet found bad.
    expect(await source.randomFace({ gender: 'f' })).toBeNull();
    const keys = warnings.filter((w) => typeof w.reason === 'string').map((w) => w.key);
    expect(new Set(keys).size).toBe(3);
    expect(JSON.stringify(warnings)).not.toContain(SECRET);
  });

  it('never returns the corrupt file among good faces', async () => {
    const source = faceSource({ maxTries: 10 });
    for (let i = 0; i < 30; i++) {
      const drawn = await source.randomFace({ gender: 'f' });
      expect(drawn?.key).not.toBe('female/corrupt.png');
      expect(readImageInfo(drawn?.data ?? new Uint8Array()).format).toBe('png');
    }
  });

  it('reuses the key listing for the cache period, and lists again after refresh()', async () => {
    const shared = new S3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: S3RVER_KEY, secretAccessKey: SECRET },
    });
    try {
      const counts = countCommands(shared);
      const source = faceSource({ client: shared, bucket: 'avatar-faces', cacheTtlMs: 600_000 });
      await Promise.all([source.randomFace({ gender: 'm' }), source.randomFace({ gender: 'm' })]);
      for (let i = 0; i < 5; i++) await source.randomFace({ gender: 'm' });
      expect(counts.get('ListObjectsV2Command')).toBe(1);
      expect(counts.get('GetObjectCommand')).toBe(7);

      await upload(FACES, 'male/new-face.png', face('male/new-face.png'));
      const before = new Set<string>();
      for (let i = 0; i < 20; i++) before.add((await source.randomFace({ gender: 'm' }))?.key ?? '');
      expect(before.has('male/new-face.png')).toBe(false);
      source.refresh();
      const after = new Set<string>();
      for (let i = 0; i < 40; i++) after.add((await source.randomFace({ gender: 'm' }))?.key ?? '');
      expect(after.has('male/new-face.png')).toBe(true);
      expect(counts.get('ListObjectsV2Command')).toBe(2);

      // No cache: every call lists.
      const uncached = faceSource({ client: shared, cacheTtlMs: 0 });
      await uncached.randomFace({ gender: 'f' });
      await uncached.randomFace({ gender: 'f' });
      expect(counts.get('ListObjectsV2Command')).toBe(4);
    } finally {
      await client.send(new DeleteObjectCommand({ Bucket: FACES, Key: 'male/new-face.png' }));
      shared.destroy();
    }
  });

  it('rejects with CancelledError when the signal is already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(faceSource().randomFace({ gender: 'f', signal: controller.signal })).rejects.toBeInstanceOf(CancelledError);
  });

  it('names a missing faces bucket in a StorageError, without the secret', async () => {
    const error = await faceSource({ bucket: 'no-faces-bucket' })
      .randomFace({ gender: 'f' })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as Error).message).toContain('bucket "no-faces-bucket" does not exist');
    expect(String(error)).not.toContain(SECRET);
  });
});
