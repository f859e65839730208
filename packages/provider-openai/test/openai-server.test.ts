import { readImageInfo } from '@avatargen/core';
import { describe, expect, it } from 'vitest';
import { facePng, startOpenAIServer, useOpenAIServer } from './helpers.js';

// The test server's own checks, driven with plain fetch: a check that never refuses anything
// would make every provider test above pass for the wrong reason.
const server = useOpenAIServer();

const auth = () => ({ authorization: `Bearer ${server().apiKey}` });

function generate(body: unknown, headers: Record<string, string> = auth()) {
  return fetch(`${server().baseURL}/images/generations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

function edit(form: FormData) {
  return fetch(`${server().baseURL}/images/edits`, { method: 'POST', headers: auth(), body: form });
}

function editForm(file: Blob, fields: Record<string, string> = {}): FormData {
  const form = new FormData();
  form.set('model', 'gpt-image-1.5');
  form.set('prompt', 'a selfie');
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  form.append('image[]', file, 'face.png');
  return form;
}

const ok = { model: 'gpt-image-1.5', prompt: 'a selfie', size: 'auto', n: 1, moderation: 'auto' };

describe('OpenAI test server', () => {
  it("answers a good generation with OpenAI's body and a decodable PNG", async () => {
    const res = await generate(ok);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { created: number; data: Array<{ b64_json: string }>; usage: unknown };
    expect(typeof body.created).toBe('number');
    expect(body.usage).toBeDefined();
    expect(readImageInfo(Buffer.from(body.data[0]?.b64_json ?? '', 'base64')).format).toBe('png');
    expect(server().requests[0]).toMatchObject({ endpoint: 'generations', answer: 'default', problems: [] });
  });

  it("refuses a missing or wrong key with 401 and OpenAI's error body", async () => {
    const missing = await generate(ok, {});
    expect(missing.status).toBe(401);
    const wrong = await generate(ok, { authorization: 'Bearer sk-nope' });
    expect(wrong.status).toBe(401);
    const body = (await wrong.json()) as { error: { message: string; type: string; param: unknown; code: string } };
    expect(body.error).toMatchObject({ type: 'invalid_request_error', param: null, code: 'invalid_api_key' });
  });

  it('refuses a wrong model, an unknown parameter, a missing prompt, a bad size or moderation', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ...ok, model: 'dall-e-3' }, 'model'],
      [{ ...ok, quality_level: 'x' }, 'quality_level'],
      [{ ...ok, prompt: '' }, 'prompt'],
      [{ ...ok, size: '999x999' }, 'size'],
      [{ ...ok, moderation: 'high' }, 'moderation'],
      [{ ...ok, n: 0 }, 'n'],
    ];
    for (const [body, param] of cases) {
      const res = await generate(body);
      expect(res.status, param).toBe(400);
      expect(((await res.json()) as { error: { param: string } }).error.param).toBe(param);
    }
    expect(server().requests.every((r) => r.problems.length === 1 && r.answer === 'rejected')).toBe(true);
  });

  it('checks edit files: a part type it does not take, bytes that do not match the type, no image', async () => {
    const png = facePng([5, 5, 5]);
    expect((await edit(editForm(new Blob([png], { type: 'image/png' })))).status).toBe(200);
    expect((await edit(editForm(new Blob([png], { type: 'image/gif' })))).status).toBe(400);
    expect((await edit(editForm(new Blob([png], { type: 'image/jpeg' })))).status).toBe(400);
    expect((await edit(editForm(new Blob([Buffer.from('plain text pretending')], { type: 'image/png' })))).status).toBe(400);
    const noImage = new FormData();
    noImage.set('model', 'gpt-image-1.5');
    noImage.set('prompt', 'x');
    expect((await edit(noImage)).status).toBe(400);
    expect(server().requests.map((r) => r.problems.length)).toEqual([0, 1, 1, 1, 1]);
    expect(server().requests[2]?.problems[0]).toMatch(/sent as image\/jpeg but the bytes are image\/png/);
  });

  it('checks the GPT image options: values, compression only for jpeg/webp, transparent not in jpeg, input_fidelity only on edits', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ...ok, quality: 'ultra' }, 'quality'],
      [{ ...ok, output_format: 'gif' }, 'output_format'],
      [{ ...ok, background: 'green' }, 'background'],
      [{ ...ok, output_format: 'jpeg', output_compression: 101 }, 'output_compression'],
      [{ ...ok, output_format: 'png', output_compression: 50 }, 'output_compression'],
      [{ ...ok, output_compression: 50 }, 'output_compression'],
      [{ ...ok, output_format: 'jpeg', background: 'transparent' }, 'background'],
      [{ ...ok, input_fidelity: 'high' }, 'input_fidelity'],
    ];
    for (const [body, param] of cases) {
      const res = await generate(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(((await res.json()) as { error: { param: string } }).error.param).toBe(param);
    }
    const good = { ...ok, quality: 'high', output_format: 'webp', output_compression: 0, background: 'transparent' };
    // the default answer is a PNG; a webp one needs the test's encoder
    expect((await generate(good)).status).toBe(500);
    expect((await generate({ ...good, output_format: 'png', output_compression: undefined })).status).toBe(200);
    const png = new Blob([facePng([5, 5, 5])], { type: 'image/png' });
    expect((await edit(editForm(png, { input_fidelity: 'low' }))).status).toBe(200);
    expect((await edit(editForm(png, { input_fidelity: 'max' }))).status).toBe(400);
    expect(server().requests.map((r) => r.problems.length)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1]);
  });

  it('keeps several images in order, refuses a 17th, and answers in the asked format through encode', async () => {
    const form = editForm(new Blob([facePng([1, 1, 1])], { type: 'image/png' }));
    form.append('image[]', new Blob([facePng([2, 2, 2])], { type: 'image/png' }), 'second.png');
    expect((await edit(form)).status).toBe(200);
    expect(server().requests[0]?.files.map((f) => f.filename)).toEqual(['face.png', 'second.png']);
    for (let i = 0; i < 15; i++) form.append('image[]', new Blob([facePng([3, 3, i])], { type: 'image/png' }), `more-${i}.png`);
    expect((await edit(form)).status).toBe(400);

    const encoded: string[] = [];
    const other = await startOpenAIServer({
      encode: (_png, format, compression) => {
        encoded.push(`${format}:${String(compression)}`);
        // a 1x1 "jpeg" frame header is all core's reader needs; the real encoder lives in the e2e test
        return Buffer.from([0xff, 0xd8, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00, 0xff, 0xd9]);
      },
    });
    try {
      const res = await fetch(`${other.baseURL}/images/generations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${other.apiKey}` },
        body: JSON.stringify({ ...ok, output_format: 'jpeg', output_compression: 40, quality: 'low' }),
      });
      const body = (await res.json()) as { data: Array<{ b64_json: string }>; output_format: string; quality: string };
      expect(readImageInfo(Buffer.from(body.data[0]?.b64_json ?? '', 'base64')).format).toBe('jpeg');
      expect([body.output_format, body.quality]).toEqual(['jpeg', 'low']);
      expect(encoded).toEqual(['jpeg:40']);
    } finally {
      await other.close();
    }
  });

  it('a model made to refuse a parameter answers 400 naming it, until reset', async () => {
    server().refuse('gpt-image-1.5', ['quality']);
    const res = await generate({ ...ok, quality: 'low' });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string; param: string } }).error).toMatchObject({
      param: 'quality',
      message: "Unknown parameter: 'quality'.",
    });
    expect((await generate(ok)).status).toBe(200);
    server().reset();
    expect((await generate({ ...ok, quality: 'low' })).status).toBe(200);
  });

  it('serves scripted answers per endpoint in order, then the default', async () => {
    server().enqueue({ kind: 'server-error', endpoint: 'edits' }, { kind: 'rate-limit', retryAfter: '3' });
    const first = await generate(ok);
    expect(first.status).toBe(429);
    expect(first.headers.get('retry-after')).toBe('3');
    expect(server().pending()).toBe(1);
    expect((await edit(editForm(new Blob([facePng([1, 1, 1])], { type: 'image/png' })))).status).toBe(500);
    expect((await generate(ok)).status).toBe(200);
    expect(server().requests.map((r) => r.answer)).toEqual(['rate-limit', 'server-error', 'default']);
  });

  it('answers 404 on other paths, and close() ends a hanging request', async () => {
    expect((await fetch(`${server().baseURL}/images/variations`, { method: 'POST', headers: auth() })).status).toBe(404);
    const other = await startOpenAIServer();
    other.enqueue({ kind: 'hang' });
    const hanging = fetch(`${other.baseURL}/images/generations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${other.apiKey}` },
      body: JSON.stringify(ok),
    });
    await other.waitForRequests(1);
    await other.close();
    await expect(hanging).rejects.toThrow();
  });
});
