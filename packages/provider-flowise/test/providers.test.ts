import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  type AvatarGenError,
  CancelledError,
  describeError,
  InvalidResponseError,
  isDatabaseUnavailable,
  type PersonaRequest,
  ProviderError,
} from '@avatargen/core';
import { samplePersona } from '@avatargen/core/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  type FlowiseServer,
  flowisePersonaText,
  loadFlowiseFixture,
  makeFlowisePersona,
  PERSONA_STATE_KEYS,
  reply,
  startFlowiseServer,
} from '../../../tests/support/flowise-server.js';
import { createFlowiseProviders, type FlowiseProvidersOptions, parsePersonaText, quotasState } from '../src/index.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const fixture = (name: string) => loadFlowiseFixture(name, FIXTURES);
const requestFixture = (name: string) => JSON.parse(readFileSync(`${FIXTURES}${name}.body.json`, 'utf8')) as unknown;

const API_KEY = 'fw-key-7Qm2xZp9LkT4vB8n';
const PERSONA_FLOW = '3f6d1a52-8c1e-4b7a-9a57-0c2f3e4d5a61';
const PROMPT_FLOW = '9b2e7c14-5d3f-4e8a-b1c6-7a8d9e0f1a2b';

/** The request whose body the old system sent in persona-request.body.json. */
const personaRequest: PersonaRequest = {
  count: 10,
  description: 'Young professionals in Lisbon who love surfing and tech meetups',
  language: { code: 'en', name: 'English' },
  bioInstructions: {
    facebook: 'Warm, first person, 2-3 sentences.',
    instagram: 'Short lines, emojis allowed.',
    x: 'Witty, under 160 characters.',
    tiktok: 'Very short, playful.',
  },
  seed: 'task-1:batch-0',
};

let server: FlowiseServer;

beforeAll(async () => {
  server = await startFlowiseServer({ apiKey: API_KEY, personaFlowId: PERSONA_FLOW, promptFlowId: PROMPT_FLOW });
});
afterAll(async () => {
  await server.close();
});
beforeEach(() => {
  server.reset();
});

function providers(overrides: Partial<FlowiseProvidersOptions> = {}) {
  return createFlowiseProviders({
    url: server.url,
    apiKey: API_KEY,
    personaFlowId: PERSONA_FLOW,
    promptFlowId: PROMPT_FLOW,
    personaTimeoutMs: 10_000,
    promptTimeoutMs: 10_000,
    ...overrides,
  });
}

async function failure(promise: Promise<unknown>): Promise<AvatarGenError> {
  const error = await promise.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: unknown) => e,
  );
  expect(describeError(error)).not.toContain(API_KEY);
  expect(String((error as Error).stack)).not.toContain(API_KEY);
  return error as AvatarGenError;
}

/** The persona of prompt-request.body.json: the first of persona-10. */
const sofia = () => {
  const batch = parsePersonaText((fixture('persona-10').body as { text: string }).text);
  return batch.personas[0] as NonNullable<(typeof batch.personas)[0]>;
};

/** A recorded prompt-flow body with Sofia's job, workplace and current city appended to `person_data`. */
function withExtraPersonData(body: unknown): unknown {
  const copy = structuredClone(body) as { overrideConfig: { startState: { startAgentflow_0: Array<{ key: string; value: string }> } } };
  const entry = copy.overrideConfig.startState.startAgentflow_0.find((e) => e.key === 'person_data');
  if (!entry) throw new Error('the fixture has no person_data');
  entry.value = `${entry.value.slice(0, -1)}, "job_title": "Physical Therapist", "workplace": "MoveWell Clinic", "current_city": "Austin", "current_state": "TX"}`;
  return copy;
}

