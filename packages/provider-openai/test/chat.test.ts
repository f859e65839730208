import { samplePersona } from '@avatargen/core/testing';
import {
  CancelledError,
  InvalidResponseError,
  ModerationError,
  type PersonaQuota,
  type PersonaRequest,
  ProviderError,
  type ProviderUsage,
  personaListJsonSchema,
} from '@avatargen/core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ChatServer, startChatServer } from '../../../tests/support/chat-server.js';
import { createOpenAIChatProviders, type OpenAIChatOptions } from '../src/index.js';

const KEY = 'sk-chat-secret-4b1e9c';
let server: ChatServer;
let ollama: ChatServer;
beforeAll(async () => {
  server = await startChatServer({ apiKey: KEY });
  ollama = await startChatServer({ apiKey: null, dialect: 'ollama', model: 'llama3.2' });
});
afterAll(async () => {
  await server?.close();
  await ollama?.close();
});
beforeEach(() => {
  server.reset();
  ollama.reset();
});

const chat = (options: Partial<OpenAIChatOptions> = {}) =>
  createOpenAIChatProviders({ apiKey: KEY, baseURL: server.baseURL, timeoutMs: 5_000, ...options });

const request = (over: Partial<PersonaRequest> = {}): PersonaRequest => ({
  count: 4,
  description: 'Tram drivers in Lisbon',
  language: { code: 'pt', name: 'Portuguese' },
  bioInstructions: { facebook: 'Warm.', instagram: 'Short.', x: 'Witty.', tiktok: 'Playful.' },
  seed: 's',
  ...over,
});

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => null,
    (error: unknown) => error,
  );

