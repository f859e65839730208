import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Pictures, readImageInfo } from '../src/index.js';
import { makeGridPng } from '../src/testing.js';
import { borderedPicture, PICTURE } from './support/fakes.js';
import { type Harness, REQUEST, startHarness, waitForStatus } from './support/harness.js';

const grid = (rows: number, cols: number): Pictures => ({
  kind: 'grid',
  image: { data: makeGridPng({ cell: 24, gutter: 4, margin: 4 }), contentType: 'image/png' },
  rows,
  cols,
});
const images = (count: number): Pictures => ({
  kind: 'images',
  images: Array.from({ length: count }, (_, i) => ({ data: borderedPicture(i), contentType: 'image/png' })),
});

describe('pipeline: a provider that returns separate pictures', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ fakes: { pictures: 'images' } });
  });
  afterAll(() => h.close());

  it('stores every picture, each processed on its own (white border cropped, own style seed)', async () => {
    const task = await h.gen.tasks.submit({ ...REQUEST, count: 10, imagesPerPersona: 8 });
    const done = await waitForStatus(h.gen, task.id, ['completed', 'partial', 'failed']);
    expect(done.errorLog).toEqual([]);
    expect(done.status).toBe('completed');
    expect(done.progress).toMatchObject({ personasStored: 10, imagesStored: 80 });
    expect(h.fakes.calls.grid).toBe(20);
    const { personas } = await h.gen.personas.list(task.id, { page: 1, perPage: 10 });
    const inner = PICTURE.size - 2 * PICTURE.border;
    for (const persona of personas) {
      expect(persona.images.map((i) => i.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(persona.images.map((i) => i.key)).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((i) => `tasks/${task.id}/${persona.id}/${i}.png`));
      const stored = persona.images.map((i) => readFileSync(join(h.storageRoot, i.key)));
      for (const bytes of stored) expect([readImageInfo(bytes).width, readImageInfo(bytes).height]).toEqual([inner, inner]);
      // picture i of each shot is its own picture, not one picture four times
      expect(new Set(stored.slice(0, 4).map((b) => b.toString('base64'))).size).toBe(4);
    }
    const rows = await h.gen.orm.em
      .fork()
      .execute(`select grid_no, idx, width, height, style->>'seed' as seed from persona_images where persona_id = ? order by idx`, [
        personas[0]?.id,
      ]);
    expect(rows.map((r) => [r.grid_no, r.idx, r.width, r.height])).toEqual(
      [0, 1, 2, 3, 4, 5, 6, 7].map((idx) => [Math.floor(idx / 4), idx, inner, inner]),
    );
    // the style seed is the shot's seed and the picture's index, as a grid cell's is
    expect(rows.map((r) => String(r.seed).split(':').slice(-2).join(':'))).toEqual([
      '0:0',
      '0:1',
      '0:2',
      '0:3',
      '1:0',
      '1:1',
      '1:2',
      '1:3',
    ]);
  });
});

describe('pipeline: pictures checked at the edge', () => {
  it('takes a 1x4 grid for four pictures, and retries then gives up on a 3x3 grid or a wrong count', async () => {
    const h = await startHarness({
      fakes: {
        // persona shots by seed "task:persona:shot": shot 0 a 1x4 grid, shot 1 a 3x3 grid, shot 2 three images
        pictures: (request) => {
          const shot = request.seed.split(':').at(-1);
          return shot === '0' ? grid(1, 4) : shot === '1' ? grid(3, 3) : shot === '2' ? images(request.count - 1) : images(request.count);
        },
      },
    });
    try {
      const task = await h.gen.tasks.submit({ ...REQUEST, count: 10, imagesPerPersona: 16 });
      const done = await waitForStatus(h.gen, task.id, ['completed', 'partial', 'failed']);
      expect(done.status).toBe('partial');
      expect(done.progress).toMatchObject({ personasStored: 10, imagesStored: 80 });
      const messages = done.errorLog.map((e) => e.message).join('\n');
      expect(messages).toContain('grid 2: ');
      expect(messages).toContain('a 3x3 grid holds 9 shots, not the 4 asked for');
      expect(messages).toContain('grid 3: ');
      expect(messages).toContain('3 images, not the 4 asked for');
      expect(messages).not.toContain('grid 1: ');
      expect(messages).not.toContain('grid 4: ');
      // per persona: shots 0 and 3 once each; shots 1 and 2 JOB_RETRY_LIMIT (3) times each
      expect(h.fakes.calls.grid).toBe(10 * (2 + 3 * 2));
      const { personas } = await h.gen.personas.list(task.id, { page: 1, perPage: 10 });
      for (const persona of personas) expect(persona.images.map((i) => i.index)).toEqual([0, 1, 2, 3, 12, 13, 14, 15]);
    } finally {
      await h.close();
    }
  });

  it('refuses an answer that is neither kind, and a picture that is not an image, then works when retried', async () => {
    const h = await startHarness({
      fakes: {
        pictures: (request, attempt) => {
          if (attempt === 1) return { kind: 'strip' } as unknown as Pictures;
          if (attempt === 2) {
            const answer = images(request.count);
            if (answer.kind === 'images') answer.images[2] = { data: Buffer.from('not a picture'), contentType: 'image/png' };
            return answer;
          }
          return images(request.count);
        },
      },
    });
    try {
      const task = await h.gen.tasks.submit({ ...REQUEST, count: 10, imagesPerPersona: 4 });
      const done = await waitForStatus(h.gen, task.id, ['completed', 'partial', 'failed']);
      expect(done.status).toBe('completed');
      expect(done.progress).toMatchObject({ imagesStored: 40 });
      expect(h.fakes.calls.grid).toBe(30);
    } finally {
      await h.close();
    }
  });
});
