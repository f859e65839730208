/**
 * The Flowise stand-in in tests/support answers like the real server did in the fixtures: same
 * checks in the same order, same status codes, same error bodies. Raw fetch, no provider.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FlowiseServer, loadFlowiseFixture, startFlowiseServer } from '../../../tests/support/flowise-server.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const fixture = (name: string) => loadFlowiseFixture(name, FIXTURES);
const KEY = 'server-key-abcdef123';
let server: FlowiseServer;

beforeAll(async () => {
  server = await startFlowiseServer({ apiKey: KEY });
});
afterAll(async () => {
  await server.close();
});

async function post(flowId: string, body: string, key: string | null = KEY) {
  const response = await fetch(`${server.url}/api/v1/prediction/${flowId}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body,
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const personaBody = (state: Array<{ key: string; value: string }>) =>
  JSON.stringify({ question: 'go', overrideConfig: { startState: { startAgentflow_0: state } } });

describe('Flowise stand-in', () => {
  it('answers a body that is not JSON like Flowise (400, JSON.parse message)', async () => {
    const answer = await post(server.personaFlowId, '{"question": "go",}');
    const expected = fixture('error-malformed-json');
    expect(answer.status).toBe(expected.status);
    expect(Object.keys(answer.body)).toEqual(Object.keys(expected.body as object));
    expect(answer.body.message).toMatch(/^Expected double-quoted property name in JSON at position 18/);
  });

  it('answers a flow id that is not a UUID, an unknown flow and a wrong key with the fixtures bodies', async () => {
    const body = personaBody([]);
    expect(await post('not-a-uuid', body)).toEqual(fixture('error-invalid-flow-id'));
    expect(await post('00000000-0000-4000-8000-000000000000', body)).toEqual(fixture('error-unknown-flow'));
    expect(await post(server.personaFlowId, body, 'wrong')).toEqual(fixture('error-wrong-key'));
    expect(await post(server.personaFlowId, body, null)).toEqual(fixture('error-wrong-key'));
  });

  it('checks the start state against the keys the flow declares, and records what is wrong', async () => {
    const answer = await post(
      server.personaFlowId,
      personaBody([
        { key: 'requested_amount', value: 'three' },
        { key: 'temperature', value: 'x' },
      ]),
    );
    expect(answer.status).toBe(500);
    expect(answer.body.message).toMatch(/NodeVM Execution Error/);
    const seen = server.requests.at(-1);
    expect(seen?.problems).toEqual(
      expect.arrayContaining([
        'state key temperature is not declared by the persona flow',
        'state key persona_description is missing',
        'requested_amount is not a positive whole number',
      ]),
    );
    const prompt = await post(server.promptFlowId, personaBody([{ key: 'person_data', value: '{"firstname": "A"}' }]));
    expect(prompt.status).toBe(500);
    expect(server.requests.at(-1)?.problems[0]).toMatch(/^person_data lacks lastname, gender/);
  });

  it('declares seed, used_names and quotas by default, optional; a flow built before them refuses them', async () => {
    const old = [
      'requested_amount',
      'persona_description',
      'bio_language',
      'instructions_facebook',
      'instructions_instagram',
      'instructions_x',
      'instructions_tiktok',
    ].map((key) => ({ key, value: key === 'requested_amount' ? '1' : 'x' }));
    const extra = [
      { key: 'seed', value: 's1' },
      { key: 'used_names', value: 'Ana Silva' },
      { key: 'quotas', value: 'female' },
    ];
    expect((await post(server.personaFlowId, personaBody(old))).status).toBe(200);
    expect((await post(server.personaFlowId, personaBody([...old, ...extra]))).status).toBe(200);
    expect(server.requests.at(-1)?.state).toMatchObject({ seed: 's1', used_names: 'Ana Silva', quotas: 'female' });
    const legacy = await startFlowiseServer({ apiKey: KEY, personaStateKeys: old.map((e) => e.key) });
    try {
      const response = await fetch(`${legacy.url}/api/v1/prediction/${legacy.personaFlowId}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
        body: personaBody([...old, extra[2] as { key: string; value: string }]),
      });
      expect(response.status).toBe(500);
      expect(legacy.requests[0]?.problems).toEqual(['state key quotas is not declared by the persona flow']);
    } finally {
      await legacy.close();
    }
  });

  it('accepts a request without question, like Flowise', async () => {
    const state = [
      'requested_amount',
      'persona_description',
      'bio_language',
      'instructions_facebook',
      'instructions_instagram',
      'instructions_x',
      'instructions_tiktok',
    ].map((key) => ({ key, value: key === 'requested_amount' ? '2' : 'x' }));
    const answer = await post(server.personaFlowId, JSON.stringify({ overrideConfig: { startState: { startAgentflow_0: state } } }));
    expect(answer.status).toBe(200);
    expect(Object.keys(answer.body)).toEqual(Object.keys(fixture('persona-1').body as object));
    expect((answer.body.text as string).split('\n')).toHaveLength(2);
  });
});
