import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BaseImageRequest,
  definePlugin,
  defaultSettings,
  IMAGE_OUTPUT_DEFAULTS,
  type ImageProvider,
  imageOutputOf,
  type PicturesRequest,
  ProviderError,
  type ReferenceFace,
  settingsSchema,
  ValidationError,
  withImageOutput,
} from '../src/index.js';
import { makeBorderedPng, makeGridPng } from '../src/testing.js';
import { type Harness, REQUEST, startHarness, waitForStatus } from './support/harness.js';

// Issue 23: the Images API's output options as settings, overridden per task, snapshotted.

describe('output options as settings', () => {
  it('defaults to what the service does when nothing is sent', () => {
    expect(defaultSettings()).toMatchObject({
      image_quality: 'auto',
      image_size: 'auto',
      image_output_format: 'png',
      image_output_compression: 100,
      image_background: 'auto',
    });
  });

  it('refuses values outside the API choices, a compression outside 0-100 and transparent jpeg, naming the field', () => {
    const result = settingsSchema.safeParse({ image_quality: 'ultra', image_size: '800x600', image_output_compression: '101' });
    expect(result.success ? {} : Object.fromEntries(result.error.issues.map((i) => [String(i.path[0]), i.message]))).toEqual({
      image_quality: 'Choose one of auto, low, medium, high.',
      image_size: 'Choose one of auto, 1024x1024, 1536x1024, 1024x1536.',
      image_output_compression: 'Enter a whole number from 0 to 100.',
    });
    const transparent = settingsSchema.safeParse({ image_output_format: 'jpeg', image_background: 'transparent' });
    expect(transparent.success ? [] : transparent.error.issues.map((i) => [i.path[0], i.message])).toEqual([
      ['image_background', 'A transparent background needs the png or webp output format.'],
    ]);
    expect(settingsSchema.parse({ image_output_compression: ' 60 ' }).image_output_compression).toBe(60);
  });

  it('reads a snapshot from before these settings (no keys) or with a stale value as the defaults', () => {
    expect(imageOutputOf({})).toEqual(IMAGE_OUTPUT_DEFAULTS);
    expect(imageOutputOf({ image_quality: 'high', image_size: 'huge' })).toEqual({ ...IMAGE_OUTPUT_DEFAULTS, image_quality: 'high' });
  });
});

describe('withImageOutput: a task over the site settings', () => {
  const site = { ...defaultSettings(), image_quality: 'low' as const, image_output_format: 'webp' as const };

  it('puts the given options over the site, and leaves empty ones to the site', () => {
    expect(withImageOutput(site, undefined)).toBe(site);
    const merged = withImageOutput(site, { quality: 'high', size: '1536x1024', format: '', compression: '80', background: null });
    expect(merged).toMatchObject({
      image_quality: 'high',
      image_size: '1536x1024',
      image_output_format: 'webp',
      image_output_compression: 80,
      image_background: 'auto',
    });
  });

  it('names the field of every refused option: imageOutput.<name>', () => {
    const error = (() => {
      try {
        withImageOutput(site, { quality: 'best', compression: -1, colour: 'red' });
      } catch (e) {
        return e as ValidationError;
      }
      throw new Error('expected a ValidationError');
    })();
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.fields).toEqual({
      'imageOutput.quality': 'Choose one of auto, low, medium, high.',
      'imageOutput.compression': 'Enter a whole number from 0 to 100.',
      'imageOutput.colour': 'Unknown output option; use quality, size, format, compression, background.',
    });
    expect(() => withImageOutput(site, 'high')).toThrow(ValidationError);
    // transparent over the site's webp is fine; with jpeg it is refused on the field that was given
    expect(withImageOutput(site, { background: 'transparent' }).image_background).toBe('transparent');
    expect(() => withImageOutput(site, { background: 'transparent', format: 'jpeg' })).toThrow(/imageOutput.background/);
    expect(() => withImageOutput({ ...site, image_background: 'transparent' }, { format: 'jpeg' })).toThrow(/imageOutput.format/);
  });
});

