import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AvatarGen, createAvatarGen, definePlugin, type FaceSource, readImageInfo, type ReferenceFace } from '@avatargen/core';
import { createTestDatabase, encodePng, type TestDatabase } from '@avatargen/core/testing';
import { imageOpencvPlugin } from '@avatargen/image-opencv';
import { openaiPlugin } from '@avatargen/provider-openai';
import { createLocalProviders } from '@avatargen/provider-local';
import { filesystemStoragePlugin } from '@avatargen/storage-filesystem';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpenAIServer, type RecordedRequest, startOpenAIServer } from '../support/openai-server.js';

/**
 * Issue 23, end to end: whole tasks in one process, with the real OpenAI provider against the
 * Images API stand-in, the real image processor and storage. With reference faces and gender lock
 * on, every edits call must carry input_fidelity and the task's output options, and every picture
 * request the persona's base selfie then the face it was made from. A model that refuses
 * input_fidelity costs one refused call, not a failed task.
 */
const KEY = 'sk-test-identity-5e1f';
const faces: ReferenceFace[] = ['f', 'm'].flatMap((gender, g) =>
  [0, 1].map((i) => ({
    key: `faces/${gender}/${i}.png`,
    contentType: 'image/png',
    data: encodePng(20, 20, (x, y) => [40 + g * 90 + i * 40, (x * 11) % 256, (y * 7) % 256]),
  })),
);

/** Faces by the persona's gender, in turn; found again by key (a later run's pictures). */
class Faces implements FaceSource {
  private next = 0;
  async randomFace({ gender }: { gender: string | null }): Promise<ReferenceFace | null> {
    const pool = faces.filter((f) => gender === null || f.key.startsWith(`faces/${gender}/`));
    return pool[this.next++ % pool.length] ?? null;
  }
  async face(key: string): Promise<ReferenceFace | null> {
    return faces.find((f) => f.key === key) ?? null;
  }
}

let db: TestDatabase;
let root: string;
let openai: OpenAIServer;
let gen: AvatarGen;

beforeAll(async () => {
  db = await createTestDatabase('avatargen_e2e_identity');
  root = mkdtempSync(join(tmpdir(), 'avatargen-identity-'));
  openai = await startOpenAIServer({
    apiKey: KEY,
    // as the service does: the asked format at the asked compression
    encode: (png, format, compression) =>
      format === 'jpeg'
        ? sharp(png)
            .jpeg({ quality: compression ?? 100 })
            .toBuffer()
        : sharp(png)
            .webp({ quality: compression ?? 100 })
            .toBuffer(),
  });
  const local = createLocalProviders();
  gen = await createAvatarGen({
    config: {
      DATABASE_URL: db.url,
      LOG_LEVEL: 'silent',
      OPENAI_API_KEY: KEY,
      OPENAI_BASE_URL: openai.baseURL,
      // one call at a time: the refusal below is met exactly once
      OPENAI_CONCURRENCY: 1,
      IMAGE_PROCESSOR_THREADS: 1,
      JOB_RETRY_DELAY_MS: 5,
    },
    plugins: [
      definePlugin({
        name: 'text-and-faces',
        provides: ['personaProvider', 'imagePromptProvider', 'faceSource'],
        register(context) {
          context.provide('personaProvider', local.personas);
          context.provide('imagePromptProvider', local.prompts);
          context.provide('faceSource', new Faces());
        },
      }),
      openaiPlugin(),
      imageOpencvPlugin({ threads: 1 }),
      filesystemStoragePlugin({ root }),
    ],
    pipeline: { reconcileIntervalMs: 300, maintenanceIntervalSeconds: 1, pollingIntervalSeconds: 0.5 },
  });
  await gen.worker.start();
  await gen.settings.update({
    randomize_face_base: true,
    randomize_face_gender_lock: true,
    image_quality: 'low',
    image_size: '1024x1024',
    image_output_format: 'jpeg',
    image_output_compression: 80,
    image_background: 'opaque',
  });
}, 120_000);

