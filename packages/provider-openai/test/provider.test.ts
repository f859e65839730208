import {
  AvatarGenError,
  CancelledError,
  ConfigError,
  InvalidImageError,
  InvalidResponseError,
  ModerationError,
  ProviderError,
  readImageInfo,
  ValidationError,
} from '@avatargen/core';
import { makeBorderedPng, makeGridPng, samplePersona } from '@avatargen/core/testing';
import { describe, expect, it } from 'vitest';
import { buildBasePrompt, buildGridPrompt, createOpenAIImageProvider } from '../src/index.js';
import { facePng, providerFor, startOpenAIServer, useOpenAIServer } from './helpers.js';

const persona = samplePersona();
const seed = 'seed-1';

const server = useOpenAIServer();

/** Multipart text fields travel with CRLF line breaks (the form-data rules); compare with LF. */
const lf = (text: unknown) => String(text).replace(/\r\n/g, '\n');

/** The rejection of a promise, to assert on its fields. */
async function failure(promise: Promise<unknown>): Promise<AvatarGenError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(AvatarGenError);
    return error as AvatarGenError;
  }
  throw new Error('expected the call to fail');
}

describe('text-to-image (POST /v1/images/generations)', () => {
  it('sends model, prompt, size auto, n 1 and moderation with the Bearer key, and decodes b64_json', async () => {
    const generated = makeBorderedPng({ width: 30, height: 20, border: 2 });
    server().enqueue({ kind: 'image', image: generated });
    const provider = providerFor(server(), { promptAppend: 'Slightly blurry.' });
    const image = await provider.baseImage({ persona, seed });

    expect(server().requests).toHaveLength(1);
    const request = server().requests[0];
    expect(request?.endpoint).toBe('generations');
    expect(request?.problems).toEqual([]);
    expect(request?.authorization).toBe(`Bearer ${server().apiKey}`);
    expect(request?.contentType).toMatch(/^application\/json/);
    expect(request?.fields).toEqual({
      model: 'gpt-image-1.5',
      prompt: buildBasePrompt(persona, { append: 'Slightly blurry.' }),
      size: 'auto',
      n: 1,
      moderation: 'auto',
    });
    expect(image.contentType).toBe('image/png');
    expect(Buffer.from(image.data).equals(generated)).toBe(true);
  });

  it('sends the configured model and moderation level', async () => {
    const other = await startOpenAIServer({ model: 'gpt-image-1' });
    try {
      await providerFor(other, { model: 'gpt-image-1', moderation: 'low' }).baseImage({ persona, seed });
      expect(other.requests[0]?.fields).toMatchObject({ model: 'gpt-image-1', moderation: 'low' });
      // The server checks the model: a provider on the default model is refused.
      const refused = await failure(providerFor(other).baseImage({ persona, seed }));
      expect(refused.kind).toBe('bad-request');
      expect(refused.retryable).toBe(false);
      expect(refused.message).toMatch(/gpt-image-1\.5/);
    } finally {
      await other.close();
    }
  });
});