describe('submission snapshots the options; an old snapshot without them still runs', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ worker: false });
  });
  afterAll(() => h.close());

  it('records the site settings with the task override, and refuses a bad override before storing anything', async () => {
    await h.gen.settings.update({ image_quality: 'medium', image_output_format: 'jpeg', image_output_compression: 70 });
    const task = await h.gen.tasks.submit({ ...REQUEST, imageOutput: { quality: 'high', compression: 90 } });
    expect(task.settings).toMatchObject({
      image_quality: 'high',
      image_output_format: 'jpeg',
      image_output_compression: 90,
      image_size: 'auto',
      image_background: 'auto',
    });
    await h.gen.settings.update({ image_quality: 'low' });
    expect((await h.gen.tasks.get(task.id)).settings.image_quality).toBe('high');
    const before = (await h.gen.tasks.list()).total;
    await expect(h.gen.tasks.submit({ ...REQUEST, imageOutput: { size: '4096x4096' } })).rejects.toMatchObject({
      fields: { 'imageOutput.size': 'Choose one of auto, 1024x1024, 1536x1024, 1024x1536.' },
    });
    // the request's own fields and the output options are refused together
    await expect(h.gen.tasks.submit({ ...REQUEST, count: 5, imageOutput: { quality: 'best' } })).rejects.toMatchObject({
      fields: { count: 'Generate at least 10 personas.', 'imageOutput.quality': 'Choose one of auto, low, medium, high.' },
    });
    expect((await h.gen.tasks.list()).total).toBe(before);
  });

  it('a task whose snapshot has none of the keys (stored before them) runs to completion', async () => {
    const task = await h.gen.tasks.submit(REQUEST);
    await h.gen.orm.em
      .fork()
      .execute(
        `update generation_tasks set settings = settings - 'image_quality' - 'image_size' - 'image_output_format' - 'image_output_compression' - 'image_background' - 'randomize_face_gender_lock' where id = ?`,
        [task.id],
      );
    expect(Object.keys((await h.gen.tasks.get(task.id)).settings)).not.toContain('image_quality');
    await h.gen.worker.start();
    expect((await waitForStatus(h.gen, task.id, ['completed', 'failed', 'partial'])).status).toBe('completed');
  });
});

describe('the pipeline hands the image provider the output options and, with gender lock, the base face', () => {
  const faces: ReferenceFace[] = [
    { key: 'faces/1.png', contentType: 'image/png', data: makeBorderedPng({ width: 12, height: 12, border: 1 }) },
    { key: 'faces/2.png', contentType: 'image/png', data: makeBorderedPng({ width: 14, height: 12, border: 1 }) },
  ];
  const bases: BaseImageRequest[] = [];
  const pictures: PicturesRequest[] = [];
  let failPictures = false;
  let faceLookups = 0;
  let drawn = 0;
  /** Records what it is asked; its pictures fail while `failPictures` (to leave grids for a later run). */
  const recorder: ImageProvider = {
    async baseImage(request) {
      bases.push(request);
      return { data: makeBorderedPng(), contentType: 'image/png' };
    },
    async pictures(request) {
      pictures.push(request);
      if (failPictures) throw ProviderError.badRequest('test', 'no pictures in this run');
      return { kind: 'grid', image: { data: makeGridPng(), contentType: 'image/png' }, rows: 2, cols: 2 };
    },
  };
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      plugins: [
        definePlugin({
          name: 'recording-images-and-faces',
          register(context) {
            context.provide('imageProvider', recorder);
            context.provide('faceSource', {
              async randomFace() {
                return faces[drawn++ % faces.length] ?? null;
              },
              async face(key: string) {
                faceLookups++;
                return faces.find((f) => f.key === key) ?? null;
              },
            });
          },
        }),
      ],
    });
    await h.gen.settings.update({
      randomize_face_base: true,
      image_quality: 'high',
      image_output_format: 'webp',
      image_output_compression: 75,
    });
  });
  afterAll(() => h.close());

  it('with gender lock: every pictures request has the face its base was made from, also in a later run (FaceSource.face)', async () => {
    failPictures = true;
    const task = await h.gen.tasks.submit({ ...REQUEST, imageOutput: { size: '1024x1536' } });
    expect((await waitForStatus(h.gen, task.id, ['partial', 'failed', 'completed'])).status).toBe('failed');
    const output = { quality: 'high', size: '1024x1536', format: 'webp', compression: 75, background: 'auto' };
    expect(bases).toHaveLength(10);
    expect(bases.every((b) => b.referenceFace !== undefined && JSON.stringify(b.output) === JSON.stringify(output))).toBe(true);
    expect(pictures.length).toBeGreaterThan(0);
    const faceOf = new Map(
      (await h.gen.orm.em.fork().execute('select id, base_face_key from personas where task_id = ?', [task.id])).map((r) => [
        r.id,
        r.base_face_key,
      ]),
    );
    const check = (requests: PicturesRequest[]) => {
      for (const r of requests) {
        const personaId = Number(r.seed.split(':')[1]);
        expect(r.referenceFace?.key).toBe(faceOf.get(personaId));
        expect(r.output).toEqual(output);
      }
    };
    check(pictures);
    expect(faceLookups).toBe(0);

    // the retry makes only the grids, in a new run: the faces are found again by their keys
    failPictures = false;
    pictures.length = 0;
    const basesBefore = bases.length;
    await h.gen.tasks.retry(task.id);
    expect((await waitForStatus(h.gen, task.id, ['partial', 'failed', 'completed'])).status).toBe('completed');
    expect(bases).toHaveLength(basesBefore);
    expect(pictures).toHaveLength(10);
    check(pictures);
    expect(faceLookups).toBeGreaterThanOrEqual(10);
  });

  it('without gender lock the pictures go with the base alone', async () => {
    await h.gen.settings.update({ randomize_face_gender_lock: false });
    pictures.length = 0;
    const task = await h.gen.tasks.submit(REQUEST);
    expect((await waitForStatus(h.gen, task.id, ['partial', 'failed', 'completed'])).status).toBe('completed');
    expect(pictures).toHaveLength(10);
    expect(pictures.every((r) => r.referenceFace === undefined)).toBe(true);
  });
});
