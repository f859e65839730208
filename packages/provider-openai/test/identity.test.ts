import { ConfigError, ProviderError, readImageInfo, type ReferenceFace } from '@avatargen/core';
import { makeBorderedPng, makeGridPng, samplePersona } from '@avatargen/core/testing';
import { describe, expect, it } from 'vitest';
import { createOpenAIImageProvider, type ProviderLogger } from '../src/index.js';
import { facePng, providerFor, useOpenAIServer } from './helpers.js';

// Issue 23: input_fidelity, several input images, the output options, and the drop-and-remember
// path for a model that refuses an optional parameter. All against the stand-in's wire checks.
const persona = samplePersona();
const seed = 's';
const server = useOpenAIServer();

const base = { data: makeBorderedPng({ width: 40, height: 32, border: 2 }), contentType: 'image/png' };
const face: ReferenceFace = { key: 'female/face-7.png', contentType: 'image/png', data: facePng([120, 30, 200]) };

/** The smallest byte string core reads as a JPEG (SOI, a baseline frame header of 52x52, EOI). */
function tinyJpeg(width = 52, height = 52): Buffer {
  const sof = [0xff, 0xc0, 0x00, 0x0b, 0x08, height >> 8, height & 0xff, width >> 8, width & 0xff, 0x01, 0x01, 0x11, 0x00];
  return Buffer.from([0xff, 0xd8, ...sof, 0xff, 0xd9]);
}

class Lines implements ProviderLogger {
  readonly warnings: Array<{ obj: object; msg: string }> = [];
  debug(): void {}
  warn(obj: object, msg: string): void {
    this.warnings.push({ obj, msg });
  }
}

describe('pictures: the base and the reference face, input_fidelity, output options (multipart)', () => {
  it('sends base then face as image[] parts, input_fidelity high and every output option', async () => {
    server().enqueue({ kind: 'image', endpoint: 'edits', image: tinyJpeg() });
    const pictures = await providerFor(server()).pictures({
      persona,
      base,
      referenceFace: face,
      output: { quality: 'high', size: '1024x1536', format: 'jpeg', compression: 70, background: 'opaque' },
      prompt: 'reading on a train',
      count: 4,
      seed,
    });

    const request = server().requests[0];
    expect(request?.problems).toEqual([]);
    expect(request?.files.map((f) => [f.field, f.filename, f.type])).toEqual([
      ['image[]', 'base.png', 'image/png'],
      ['image[]', 'face.png', 'image/png'],
    ]);
    expect(request?.files[0]?.bytes.equals(base.data)).toBe(true);
    expect(request?.files[1]?.bytes.equals(face.data)).toBe(true);
    expect(request?.fields).toMatchObject({
      input_fidelity: 'high',
      quality: 'high',
      size: '1024x1536',
      output_format: 'jpeg',
      output_compression: 70,
      background: 'opaque',
    });
    // The answer's format follows output_format: the pipeline stores it by this content type.
    if (pictures.kind !== 'grid') throw new Error('expected a grid');
    expect(pictures.image.contentType).toBe('image/jpeg');
  });

  it('without a reference face sends the base alone; png gets no output_compression', async () => {
    await providerFor(server()).pictures({
      persona,
      base,
      output: { quality: 'low', format: 'png', compression: 50, background: 'auto' },
      prompt: 'x',
      count: 4,
      seed,
    });
    const request = server().requests[0];
    expect(request?.problems).toEqual([]);
    expect(request?.files).toHaveLength(1);
    expect(request?.fields.output_compression).toBeUndefined();
    expect(request?.fields).toMatchObject({ quality: 'low', output_format: 'png', background: 'auto', input_fidelity: 'high' });
  });

  it('sends input_fidelity low, or none when it is off', async () => {
    await providerFor(server(), { inputFidelity: 'low' }).pictures({ persona, base, prompt: 'x', count: 4, seed });
    await providerFor(server(), { inputFidelity: 'off' }).baseImage({ persona, referenceFace: face, seed });
    expect(server().requests.map((r) => [r.problems, r.fields.input_fidelity])).toEqual([
      [[], 'low'],
      [[], undefined],
    ]);
  });

  it('refuses an input_fidelity it does not know', () => {
    expect(() => createOpenAIImageProvider({ apiKey: 'k', inputFidelity: 'max' as never })).toThrow(ConfigError);
  });
});

describe('text-to-image: the output options in the JSON body, no input_fidelity', () => {
  it('sends quality, size, output_format, output_compression and background', async () => {
    server().enqueue({ kind: 'image', endpoint: 'generations', image: tinyJpeg(40, 30) });
    const image = await providerFor(server()).baseImage({
      persona,
      seed,
      output: { quality: 'medium', size: '1024x1024', format: 'jpeg', compression: 85, background: 'opaque' },
    });
    const request = server().requests[0];
    expect(request?.contentType).toMatch(/^application\/json/);
    expect(request?.problems).toEqual([]);
    expect(request?.fields).toEqual({
      model: 'gpt-image-1.5',
      prompt: expect.any(String),
      size: '1024x1024',
      quality: 'medium',
      output_format: 'jpeg',
      output_compression: 85,
      background: 'opaque',
      n: 1,
      moderation: 'auto',
    });
    expect(readImageInfo(image.data).format).toBe('jpeg');
    expect(image.contentType).toBe('image/jpeg');
  });
});