describe('personas over /v1/chat/completions', () => {
  it("asks with a strict json_schema generated from core's persona schema, the model, the messages and the key", async () => {
    const usage: ProviderUsage[] = [];
    const batch = await chat({ temperature: 0.7 }).personas.generate(request({ onUsage: (u) => usage.push(u) }));
    expect(batch.personas).toHaveLength(4);
    expect(batch.personas[0]).toMatchObject({ jobTitle: 'Tram driver', currentCity: 'Lisbon', gender: 'f' });
    const seen = server.requests[0];
    expect(seen?.problems).toEqual([]);
    expect(seen?.authorization).toBe(`Bearer ${KEY}`);
    expect(seen?.body).toMatchObject({
      model: 'gpt-4.1-mini',
      temperature: 0.7,
      response_format: { type: 'json_schema', json_schema: { name: 'personas', strict: true, schema: personaListJsonSchema() } },
    });
    const messages = seen?.body?.messages as Array<{ role: string; content: string }>;
    expect(messages.map((m) => m.role)).toEqual(['system', 'user']);
    expect(messages[1]?.content).toContain('Write exactly 4 personas that match this description: Tram drivers in Lisbon');
    expect(messages[1]?.content).toContain('TikTok bio: Playful.');
    // the answer's usage, reported once per call
    expect(usage).toEqual([
      { provider: 'openai', model: 'gpt-4.1-mini', inputTokens: seen?.usage?.prompt_tokens, outputTokens: seen?.usage?.completion_tokens },
    ]);
    expect(seen?.usage?.prompt_tokens).toBeGreaterThan(0);
  });

  it('sends no temperature unless set', async () => {
    await chat().personas.generate(request({ count: 1 }));
    expect(server.requests[0]?.body).not.toHaveProperty('temperature');
  });

  it('steps down to json_object on the 400 of a server without json_schema, and stays there', async () => {
    const providers = createOpenAIChatProviders({ baseURL: ollama.baseURL, model: 'llama3.2', timeoutMs: 5_000 });
    expect(providers.output).toBe('json_schema');
    const batch = await providers.personas.generate(request({ count: 2 }));
    expect(batch.personas).toHaveLength(2);
    expect(ollama.requests.map((r) => (r.body.response_format as { type: string }).type)).toEqual(['json_schema', 'json_object']);
    expect(ollama.requests[0]?.problems[0]).toMatch(/json_schema/);
    expect(providers.output).toBe('json_object');
    await providers.prompts.nextPrompt({ persona: samplePersona(), previousPrompts: [], seed: 's' });
    expect(ollama.requests[2]?.body.response_format).toMatchObject({ type: 'json_object' });
    // no key given: no Authorization header at all
    expect(ollama.requests.every((r) => r.authorization === undefined)).toBe(true);
  });

  it('with OPENAI_CHAT_OUTPUT=json_schema a refusing server is a bad request, not retried', async () => {
    const providers = createOpenAIChatProviders({ baseURL: ollama.baseURL, model: 'llama3.2', output: 'json_schema', timeoutMs: 5_000 });
    const error = await failure(providers.personas.generate(request()));
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({ kind: 'bad-request', retryable: false, status: 400 });
    expect(ollama.requests).toHaveLength(1);
  });

  it('in prompt mode sends no response_format and reads JSON out of fences and prose', async () => {
    const batch = await chat({ output: 'prompt' }).personas.generate(request({ count: 3 }));
    expect(server.requests[0]?.body).not.toHaveProperty('response_format');
    expect(batch.personas).toHaveLength(3);
    server.enqueue({ kind: 'text', content: 'Here you go!\n```json\n{"final_prompt": "at the tram depot at dawn"}\n```\nEnjoy.' });
    expect(await chat().prompts.nextPrompt({ persona: samplePersona(), previousPrompts: [], seed: 's' })).toBe('at the tram depot at dawn');
  });

  it('returns fewer personas than asked as they are (the pipeline asks again for the rest)', async () => {
    server.enqueue({ kind: 'normal', count: 2 });
    const batch = await chat().personas.generate(request({ count: 5 }));
    expect(batch.personas).toHaveLength(2);
    expect(server.requests).toHaveLength(1);
  });

  it('asks again with a smaller batch when the answer is cut at the token limit (finish_reason length)', async () => {
    const usage: ProviderUsage[] = [];
    server.enqueue({ kind: 'length' }, { kind: 'length' });
    const batch = await chat().personas.generate(request({ count: 8, onUsage: (u) => usage.push(u) }));
    expect(server.requests.map((r) => r.count)).toEqual([8, 4, 2]);
    expect(batch.personas).toHaveLength(2);
    // the cut answers' tokens were spent too
    expect(usage).toHaveLength(3);
  });

  it("names each persona's quota in the prompt the server receives", async () => {
    const quotas: PersonaQuota[] = [
      { gender: 'f', age: { min: 25, max: 40 }, ethnicity: 'Portuguese', location: 'Lisbon' },
      {},
      { gender: 'm', location: 'Porto, Portugal' },
    ];
    const batch = await chat().personas.generate(request({ count: 3, quotas }));
    expect(batch.personas).toHaveLength(3);
    expect(server.requests[0]?.quotas).toEqual([
      'female, aged 25-40, ethnicity Portuguese, living in Lisbon',
      'any',
      'male, living in Porto, Portugal',
    ]);
    // the stand-in ignores quotas, as a model may: core checks them, not the provider
    expect(batch.personas.map((p) => p.gender)).toEqual(['f', 'm', 'f']);
    // and the country where it lives now comes back too
    expect(batch.personas[0]?.currentCountry).toBe('Portugal');
    // without quotas, no constraint line
    await chat().personas.generate(request({ count: 2 }));
    expect(server.requests[1]?.quotas).toBeNull();
  });

  it('a smaller call after a cut answer carries only the quotas of the personas it asks for', async () => {
    const quotas: PersonaQuota[] = Array.from({ length: 8 }, (_, i) => ({ age: { min: 20 + i, max: 20 + i } }));
    server.enqueue({ kind: 'length' }, { kind: 'length' });
    const batch = await chat().personas.generate(request({ count: 8, quotas }));
    expect(batch.personas).toHaveLength(2);
    expect(server.requests.map((r) => r.count)).toEqual([8, 4, 2]);
    expect(server.requests.map((r) => r.quotas)).toEqual([
      quotas.map((q) => `aged ${q.age?.min}`),
      ['aged 20', 'aged 21', 'aged 22', 'aged 23'],
      ['aged 20', 'aged 21'],
    ]);
  });

  it('a cut answer for one persona is an invalid response (retryable)', async () => {
    server.enqueue({ kind: 'length' });
    const error = await failure(chat().personas.generate(request({ count: 1 })));
    expect(error).toBeInstanceOf(InvalidResponseError);
    expect((error as Error).message).toMatch(/cut off at the token limit/);
    expect((error as InvalidResponseError).retryable).toBe(true);
  });

  it("a refusal and the content filter are moderation errors with the model's words, not retried", async () => {
    server.enqueue({ kind: 'refusal', refusal: 'I cannot create profiles of real people.' });
    const refused = await failure(chat().personas.generate(request()));
    expect(refused).toBeInstanceOf(ModerationError);
    expect((refused as ModerationError).retryable).toBe(false);
    expect((refused as Error).message).toContain('refused: I cannot create profiles of real people.');
    server.enqueue({ kind: 'content-filter', content: 'Partial text before the filter' });
    const filtered = await failure(chat().prompts.nextPrompt({ persona: samplePersona(), previousPrompts: [], seed: 's' }));
    expect(filtered).toBeInstanceOf(ModerationError);
    expect((filtered as Error).message).toContain('content filter: Partial text before the filter');
  });

  it('429 honours retry-after; 5xx is a retryable server error', async () => {
    server.enqueue({ kind: 'rate-limit', retryAfter: '7' }, { kind: 'server-error', status: 503 });
    const limited = await failure(chat().personas.generate(request()));
    expect(limited).toMatchObject({ kind: 'rate-limit', retryable: true, retryAfterMs: 7000 });
    const down = await failure(chat().personas.generate(request()));
    expect(down).toMatchObject({ kind: 'server', retryable: true, status: 503 });
  });

  it('a stalled answer times out as a retryable timeout; a cancelled call is CancelledError', async () => {
    server.enqueue({ kind: 'stall' });
    const stalled = await failure(chat({ timeoutMs: 300 }).personas.generate(request()));
    expect(stalled).toMatchObject({ kind: 'timeout', retryable: true });
    server.enqueue({ kind: 'stall' });
    const controller = new AbortController();
    const pending = failure(chat().personas.generate(request({ signal: controller.signal })));
    await server.waitForRequests(2);
    controller.abort();
    expect(await pending).toBeInstanceOf(CancelledError);
  });

  it('a wrong key is an auth error that names the variable and never shows the key', async () => {
    const error = await failure(chat({ apiKey: 'sk-wrong-key-123456', keyVariable: 'OPENAI_API_KEY' }).personas.generate(request()));
    expect(error).toMatchObject({ kind: 'auth', retryable: false });
    expect((error as Error).message).toContain('check OPENAI_API_KEY');
    expect((error as Error).message).not.toContain('sk-wrong-key-123456');
  });

  it('an unknown model is a not-found error; an answer with no usable persona is an invalid response', async () => {
    const missing = await failure(chat({ model: 'gpt-nope' }).personas.generate(request()));
    expect(missing).toMatchObject({ kind: 'not-found', retryable: false });
    server.enqueue({ kind: 'text', content: '{"personas": [{"firstName": ""}]}' }, { kind: 'raw', status: 200, body: { choices: [] } });
    const empty = await failure(chat().personas.generate(request()));
    expect(empty).toBeInstanceOf(InvalidResponseError);
    expect((empty as Error).message).toMatch(/no usable persona \(1 rejected: object 1: firstName is empty\)/);
    expect(await failure(chat().personas.generate(request()))).toBeInstanceOf(InvalidResponseError);
  });

  it('refuses bad options with the variable names', () => {
    expect(() => createOpenAIChatProviders({ baseURL: 'ftp://x', temperature: 3, output: 'xml' as never })).toThrow(
      /OPENAI_CHAT_BASE_URL must be an http\(s\) URL[\s\S]*OPENAI_CHAT_TEMPERATURE[\s\S]*OPENAI_CHAT_OUTPUT/,
    );
  });
});