describe('image-to-image from a reference face (POST /v1/images/edits)', () => {
  it('sends the face as image[] with its content type and a facial-anatomy-only prompt', async () => {
    const face = { key: 'female/face-1.png', contentType: 'image/png', data: facePng([180, 40, 40]) };
    const provider = providerFor(server(), { moderation: 'low' });
    const image = await provider.baseImage({ persona, referenceFace: face, seed });

    const request = server().requests[0];
    expect(request?.endpoint).toBe('edits');
    expect(request?.problems).toEqual([]);
    expect(request?.authorization).toBe(`Bearer ${server().apiKey}`);
    expect(request?.contentType).toMatch(/^multipart\/form-data; boundary=/);
    expect({ ...request?.fields, prompt: lf(request?.fields.prompt) }).toEqual({
      model: 'gpt-image-1.5',
      prompt: buildBasePrompt(persona, { withReferenceFace: true }),
      size: 'auto',
      input_fidelity: 'high',
      n: 1,
      moderation: 'low',
    });
    expect(String(request?.fields.prompt)).toMatch(/facial anatomy/);
    expect(request?.files).toHaveLength(1);
    expect(request?.files[0]?.field).toBe('image[]');
    expect(request?.files[0]?.type).toBe('image/png');
    expect(request?.files[0]?.filename).toBe('face.png');
    expect(request?.files[0]?.bytes.equals(face.data)).toBe(true);
    expect(readImageInfo(image.data).format).toBe('png');
  });

  it('labels the face by its bytes, not by a wrong content type', async () => {
    const face = { key: 'f/mislabelled.jpg', contentType: 'image/jpeg', data: facePng([1, 2, 3]) };
    await providerFor(server()).baseImage({ persona, referenceFace: face, seed });
    expect(server().requests[0]?.files[0]?.type).toBe('image/png');
  });

  it('refuses a face that is not an image before calling the service', async () => {
    const face = { key: 'f/broken.png', contentType: 'image/png', data: Buffer.from('not a png at all, sorry') };
    const error = await failure(providerFor(server()).baseImage({ persona, referenceFace: face, seed }));
    expect(error).toBeInstanceOf(InvalidImageError);
    expect(error.message).toContain('f/broken.png');
    expect(server().requests).toHaveLength(0);
  });

  it('throws ModerationError on a moderation_blocked answer, with the violations in the message', async () => {
    server().enqueue({ kind: 'moderation-block', violations: ['sexual', 'minors'] });
    const face = { key: 'f/1.png', contentType: 'image/png', data: facePng([9, 9, 9]) };
    const error = await failure(providerFor(server()).baseImage({ persona, referenceFace: face, seed }));
    expect(error).toBeInstanceOf(ModerationError);
    expect(error.retryable).toBe(false);
    expect(error.status).toBe(400);
    expect(error.message).toContain('safety_violations=[sexual, minors]');
  });

  it('throws ModerationError on the older safety-system message without a code', async () => {
    server().enqueue({ kind: 'safety-message' });
    const error = await failure(providerFor(server()).baseImage({ persona, seed }));
    expect(error).toBeInstanceOf(ModerationError);
  });

  it('keeps other 400 answers as bad requests, not moderation', async () => {
    server().enqueue({
      kind: 'raw',
      status: 400,
      body: { error: { message: "Invalid 'size'.", type: 'invalid_request_error', param: 'size', code: 'invalid_value' } },
    });
    const error = await failure(providerFor(server()).baseImage({ persona, seed }));
    expect(error).not.toBeInstanceOf(ModerationError);
    expect(error.kind).toBe('bad-request');
    expect(error.message).toContain("Invalid 'size'.");
  });
});

describe('pictures from the base image: one 2x2 grid (POST /v1/images/edits)', () => {
  it('sends the base as image[] with a 2x2-grid prompt from the idea and returns the grid', async () => {
    const base = { data: makeBorderedPng({ width: 40, height: 32, border: 2 }), contentType: 'image/png' };
    const grid = makeGridPng({ cell: 20, gutter: 4, margin: 4 });
    server().enqueue({ kind: 'image', image: grid, endpoint: 'edits' });
    const provider = providerFor(server(), { promptAppend: 'Shot on an old phone.' });
    const pictures = await provider.pictures({ persona, base, prompt: 'hiking at sunrise, laughing', count: 4, seed });
    if (pictures.kind !== 'grid') throw new Error(`expected a grid, got ${pictures.kind}`);
    expect([pictures.rows, pictures.cols]).toEqual([2, 2]);
    const image = pictures.image;
    expect(image.contentType).toBe('image/png');

    const request = server().requests[0];
    expect(request?.endpoint).toBe('edits');
    expect(request?.problems).toEqual([]);
    expect(lf(request?.fields.prompt)).toBe(buildGridPrompt(persona, 'hiking at sunrise, laughing', { append: 'Shot on an old phone.' }));
    expect(request?.fields).toMatchObject({ model: 'gpt-image-1.5', size: 'auto', moderation: 'auto' });
    expect(request?.files.map((f) => [f.field, f.type])).toEqual([['image[]', 'image/png']]);
    expect(request?.files[0]?.bytes.equals(base.data)).toBe(true);
    expect(Buffer.from(image.data).equals(grid)).toBe(true);
    expect(readImageInfo(image.data)).toMatchObject({ width: 52, height: 52 });
  });

  it('refuses an empty idea and a base that is not an image without calling the service', async () => {
    const base = { data: makeBorderedPng(), contentType: 'image/png' };
    await expect(providerFor(server()).pictures({ persona, base, prompt: '  ', count: 4, seed })).rejects.toBeInstanceOf(ValidationError);
    const garbage = { data: Buffer.from('GIF? no. just text bytes'), contentType: 'image/png' };
    await expect(providerFor(server()).pictures({ persona, base: garbage, prompt: 'x', count: 4, seed })).rejects.toBeInstanceOf(
      InvalidImageError,
    );
    expect(server().requests).toHaveLength(0);
  });

  it('refuses any count but 4 (its prompt asks for a 2x2 grid), not retryable, without calling the service', async () => {
    const base = { data: makeBorderedPng(), contentType: 'image/png' };
    for (const count of [1, 6, 9, 0]) {
      const error = await failure(providerFor(server()).pictures({ persona, base, prompt: 'at the beach', count, seed }));
      expect(error).toBeInstanceOf(ValidationError);
      expect(error.retryable).toBe(false);
      expect(error.message).toContain(`makes 4 pictures per prompt (its prompt asks for a 2x2 grid), not ${count}`);
    }
    expect(server().requests).toHaveLength(0);
  });
});