describe('a model that refuses a parameter: dropped, remembered, logged once', () => {
  it('input_fidelity refused by the model: sent again without it, never sent again, one warn line', async () => {
    server().refuse('gpt-image-1.5', ['input_fidelity']);
    const logger = new Lines();
    const provider = providerFor(server(), { logger });
    const grid = makeGridPng({ cell: 20, gutter: 4, margin: 4 });
    server().enqueue({ kind: 'image', endpoint: 'edits', image: grid });

    const first = await provider.pictures({ persona, base, referenceFace: face, prompt: 'a', count: 4, seed });
    const second = await provider.pictures({ persona, base, prompt: 'b', count: 4, seed });
    await provider.baseImage({ persona, referenceFace: face, seed });

    expect(first.kind === 'grid' && Buffer.from(first.image.data).equals(grid)).toBe(true);
    expect(second.kind).toBe('grid');
    const requests = server().requests;
    expect(requests.map((r) => [r.answer, r.fields.input_fidelity])).toEqual([
      ['rejected', 'high'],
      ['image', undefined],
      ['default', undefined],
      ['default', undefined],
    ]);
    expect(requests[0]?.problems).toEqual(["Unknown parameter: 'input_fidelity'."]);
    // The retry is the same request otherwise: both images, in order.
    expect(requests[1]?.files.map((f) => f.filename)).toEqual(['base.png', 'face.png']);
    expect(provider.refusedParameters()).toEqual(['input_fidelity']);
    expect(logger.warnings).toHaveLength(1);
    expect(logger.warnings[0]?.msg).toMatch(/gpt-image-1\.5 refused input_fidelity/);
    expect(logger.warnings[0]?.obj).toMatchObject({ param: 'input_fidelity', model: 'gpt-image-1.5' });
  });

  it('calls that waited for a slot go without it; calls refused together log one line', async () => {
    server().refuse('gpt-image-1.5', ['input_fidelity']);
    const one = new Lines();
    const queued = providerFor(server(), { concurrency: 1, logger: one });
    await Promise.all([1, 2, 3].map((n) => queued.pictures({ persona, base, prompt: `p${n}`, count: 4, seed })));
    expect(server().requests.map((r) => r.answer)).toEqual(['rejected', 'default', 'default', 'default']);
    expect(one.warnings).toHaveLength(1);

    server().reset();
    server().refuse('gpt-image-1.5', ['input_fidelity']);
    const many = new Lines();
    const together = providerFor(server(), { concurrency: 3, logger: many });
    await Promise.all([1, 2, 3].map((n) => together.pictures({ persona, base, prompt: `p${n}`, count: 4, seed })));
    // all three are usually in flight when the first 400 comes back; each is sent again once
    expect(server().requests.filter((r) => r.answer === 'rejected').length).toBeGreaterThanOrEqual(1);
    expect(server().requests.filter((r) => r.answer !== 'rejected')).toHaveLength(3);
    expect(
      server()
        .requests.filter((r) => r.answer !== 'rejected')
        .every((r) => r.fields.input_fidelity === undefined),
    ).toBe(true);
    expect(many.warnings).toHaveLength(1);
  });

  it('two refused parameters are dropped one after the other', async () => {
    server().refuse('gpt-image-1.5', ['input_fidelity', 'background']);
    const provider = providerFor(server());
    await provider.pictures({ persona, base, output: { background: 'opaque', quality: 'low' }, prompt: 'a', count: 4, seed });
    expect(server().requests.map((r) => r.answer)).toEqual(['rejected', 'rejected', 'default']);
    expect(server().requests[2]?.fields).toMatchObject({ quality: 'low' });
    expect(provider.refusedParameters().sort()).toEqual(['background', 'input_fidelity']);
  });

  it('a 400 naming the parameter only in its message (param null) drops it too', async () => {
    server().enqueue({
      kind: 'raw',
      endpoint: 'edits',
      status: 400,
      body: {
        error: {
          message: "Invalid value: 'high'. The 'quality' parameter is not supported by this model.",
          type: 'invalid_request_error',
          param: null,
          code: null,
        },
      },
    });
    const provider = providerFor(server());
    await provider.pictures({ persona, base, output: { quality: 'high' }, prompt: 'a', count: 4, seed });
    expect(server().requests.map((r) => r.fields.quality)).toEqual(['high', undefined]);
    expect(provider.refusedParameters()).toEqual(['quality']);
  });

  it('a 400 about anything else stays a bad request, sent once, nothing remembered', async () => {
    server().enqueue({
      kind: 'raw',
      endpoint: 'edits',
      status: 400,
      body: { error: { message: "Invalid 'prompt': too long.", type: 'invalid_request_error', param: 'prompt', code: 'invalid_value' } },
    });
    const provider = providerFor(server());
    const call = provider.pictures({ persona, base, prompt: 'a', count: 4, seed });
    await expect(call).rejects.toBeInstanceOf(ProviderError);
    await expect(call).rejects.toMatchObject({ kind: 'bad-request', retryable: false });
    expect(server().requests).toHaveLength(1);
    expect(provider.refusedParameters()).toEqual([]);
  });

  it('a parameter we did not send is not "dropped" (background named, none sent)', async () => {
    server().enqueue({
      kind: 'raw',
      endpoint: 'edits',
      status: 400,
      body: { error: { message: "Invalid 'background'.", type: 'invalid_request_error', param: 'background', code: 'invalid_value' } },
    });
    const provider = providerFor(server());
    await expect(provider.pictures({ persona, base, prompt: 'a', count: 4, seed })).rejects.toMatchObject({ kind: 'bad-request' });
    expect(server().requests).toHaveLength(1);
  });
});