describe('image prompts over /v1/chat/completions', () => {
  it("sends the persona's job, workplace and city, and the previous prompts; reads final_prompt", async () => {
    const persona = samplePersona({ jobTitle: 'Tram driver', workplace: 'Carris', currentCity: 'Lisbon' });
    const first = await chat().prompts.nextPrompt({ persona, previousPrompts: [], seed: 's' });
    const second = await chat().prompts.nextPrompt({ persona, previousPrompts: [first], seed: 's' });
    expect(first).toContain('in Lisbon');
    expect(second).not.toBe(first);
    const body = server.requests[1]?.body;
    expect(body?.response_format).toMatchObject({ type: 'json_schema', json_schema: { name: 'image_prompt', strict: true } });
    const user = (body?.messages as Array<{ content: string }> | undefined)?.[1]?.content ?? '';
    expect(user).toContain('"job_title":"Tram driver"');
    expect(user).toContain(`1. ${first}`);
  });

  it('an answer without final_prompt is an invalid response', async () => {
    server.enqueue({ kind: 'text', content: '{"prompt": "x"}' });
    const error = await failure(chat().prompts.nextPrompt({ persona: samplePersona(), previousPrompts: [], seed: 's' }));
    expect(error).toBeInstanceOf(InvalidResponseError);
    expect((error as Error).message).toContain('no final_prompt');
  });
});
