import { Writable } from 'node:stream';
import {
  buildContainer,
  ConfigError,
  createLogger,
  type FaceSource,
  loadConfig,
  type ObjectStorage,
  runClosers,
  secretVariables,
} from '@avatargen/core';
import { encodePng } from '@avatargen/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Storage, s3Plugin } from '../src/index.js';
import { readAll, S3RVER_KEY, startS3rver, type TestS3 } from './support.js';

const SECRET = 'plugin-test-secret-5f2b9e77';

let s3: TestS3;

beforeAll(async () => {
  s3 = await startS3rver(['plugin-faces']);
});

afterAll(async () => {
  await s3?.close();
});

function env(overrides: Record<string, string> = {}) {
  return loadConfig(
    {
      LOG_LEVEL: 'info',
      S3_ENDPOINT: s3.endpoint,
      S3_ACCESS_KEY: S3RVER_KEY,
      S3_SECRET_KEY: SECRET,
      S3_BUCKET_NAME: 'plugin-images',
      S3_FACES_BUCKET_NAME: 'plugin-faces',
      S3_PUBLIC_URL_BASE: 'https://img.example.com',
      ...overrides,
    },
    [s3Plugin()],
  );
}

function capturingLogger(config: ReturnType<typeof env>) {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { logger: createLogger(config, destination, secretVariables([s3Plugin()])), lines };
}

describe('s3Plugin', () => {
  it('fills objectStorage and faceSource from the S3_* settings and closes its client', async () => {
    const config = env();
    const facesBucket = createS3Storage({
      endpoint: s3.endpoint,
      accessKeyId: S3RVER_KEY,
      secretAccessKey: SECRET,
      bucket: 'plugin-faces',
    });
    await facesBucket.put(
      'female/only.png',
      encodePng(4, 4, () => [1, 2, 3]),
      { contentType: 'image/png' },
    );
    await facesBucket.close();
    const { logger, lines } = capturingLogger(config);
    const built = await buildContainer([s3Plugin({ ensureBucket: true })], { config, logger }, ['objectStorage', 'faceSource']);
    try {
      const storage = built.resolvePort('objectStorage') as ObjectStorage;
      expect(storage.publicUrl('tasks/t 1/a.png')).toBe('https://img.example.com/plugin-images/tasks/t%201/a.png');
      // ensureBucket created the image bucket: a put works.
      await storage.put('tasks/t1/a.png', Buffer.from('png'), { contentType: 'image/png' });
      expect((await readAll(await storage.get('tasks/t1/a.png'))).toString()).toBe('png');

      // The face source reads the private faces bucket, not the image bucket.
      const faces = built.resolvePort('faceSource') as FaceSource;
      expect((await faces.randomFace({ gender: 'f' }))?.key).toBe('female/only.png');
      expect(await faces.randomFace({ gender: 'm' })).toBeNull();

      // s3rver has no bucket policies: exactly one clear line through the plugin's logger.
      const policyLines = lines.filter((line) => line.includes('does not support bucket policies'));
      expect(policyLines).toHaveLength(1);
      expect(JSON.parse(policyLines[0] as string)).toMatchObject({ level: 40, plugin: '@avatargen/storage-s3', bucket: 'plugin-images' });
      expect(lines.join('')).not.toContain(SECRET);
      expect(built.closers).toHaveLength(1);
    } finally {
      await runClosers(built.closers);
    }
  });

  it('provides only objectStorage when faces are turned off', async () => {
    const config = env({ S3_BUCKET_NAME: 'plugin-images' });
    const { logger } = capturingLogger(config);
    const built = await buildContainer([s3Plugin({ faces: false })], { config, logger }, ['objectStorage']);
    expect(built.hasPort('objectStorage')).toBe(true);
    expect(built.hasPort('faceSource')).toBe(false);
    await runClosers(built.closers);
  });

  it('refuses to register without S3_ENDPOINT, or with a bad bucket name, naming the variable', async () => {
    const config = loadConfig({ LOG_LEVEL: 'silent' });
    const { logger } = capturingLogger(config);
    await expect(buildContainer([s3Plugin()], { config, env: {}, logger }, [])).rejects.toThrow(
      /S3_ENDPOINT is required \(plugin @avatargen\/storage-s3\)/,
    );
    const bad = env({ S3_BUCKET_NAME: 'Not_A_Bucket' });
    const error = await buildContainer([s3Plugin()], { config: bad, logger }, []).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('S3_BUCKET_NAME');
    expect((error as Error).message).not.toContain(SECRET);
  });
});