afterAll(async () => {
  await gen?.close();
  await openai?.close();
  await db?.drop();
  rmSync(root, { recursive: true, force: true });
}, 60_000);

async function finished(id: string) {
  for (let i = 0; i < 1200; i++) {
    const task = await gen.tasks.get(id);
    if (['completed', 'partial', 'failed', 'cancelled'].includes(task.status)) return task;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`task ${id} did not finish`);
}

const names = (r: RecordedRequest) => r.files.map((f) => `${f.filename} ${f.type}`);

describe('a task with reference faces and gender lock, against the Images API stand-in', () => {
  it('every edits call carries input_fidelity and the output options; every picture request the base, then its face', async () => {
    // the task asks for webp at 60 over the site's jpeg: its snapshot wins
    const submitted = await gen.tasks.submit({
      description: 'Beekeepers in Slovenia',
      language: 'en',
      count: 10,
      imagesPerPersona: 8,
      imageOutput: { format: 'webp', compression: 60 },
    });
    const task = await finished(submitted.id);
    expect(task.status).toBe('completed');
    expect(task.settings).toMatchObject({ image_output_format: 'webp', image_output_compression: 60, image_quality: 'low' });

    const requests = openai.requests;
    expect(requests.every((r) => r.endpoint === 'edits' && r.problems.length === 0)).toBe(true);
    for (const r of requests) {
      expect(r.fields).toMatchObject({
        input_fidelity: 'high',
        quality: 'low',
        size: '1024x1024',
        output_format: 'webp',
        output_compression: 60,
        background: 'opaque',
      });
    }
    const bases = requests.filter((r) => r.files.length === 1);
    const pictures = requests.filter((r) => r.files.length === 2);
    expect(bases).toHaveLength(10);
    expect(pictures).toHaveLength(20);
    expect(bases.every((r) => names(r)[0] === 'face.png image/png')).toBe(true);
    // the base selfie came back as webp and goes first; the face it was made from second
    expect(new Set(pictures.map((r) => names(r).join(', ')))).toEqual(new Set(['base.webp image/webp, face.png image/png']));

    const rows = await gen.orm.em.fork().execute('select id, base_image_key, base_face_key from personas where task_id = ?', [task.id]);
    expect(rows).toHaveLength(10);
    const faceBytes = new Map(faces.map((f) => [f.key, Buffer.from(f.data)]));
    const sentFaces = new Set(pictures.map((r) => r.files[1]?.bytes.toString('base64')));
    for (const row of rows) {
      expect(row.base_image_key).toMatch(/\/base\.webp$/);
      expect(row.base_face_key).toMatch(/^faces\/[fm]\//);
      expect(sentFaces.has(faceBytes.get(row.base_face_key)?.toString('base64'))).toBe(true);
    }
    expect(readImageInfo(pictures[0]?.files[0]?.bytes as Buffer).format).toBe('webp');
  });

  it('a model that refuses input_fidelity: one refused call, then the task runs without it', async () => {
    openai.reset();
    openai.refuse('gpt-image-1.5', ['input_fidelity']);
    const submitted = await gen.tasks.submit({ description: 'Lighthouse keepers', language: 'en', count: 10, imagesPerPersona: 4 });
    const task = await finished(submitted.id);
    expect(task.status).toBe('completed');
    const refused = openai.requests.filter((r) => r.answer === 'rejected');
    expect(refused).toHaveLength(1);
    expect(refused[0]?.problems).toEqual(["Unknown parameter: 'input_fidelity'."]);
    const accepted = openai.requests.filter((r) => r.answer !== 'rejected');
    expect(accepted).toHaveLength(20);
    expect(
      accepted.every(
        (r) => r.fields.input_fidelity === undefined && r.fields.output_format === 'jpeg' && r.fields.output_compression === 80,
      ),
    ).toBe(true);
    expect(accepted.filter((r) => r.files.length === 2)).toHaveLength(10);
  });
});