describe('errors as core typed errors', () => {
  it('429 with retry-after in seconds: rate-limit, retryable, retryAfterMs', async () => {
    server().enqueue({ kind: 'rate-limit', retryAfter: '7' });
    const error = await failure(providerFor(server()).baseImage({ persona, seed }));
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.kind).toBe('rate-limit');
    expect(error.retryable).toBe(true);
    expect(error.status).toBe(429);
    expect(error.retryAfterMs).toBe(7000);
  });

  it('429 with retry-after as an HTTP date, and retry-after-ms taking precedence', async () => {
    server().enqueue({ kind: 'rate-limit', retryAfter: new Date(Date.now() + 120_000).toUTCString() });
    const byDate = await failure(providerFor(server()).baseImage({ persona, seed }));
    // The date has whole seconds: somewhere within the two minutes, and well past one.
    expect(byDate.retryAfterMs).toBeGreaterThan(60_000);
    expect(byDate.retryAfterMs).toBeLessThanOrEqual(120_000);
    server().enqueue({ kind: 'rate-limit', retryAfter: '30', retryAfterMs: '1500' });
    expect((await failure(providerFor(server()).baseImage({ persona, seed }))).retryAfterMs).toBe(1500);
    server().enqueue({ kind: 'rate-limit' });
    expect((await failure(providerFor(server()).baseImage({ persona, seed }))).retryAfterMs).toBeUndefined();
  });

  it('500 and 503: server errors, retryable', async () => {
    server().enqueue({ kind: 'server-error' }, { kind: 'server-error', status: 503 });
    for (const status of [500, 503]) {
      const error = await failure(providerFor(server()).baseImage({ persona, seed }));
      expect(error.kind).toBe('server');
      expect(error.retryable).toBe(true);
      expect(error.status).toBe(status);
    }
  });

  it('a server that never answers: timeout, retryable', async () => {
    server().enqueue({ kind: 'hang' });
    const error = await failure(providerFor(server(), { timeoutMs: 300 }).baseImage({ persona, seed }));
    expect(error.kind).toBe('timeout');
    expect(error.retryable).toBe(true);
    expect(error.message).toMatch(/timed out/);
    expect(server().requests).toHaveLength(1);
  });

  it('a server that stalls in the middle of the body: timeout too (the SDK only times the headers)', async () => {
    server().enqueue({ kind: 'stall-body' });
    const error = await failure(providerFor(server(), { timeoutMs: 300 }).baseImage({ persona, seed }));
    expect(error.kind).toBe('timeout');
    expect(error.retryable).toBe(true);
  });

  it('a caller AbortSignal cancels a call in flight with CancelledError', async () => {
    server().enqueue({ kind: 'hang' });
    const controller = new AbortController();
    const call = providerFor(server()).baseImage({ persona, seed, signal: controller.signal });
    await server().waitForRequests(1);
    controller.abort();
    await expect(call).rejects.toBeInstanceOf(CancelledError);
  });

  it('an answer without b64_json, with empty data, with b64_json that is not an image, or broken JSON: invalid response', async () => {
    server().enqueue({ kind: 'no-b64' }, { kind: 'empty-data' }, { kind: 'garbage-b64' }, { kind: 'broken-json' });
    const messages: string[] = [];
    for (let i = 0; i < 4; i++) {
      const error = await failure(providerFor(server()).baseImage({ persona, seed }));
      expect(error).toBeInstanceOf(InvalidResponseError);
      expect(error.retryable).toBe(true);
      messages.push(error.message);
    }
    expect(messages[0]).toMatch(/without data\[0\]\.b64_json/);
    expect(messages[1]).toMatch(/without image data/);
    expect(messages[2]).toMatch(/not an image/);
    expect(messages[3]).toMatch(/not valid JSON/);
  });

  it('401: auth, not retryable, and the key appears nowhere in the error or the log', async () => {
    const secret = 'sk-proj-SECRET0123456789abcdef';
    const lines: string[] = [];
    const logger = {
      debug: (obj: object, msg: string) => lines.push(JSON.stringify({ obj, msg })),
      warn: (obj: object, msg: string) => lines.push(JSON.stringify({ obj, msg })),
    };
    const provider = providerFor(server(), { apiKey: secret, logger });
    const error = await failure(provider.baseImage({ persona, seed }));
    expect(error).toBeInstanceOf(ProviderError);
    expect(error.kind).toBe('auth');
    expect(error.retryable).toBe(false);
    expect(error.status).toBe(401);
    // The test server echoes the whole key in its answer, so this check can fail.
    expect(server().requests[0]?.problems.join(' ')).toContain(secret);
    const everything = [error.message, String(error), error.stack ?? '', JSON.stringify(error), String(error.cause ?? ''), ...lines].join(
      '\n',
    );
    expect(everything).not.toContain(secret);
    expect(everything).not.toContain('SECRET0123456789');
    expect(lines.length).toBeGreaterThan(0);
  });

  it('an unreachable server: network error, retryable', async () => {
    const gone = await startOpenAIServer();
    await gone.close();
    const error = await failure(providerFor(gone).baseImage({ persona, seed }));
    expect(error.kind).toBe('network');
    expect(error.retryable).toBe(true);
  });
});

