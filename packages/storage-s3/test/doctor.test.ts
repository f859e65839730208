import {
  type AvatarGen,
  createAvatarGen,
  definePlugin,
  type ImageProcessor,
  type ImagePromptProvider,
  type ImageProvider,
  neutralStyle,
  type PersonaProvider,
  readImageInfo,
  type TaskView,
} from '@avatargen/core';
import { createTestDatabase, makeBorderedPng, makeGridPng, samplePersona, type TestDatabase } from '@avatargen/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createS3Storage, type S3Storage } from '../src/index.js';
import { S3RVER_KEY, startS3rver, type TestS3 } from './support.js';

// `avatargen doctor` on S3: the same doctor as on the filesystem storage, through the port alone
// (one streamed list of tasks/, deleteMany). The offline services below stand in for the providers.

const BUCKET = 'doctor-images';
let s3: TestS3;
let db: TestDatabase;
let storage: S3Storage;
let gen: AvatarGen;

const base = makeBorderedPng({ width: 32, height: 32, border: 2 });
const grid = makeGridPng({ cell: 24, gutter: 4, margin: 4 });
const calls = { base: 0, grid: 0 };

const services = definePlugin({
  name: 'offline-services',
  register(context) {
    context.provide('personaProvider', {
      async generate(request) {
        const personas = Array.from({ length: request.count }, (_, i) =>
          samplePersona({ firstName: `S${request.seed.replace(/\W/g, '')}x${i}`, gender: i % 2 ? 'm' : 'f' }),
        );
        return { personas, rejected: [] };
      },
    } satisfies PersonaProvider);
    context.provide('imagePromptProvider', {
      async nextPrompt(request) {
        return `shot ${request.previousPrompts.length + 1}`;
      },
    } satisfies ImagePromptProvider);
    context.provide('imageProvider', {
      async baseImage() {
        calls.base++;
        return { data: base, contentType: 'image/png' };
      },
      async pictures() {
        calls.grid++;
        return { kind: 'grid', image: { data: grid, contentType: 'image/png' }, rows: 2, cols: 2 };
      },
    } satisfies ImageProvider);
    context.provide('imageProcessor', {
      async splitGrid(image) {
        return [image, image, image, image];
      },
      async trimWhitespace(image) {
        return image;
      },
      async cropWhiteBorders(image) {
        return image;
      },
      async randomizeStyle(image, { seed }) {
        return {
          data: image,
          contentType: 'image/png',
          params: neutralStyle(seed),
        };
      },
      async thumbnail(image) {
        return image;
      },
      async processGrid(image) {
        const info = readImageInfo(image);
        return [0, 1, 2, 3].map(() => ({
          data: image,
          contentType: info.contentType,
          width: info.width,
          height: info.height,
          style: null,
        }));
      },
      async processPicture(image) {
        const info = readImageInfo(image);
        return { data: image, contentType: info.contentType, width: info.width, height: info.height, style: null };
      },
    } satisfies ImageProcessor);
    context.provide('objectStorage', storage);
  },
});

async function waitEnded(id: string): Promise<TaskView> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const task = await gen.tasks.get(id);
    if (['completed', 'partial', 'failed', 'cancelled'].includes(task.status)) return task;
    if (Date.now() > deadline) throw new Error(`task ${id} is still ${task.status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function keys(prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const object of storage.list(prefix)) out.push(object.key);
  return out;
}

beforeAll(async () => {
  s3 = await startS3rver([BUCKET]);
  db = await createTestDatabase('avatargen_s3_doctor');
  storage = createS3Storage({ endpoint: s3.endpoint, accessKeyId: S3RVER_KEY, secretAccessKey: 'doctor-test-secret', bucket: BUCKET });
  gen = await createAvatarGen({
    config: { DATABASE_URL: db.url, LOG_LEVEL: 'silent', JOB_RETRY_DELAY_MS: 5 },
    plugins: [services],
    pipeline: { reconcileIntervalMs: 300, maintenanceIntervalSeconds: 1, pollingIntervalSeconds: 0.5 },
  });
  await gen.worker.start();
});

afterAll(async () => {
  await gen?.close();
  await storage?.close();
  await db?.drop();
  await s3?.close();
});

describe('doctor on S3 (s3rver)', () => {
  it('finds a lost picture and orphans, deletes the orphans, and the retry makes the picture again', async () => {
    const submitted = await gen.tasks.submit({ description: 'Potters in Kyoto', language: 'en', count: 10, imagesPerPersona: 4 });
    expect((await waitEnded(submitted.id)).status).toBe('completed');
    const [row] = await gen.orm.em.fork().execute('select storage_prefix from generation_tasks where id = ?', [submitted.id]);
    const prefix = row?.storage_prefix as string;
    expect(await gen.doctor.run()).toMatchObject({ objects: 50, rows: 50, healthy: true, missing: { count: 0 }, orphans: { count: 0 } });

    const persona = (await gen.personas.list(submitted.id, { page: 1, perPage: 1 })).personas[0];
    const lost = persona?.images[1];
    await storage.delete(lost?.key as string);
    await storage.put(`tasks/${prefix}/stray.png`, base, { contentType: 'image/png' });
    await storage.put('tasks/no-such-task/1/0.png', base, { contentType: 'image/png' });

    const report = await gen.doctor.run();
    expect(report.missing.items).toEqual([{ taskId: submitted.id, personaId: persona?.id, kind: 'image', idx: 1, key: lost?.key }]);
    expect(report.orphans.items).toEqual(
      expect.arrayContaining([
        { key: `tasks/${prefix}/stray.png`, size: base.length, taskId: submitted.id },
        { key: 'tasks/no-such-task/1/0.png', size: base.length, taskId: null },
      ]),
    );
    expect(report.orphans.count).toBe(2);
    expect(report.healthy).toBe(false);

    const grids = calls.grid;
    const fixed = await gen.doctor.run({ fix: true });
    expect(fixed.fixed).toEqual({
      orphansDeleted: 2,
      imageRowsDeleted: 1,
      baseKeysCleared: 0,
      personasReset: 1,
      tasksRetried: [submitted.id],
      tasksNotRetried: [],
      tempFilesRemoved: null, // S3 has no temporary files
      errors: [],
    });
    expect(await keys('tasks/no-such-task/')).toEqual([]);
    expect(await keys(`tasks/${prefix}/stray`)).toEqual([]);

    const done = await waitEnded(submitted.id);
    expect(done.status).toBe('completed');
    expect(done.progress).toMatchObject({ personasStored: 10, imagesStored: 40 });
    expect(calls.grid - grids).toBe(1);
    expect(await gen.doctor.run()).toMatchObject({ objects: 50, rows: 50, healthy: true, missing: { count: 0 }, orphans: { count: 0 } });
  }, 120_000);
});