describe('requests as Flowise sees them', () => {
  it('sends the persona call exactly as the old system did', async () => {
    await providers().personas.generate(personaRequest);
    const [seen] = server.requests;
    expect(seen?.method).toBe('POST');
    expect(seen?.path).toBe(`/api/v1/prediction/${PERSONA_FLOW}`);
    expect(seen?.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(seen?.headers['content-type']).toBe('application/json');
    expect(seen?.problems).toEqual([]);
    expect(seen?.body).toEqual(requestFixture('persona-request'));
  });

  it('sends the bio language by name, e.g. German', async () => {
    await providers().personas.generate({ ...personaRequest, count: 2, language: { code: 'de', name: 'German' } });
    expect(server.requests[0]?.state.bio_language).toBe('German');
    expect(server.requests[0]?.state.requested_amount).toBe('2');
  });

  it('sends the first prompt call and the next with the history, exactly as the old system did', async () => {
    const { prompts } = providers();
    const first = await prompts.nextPrompt({ persona: sofia(), previousPrompts: [], seed: 's' });
    const oldFirst = (JSON.parse((fixture('prompt-first').body as { text: string }).text) as { final_prompt: string }).final_prompt;
    await prompts.nextPrompt({ persona: sofia(), previousPrompts: [oldFirst], seed: 's' });
    expect(server.requests.map((r) => r.path)).toEqual([`/api/v1/prediction/${PROMPT_FLOW}`, `/api/v1/prediction/${PROMPT_FLOW}`]);
    expect(server.requests.every((r) => r.problems.length === 0)).toBe(true);
    // The old bodies, with core's extra person_data keys appended at the end of the JSON.
    expect(server.requests[0]?.body).toEqual(withExtraPersonData(requestFixture('prompt-request')));
    expect(server.requests[1]?.body).toEqual(withExtraPersonData(requestFixture('prompt-request-with-history')));
    expect(first.length).toBeGreaterThan(0);
  });

  it('joins several previous prompts into one history line', async () => {
    await providers().prompts.nextPrompt({ persona: samplePersona(), previousPrompts: ['at a cafe', 'on a beach'], seed: 's' });
    expect(server.requests[0]?.state.prompts_history).toBe('Ideas already used, to avoid: at a cafe, on a beach');
  });

  it('sends no Authorization header when there is no key', async () => {
    const open = await startFlowiseServer({ personaFlowId: PERSONA_FLOW, promptFlowId: PROMPT_FLOW });
    try {
      const batch = await providers({ url: open.url, apiKey: undefined }).personas.generate({ ...personaRequest, count: 1 });
      expect(batch.personas).toHaveLength(1);
      expect(open.requests[0]?.headers.authorization).toBeUndefined();
    } finally {
      await open.close();
    }
  });

  it('keeps a path prefix of the Flowise URL', async () => {
    // The stand-in serves at the root only, so the prefixed route is unknown to it: a 404.
    const error = await failure(providers({ url: `${server.url}/flowise/` }).personas.generate(personaRequest));
    expect(error.kind).toBe('not-found');
    expect(server.requests[0]?.path).toBe(`/flowise/api/v1/prediction/${PERSONA_FLOW}`);
  });
});

describe('the extra persona state: seed, used_names, quotas', () => {
  const quotas = [
    { gender: 'f' as const, age: { min: 25, max: 40 }, ethnicity: 'Portuguese', location: 'Lisbon' },
    {},
    { gender: 'm' as const, location: 'Porto, Portugal' },
  ];
  const withTargets: PersonaRequest = { ...personaRequest, count: 3, avoidNames: ['Ana Silva', 'Rui Costa'], quotas };

  it('sends none of them by default, so a flow built from the old docs keeps working', async () => {
    const old = await startFlowiseServer({ personaFlowId: PERSONA_FLOW, promptFlowId: PROMPT_FLOW, personaStateKeys: PERSONA_STATE_KEYS });
    try {
      const batch = await providers({ url: old.url, apiKey: undefined }).personas.generate(withTargets);
      expect(batch.personas).toHaveLength(3);
      expect(old.requests[0]?.problems).toEqual([]);
      expect(Object.keys(old.requests[0]?.state ?? {})).toEqual([...PERSONA_STATE_KEYS]);
    } finally {
      await old.close();
    }
  });

  it('sends the keys asked for, after the old seven, to a flow that declares them', async () => {
    const batch = await providers({ personaExtraState: ['quotas', 'seed', 'used_names'] }).personas.generate(withTargets);
    expect(batch.personas).toHaveLength(3);
    const seen = server.requests[0];
    expect(seen?.problems).toEqual([]);
    expect(Object.keys(seen?.state ?? {})).toEqual([...PERSONA_STATE_KEYS, 'seed', 'used_names', 'quotas']);
    expect(seen?.state.seed).toBe('task-1:batch-0');
    expect(seen?.state.used_names).toBe('Ana Silva; Rui Costa');
    expect(seen?.state.quotas).toBe('female, aged 25-40, ethnicity Portuguese, living in Lisbon\nany\nmale, living in Porto, Portugal');
    // the stand-in, like an LLM that ignores quotas, answers as it would without them
    expect(batch.personas.map((p) => p.gender)).toEqual(['f', 'm', 'f']);
    expect(batch.personas[0]?.currentCountry).toBe('United States');
  });

  it('sends empty values when the task has no names yet and no targets, and only the keys asked for', async () => {
    await providers({ personaExtraState: ['used_names', 'quotas'] }).personas.generate({ ...personaRequest, count: 2 });
    expect(server.requests[0]?.state).toMatchObject({ used_names: '', quotas: '' });
    expect(server.requests[0]?.state).not.toHaveProperty('seed');
    // quotas that ask for nothing are no targets either; one line per persona asked for otherwise
    expect(quotasState({ count: 2, quotas: [{}, {}] })).toBe('');
    expect(quotasState({ count: 2, quotas: [{ age: { min: 65, max: 120 } }] })).toBe('aged 65-120\nany');
  });

  it('a flow that does not declare a key sent is refused by Flowise: a server error naming the key', async () => {
    const old = await startFlowiseServer({ personaFlowId: PERSONA_FLOW, promptFlowId: PROMPT_FLOW, personaStateKeys: PERSONA_STATE_KEYS });
    try {
      const error = await failure(
        providers({ url: old.url, apiKey: undefined, personaExtraState: ['seed'] }).personas.generate(withTargets),
      );
      expect(error.kind).toBe('server');
      expect(old.requests[0]?.problems).toEqual(['state key seed is not declared by the persona flow']);
    } finally {
      await old.close();
    }
  });

  it('refuses an unknown key in the options', () => {
    expect(() => providers({ personaExtraState: ['seed', 'temperature' as never] })).toThrow(/unknown key temperature/);
  });
});

describe('persona answers', () => {
  it.each([
    ['persona-10', 10],
    ['persona-3-pretty', 3],
    ['persona-1', 1],
  ])('reads the real answer %s', async (name, count) => {
    server.setHandler(() => reply.fixture(fixture(name)));
    const batch = await providers().personas.generate({ ...personaRequest, count });
    expect(batch.rejected).toEqual([]);
    expect(batch.personas).toHaveLength(count);
    expect(batch.personas.every((p) => p.firstName && p.bios.facebook && p.age !== null)).toBe(true);
  });

  it('reads a JSON array, fenced objects, bios as an object and a numeric-string age', async () => {
    const [a, b] = [makeFlowisePersona(0), makeFlowisePersona(1)];
    const asObject = { ...b, bios: { ...b.bios, age: '33' } };
    server.enqueue(
      reply.text(JSON.stringify([{ ...a, bios: JSON.stringify(a.bios) }, asObject], null, 2)),
      reply.text(`Here you go:\n\`\`\`json\n${flowisePersonaText([a, b])}\n\`\`\`\n`),
    );
    const fromArray = await providers().personas.generate({ ...personaRequest, count: 2 });
    expect(fromArray.personas.map((p) => [p.firstName, p.age])).toEqual([
      [a.firstname, a.bios.age],
      [b.firstname, 33],
    ]);
    const fenced = await providers().personas.generate({ ...personaRequest, count: 2 });
    expect(fenced.personas.map((p) => p.firstName)).toEqual([a.firstname, b.firstname]);
  });

  it('returns a partial batch with the reasons when some objects are invalid', async () => {
    const good = [0, 1, 2].map((n) => makeFlowisePersona(n));
    const text = [
      flowisePersonaText([good[0]!]),
      JSON.stringify({ ...good[1], lastname: '', bios: JSON.stringify(good[1]!.bios) }),
      flowisePersonaText([good[1]!, good[2]!]),
      '{"firstname": "Cut", "bios": "{\\"age\\": 3',
    ].join('\n');
    server.setHandler(() => reply.text(text));
    const batch = await providers().personas.generate({ ...personaRequest, count: 5 });
    expect(batch.personas.map((p) => p.firstName)).toEqual(good.map((p) => p.firstname));
    expect(batch.rejected).toEqual([
      { index: 1, reason: expect.stringMatching(/lastName is empty/) },
      { index: 4, reason: expect.stringMatching(/truncated/) },
    ]);
  });

  it('keeps at most the requested number of personas', async () => {
    server.setHandler(() => reply.fixture(fixture('persona-10')));
    const batch = await providers().personas.generate({ ...personaRequest, count: 4 });
    expect(batch.personas).toHaveLength(4);
  });

  it('generates requested_amount personas in the test server default mode', async () => {
    const batch = await providers().personas.generate({ ...personaRequest, count: 7 });
    expect(batch.personas).toHaveLength(7);
    expect(new Set(batch.personas.map((p) => `${p.firstName} ${p.lastName} ${p.age}`)).size).toBe(7);
  });
});

describe('prompt answers', () => {
  it.each(['prompt-first', 'prompt-with-history'])('reads final_prompt from the real answer %s', async (name) => {
    server.setHandler(() => reply.fixture(fixture(name)));
    const prompt = await providers().prompts.nextPrompt({ persona: sofia(), previousPrompts: [], seed: 's' });
    const expected = (JSON.parse((fixture(name).body as { text: string }).text) as { final_prompt: string }).final_prompt;
    expect(prompt).toBe(expected);
  });

  it('refuses an answer without final_prompt as an invalid response', async () => {
    server.setHandler(() => reply.text('{"prompt": "wrong key"}'));
    const error = await failure(providers().prompts.nextPrompt({ persona: sofia(), previousPrompts: [], seed: 's' }));
    expect(error).toBeInstanceOf(InvalidResponseError);
    expect(error.retryable).toBe(true);
    expect(error.message).toContain(PROMPT_FLOW);
    expect(error.message).toMatch(/final_prompt/);
  });
});

describe('errors', () => {
  const call = (p = providers()) => p.personas.generate(personaRequest);

  it.each([
    ['error-wrong-key', 'auth', false, 500, /API key was refused.*- Unauthorized/],
    ['error-unknown-flow', 'not-found', false, 404, /not found in the database/],
    ['error-invalid-flow-id', 'bad-request', false, 400, /Invalid Chatflow ID/],
    ['error-malformed-json', 'bad-request', false, 400, /Expected double-quoted property name/],
    ['error-flow-throws', 'server', true, 500, /peer_fail requested: boom/],
  ] as const)('maps the real answer %s to %s', async (name, kind, retryable, status, message) => {
    server.setHandler(() => reply.fixture(fixture(name)));
    const error = await failure(call());
    expect(error).toBeInstanceOf(ProviderError);
    expect([error.kind, error.retryable, error.status]).toEqual([kind, retryable, status]);
    expect(error.message).toMatch(message);
    expect(error.message).toContain(PERSONA_FLOW);
    expect(error.message).not.toContain('statusCode');
  });

  it('gets the same errors from the server when the key, the flow or its id is wrong', async () => {
    const wrongKey = await failure(call(providers({ apiKey: 'not-the-key-1234' })));
    expect([wrongKey.kind, wrongKey.retryable]).toEqual(['auth', false]);
    expect(wrongKey.message).not.toContain('not-the-key-1234');
    const noKey = await failure(call(providers({ apiKey: undefined })));
    expect(noKey.kind).toBe('auth');
    const unknown = await failure(call(providers({ personaFlowId: '00000000-0000-4000-8000-000000000000' })));
    expect([unknown.kind, unknown.status]).toEqual(['not-found', 404]);
    const malformed = await failure(call(providers({ personaFlowId: 'persona-flow' })));
    expect([malformed.kind, malformed.retryable]).toEqual(['bad-request', false]);
  });

  it.each([401, 403])('treats %i from a proxy as an auth error', async (status) => {
    server.setHandler(() => reply.raw(status, '<html>Forbidden</html>', { 'content-type': 'text/html' }));
    const error = await failure(call());
    expect([error.kind, error.retryable, error.status]).toEqual(['auth', false, status]);
  });

  it('retries 429 after the Retry-After the server gives, in seconds or as a date', async () => {
    server.enqueue(
      reply.error(429, 'Too many requests, please try again later.', { 'retry-after': '7' }),
      reply.error(429, 'slow down', { 'retry-after': new Date(Date.now() + 60_000).toUTCString() }),
    );
    const seconds = await failure(call());
    expect([seconds.kind, seconds.retryable, seconds.retryAfterMs]).toEqual(['rate-limit', true, 7000]);
    expect(seconds.message).toContain('Too many requests');
    const date = await failure(call());
    expect(date.retryAfterMs).toBeGreaterThan(50_000);
    expect(date.retryAfterMs).toBeLessThanOrEqual(60_000);
  });

  it.each([502, 503, 504])('treats %i as a retryable server error, even with an HTML body', async (status) => {
    server.setHandler(() => reply.garbage(status));
    const error = await failure(call());
    expect([error.kind, error.retryable, error.status]).toEqual(['server', true, status]);
    expect(error.message).not.toContain('<html>');
  });

  it('keeps the Retry-After of a 503 for the retry', async () => {
    server.setHandler(() => reply.error(503, 'maintenance', { 'retry-after': '5' }));
    const error = await failure(call());
    expect([error.kind, error.retryable, error.retryAfterMs]).toEqual(['server', true, 5000]);
  });

  it('stops reading an answer larger than maxAnswerBytes, with or without a length', async () => {
    const big = JSON.stringify({ text: flowisePersonaText([makeFlowisePersona(0)]), pad: 'x'.repeat(20_000) });
    server.enqueue(
      reply.raw(200, big, { 'content-type': 'application/json' }),
      reply.raw(200, big, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }),
      reply.raw(200, big, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }),
    );
    for (let i = 0; i < 2; i++) {
      const error = await failure(call(providers({ maxAnswerBytes: 10_000 })));
      expect(error).toBeInstanceOf(InvalidResponseError);
      expect(error.message).toMatch(/answered more than 10000 bytes/);
    }
    // Under the limit the same answer is read.
    expect((await call(providers({ maxAnswerBytes: 30_000 }))).personas).toHaveLength(1);
  });

  it('treats another 4xx as a request that will fail again', async () => {
    server.setHandler(() => reply.error(413, 'request entity too large'));
    const error = await failure(call());
    expect([error.kind, error.retryable]).toEqual(['bad-request', false]);
  });

  it('calls a 200 that is not JSON, has no text, or has nothing parsable an invalid response', async () => {
    server.enqueue(
      reply.garbage(200),
      reply.json(200, { question: 'go', chatId: 'x' }),
      reply.json(200, ['text']),
      reply.text('I am sorry, I cannot produce personas today.'),
      reply.text('{"firstname": "", "gender": "q"}'),
    );
    const reasons = [];
    for (let i = 0; i < 5; i++) {
      const error = await failure(call());
      expect(error).toBeInstanceOf(InvalidResponseError);
      expect(error.retryable).toBe(true);
      expect(error.message).toContain(PERSONA_FLOW);
      reasons.push(error.message);
    }
    expect(reasons[0]).toMatch(/not a JSON object/);
    expect(reasons[1]).toMatch(/without a text field/);
    expect(reasons[3]).toMatch(/no usable persona \(no JSON object/);
    expect(reasons[4]).toMatch(/1 rejected: object 1: firstName is empty/);
  });

  it('maps a connection reset and a refused connection to retryable network errors', async () => {
    server.setHandler(() => reply.reset());
    const reset = await failure(call());
    expect([reset.kind, reset.retryable]).toEqual(['network', true]);
    expect(reset.message).toMatch(/ECONNRESET/);
    expect(reset.message).toContain(PERSONA_FLOW);

    const gone = await startFlowiseServer();
    const url = gone.url;
    await gone.close();
    const refused = await failure(call(providers({ url })));
    expect([refused.kind, refused.retryable]).toEqual(['network', true]);
    expect(refused.message).toMatch(/ECONNREFUSED/);
    // A Flowise outage is not a database outage: the pipeline must retry it for the provider
    // window and then give up, not send the job again for ever as it does while PostgreSQL is away.
    expect(isDatabaseUnavailable(reset)).toBe(false);
    expect(isDatabaseUnavailable(refused)).toBe(false);
  });

  it('a Flowise that went down and came back on its port: refused while down, answers again after', async () => {
    const flowise = await startFlowiseServer({ apiKey: API_KEY, personaFlowId: PERSONA_FLOW, promptFlowId: PROMPT_FLOW });
    try {
      const p = providers({ url: flowise.url });
      expect((await p.personas.generate({ ...personaRequest, count: 1 })).personas).toHaveLength(1);
      await flowise.stop(); // the keep-alive connection from the first call is reset too
      const down = await failure(p.personas.generate({ ...personaRequest, count: 1 }));
      expect([down.kind, down.retryable, isDatabaseUnavailable(down)]).toEqual(['network', true, false]);
      expect(down.message).toMatch(/ECONNREFUSED/);
      await flowise.restart();
      expect((await p.personas.generate({ ...personaRequest, count: 1 })).personas).toHaveLength(1);
      expect(flowise.requests).toHaveLength(2);
    } finally {
      await flowise.close();
    }
  });

  it('gives up on a server that never answers with a retryable timeout, and hangs up', async () => {
    server.setHandler(() => reply.hang());
    const error = await failure(call(providers({ personaTimeoutMs: 150 })));
    expect(error).toBeInstanceOf(ProviderError);
    expect([error.kind, error.retryable]).toEqual(['timeout', true]);
    expect(error.message).toBe(`Flowise persona flow ${PERSONA_FLOW} did not answer within 150 ms`);
    await vi.waitFor(() => expect(server.requests[0]?.closedByClient).toBe(true));

    const prompt = await failure(
      providers({ promptTimeoutMs: 150 }).prompts.nextPrompt({ persona: sofia(), previousPrompts: [], seed: 's' }),
    );
    expect([prompt.kind, prompt.message]).toEqual(['timeout', `Flowise prompt flow ${PROMPT_FLOW} did not answer within 150 ms`]);
  });

  it('times out on an answer that stalls halfway, and cancels one', async () => {
    server.setHandler(() => reply.stall());
    const error = await failure(call(providers({ personaTimeoutMs: 150 })));
    expect([error.kind, error.retryable]).toEqual(['timeout', true]);
    const controller = new AbortController();
    const pending = providers().personas.generate({ ...personaRequest, signal: controller.signal });
    await server.waitForRequests(2);
    await new Promise((resolve) => setTimeout(resolve, 20));
    controller.abort();
    expect(await failure(pending)).toBeInstanceOf(CancelledError);
    await vi.waitFor(() => expect(server.requests[1]?.closedByClient).toBe(true));
  });

  it('never puts the key in a message, even when the server echoes it', async () => {
    server.setHandler((r) => reply.error(500, `Error: bad header ${r.headers.authorization} - Unauthorized`));
    const error = await failure(call());
    expect(error.kind).toBe('auth');
    expect(error.message).toContain('Bearer [redacted]');
  });

  it('keeps only the start of a very long Flowise message', async () => {
    server.setHandler(() => reply.error(500, `Error: ${'x'.repeat(5000)}`));
    const error = await failure(call());
    expect(error.message.length).toBeLessThan(500);
  });
});