describe('options and concurrency', () => {
  it('refuses bad options with a ConfigError naming the variables', () => {
    expect(() => createOpenAIImageProvider({ apiKey: ' ' })).toThrow(ConfigError);
    try {
      createOpenAIImageProvider({ apiKey: 'k', baseURL: 'not a url', concurrency: 0, timeoutMs: -1, moderation: 'high' as 'low' });
      expect.unreachable();
    } catch (error) {
      expect((error as ConfigError).issues.map((i) => i.split(' ')[0])).toEqual([
        'OPENAI_BASE_URL',
        'OPENAI_MODERATION',
        'OPENAI_CONCURRENCY',
        'OPENAI_TIMEOUT_SECONDS',
      ]);
    }
  });

  it('keeps at most `concurrency` calls in flight; the rest wait and can be cancelled while waiting', async () => {
    server().enqueue({ kind: 'hang' }, { kind: 'hang' });
    const provider = providerFor(server(), { concurrency: 2 });
    const controller = new AbortController();
    const calls = [1, 2, 3].map(() => provider.baseImage({ persona, seed, signal: controller.signal }));
    await server().waitForRequests(2);
    expect(provider.inFlight).toBe(2);
    expect(provider.queued).toBe(1);
    controller.abort();
    for (const call of calls) await expect(call).rejects.toBeInstanceOf(CancelledError);
    // The third call never reached the server(), and every slot came back.
    expect(server().requests).toHaveLength(2);
    expect(provider.inFlight).toBe(0);
    await expect(provider.baseImage({ persona, seed })).resolves.toMatchObject({ contentType: 'image/png' });
  });

  it('a waiting call whose own signal fires leaves the queue and is never sent; the call in flight goes on', async () => {
    server().enqueue({ kind: 'hang' });
    const provider = providerFor(server(), { concurrency: 1 });
    const running = new AbortController();
    const waiting = new AbortController();
    const first = provider.baseImage({ persona, seed, signal: running.signal });
    const second = provider.baseImage({ persona, seed, signal: waiting.signal });
    await server().waitForRequests(1);
    expect([provider.inFlight, provider.queued]).toEqual([1, 1]);
    waiting.abort(new Error('the task was cancelled'));
    await expect(second).rejects.toBeInstanceOf(CancelledError);
    expect([provider.inFlight, provider.queued]).toEqual([1, 0]);
    running.abort();
    await expect(first).rejects.toBeInstanceOf(CancelledError);
    await expect(provider.baseImage({ persona, seed })).resolves.toMatchObject({ contentType: 'image/png' });
    // the hanging call and the last one: the cancelled call never reached the server
    expect(server().requests).toHaveLength(2);
  });
});
