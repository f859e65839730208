import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  defaultSettings,
  IMAGE_OUTPUT_DEFAULTS,
  imageOutputOf,
  settingsSchema,
  ValidationError,
  withImageOutput,
} from '../src/index.js';
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