describe('cancellation', () => {
  it('cancels a persona call mid-flight: CancelledError, and the connection is closed', async () => {
    server.setHandler(() => reply.hang());
    const controller = new AbortController();
    const pending = providers().personas.generate({ ...personaRequest, signal: controller.signal });
    await server.waitForRequests(1);
    controller.abort();
    const error = await failure(pending);
    expect(error).toBeInstanceOf(CancelledError);
    await vi.waitFor(() => expect(server.requests[0]?.closedByClient).toBe(true));
  });

  it('cancels a prompt call mid-flight', async () => {
    server.setHandler(() => reply.hang());
    const controller = new AbortController();
    const pending = providers().prompts.nextPrompt({ persona: sofia(), previousPrompts: [], seed: 's', signal: controller.signal });
    await server.waitForRequests(1);
    controller.abort(new Error('user pressed cancel'));
    expect(await failure(pending)).toBeInstanceOf(CancelledError);
    await vi.waitFor(() => expect(server.requests[0]?.closedByClient).toBe(true));
  });

  it('sends nothing when the signal is already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(providers().personas.generate({ ...personaRequest, signal: controller.signal })).rejects.toBeInstanceOf(CancelledError);
    expect(server.requests).toHaveLength(0);
  });
});

describe('persona concurrency', () => {
  it('keeps at most personaConcurrency calls in flight; a queued call can be cancelled', async () => {
    const gates: Array<() => void> = [];
    server.setHandler(
      () =>
        new Promise((resolve) => {
          gates.push(() => resolve(reply.flowise()));
        }),
    );
    const { personas } = providers({ personaConcurrency: 2 });
    const controller = new AbortController();
    const calls = [0, 1, 2, 3].map(() => personas.generate({ ...personaRequest, count: 1 }));
    const cancelled = personas.generate({ ...personaRequest, count: 1, signal: controller.signal });
    await server.waitForRequests(2);
    // Give calls beyond the limit a chance to arrive; none may.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(server.requests).toHaveLength(2);
    controller.abort();
    await expect(cancelled).rejects.toBeInstanceOf(CancelledError);
    for (let released = 0; released < 4; released++) {
      await vi.waitFor(() => expect(gates.length).toBeGreaterThan(released));
      gates[released]?.();
    }
    const batches = await Promise.all(calls);
    expect(batches.every((b) => b.personas.length === 1)).toBe(true);
    expect(server.requests).toHaveLength(4);
    expect(server.maxInFlight).toBe(2);
  });
});
