import { buildContainer, ConfigError, createLogger, loadConfig, ProviderError } from '@avatargen/core';
import { samplePersona } from '@avatargen/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FlowiseServer, reply, startFlowiseServer } from '../../../tests/support/flowise-server.js';
import { flowisePlugin } from '../src/index.js';

const KEY = 'plugin-key-Hk29sLq0';
const logger = createLogger({ LOG_LEVEL: 'silent' });
const PORTS = ['personaProvider', 'imagePromptProvider'] as const;
let server: FlowiseServer;

beforeAll(async () => {
  server = await startFlowiseServer({ apiKey: KEY });
});
afterAll(async () => {
  await server.close();
});

function config(extra: Record<string, string> = {}) {
  return loadConfig(
    {
      FLOWISE_URL: server.url,
      FLOWISE_API_KEY: KEY,
      FLOWISE_PERSONA_FLOW_ID: server.personaFlowId,
      FLOWISE_PROMPT_FLOW_ID: server.promptFlowId,
      ...extra,
    },
    [flowisePlugin()],
  );
}

describe('flowisePlugin', () => {
  it('fills both ports from the validated config', async () => {
    const { resolvePort } = await buildContainer([flowisePlugin()], { config: config(), logger }, PORTS);
    const batch = await resolvePort('personaProvider').generate({
      count: 2,
      description: 'anyone',
      language: { code: 'de', name: 'German' },
      bioInstructions: { facebook: 'a', instagram: 'b', x: 'c', tiktok: 'd' },
      seed: 's',
    });
    expect(batch.personas).toHaveLength(2);
    const prompt = await resolvePort('imagePromptProvider').nextPrompt({ persona: samplePersona(), previousPrompts: [], seed: 's' });
    expect(prompt).toContain('Maria Garcia');
    expect(server.requests.map((r) => [r.flow, r.headers.authorization, r.problems])).toEqual([
      ['persona', `Bearer ${KEY}`, []],
      ['prompt', `Bearer ${KEY}`, []],
    ]);
    expect(server.requests[0]?.state.bio_language).toBe('German');
  });

  it('uses the timeouts of the config', async () => {
    server.setHandler(() => reply.hang());
    try {
      const { resolvePort } = await buildContainer(
        [flowisePlugin()],
        { config: config({ FLOWISE_PROMPT_TIMEOUT_SECONDS: '1' }), logger },
        PORTS,
      );
      const error = await resolvePort('imagePromptProvider')
        .nextPrompt({ persona: samplePersona(), previousPrompts: [], seed: 's' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProviderError);
      expect((error as ProviderError).message).toMatch(/did not answer within 1 s$/);
    } finally {
      server.setHandler(null);
    }
  });

  it('sends the extra persona state FLOWISE_PERSONA_EXTRA_STATE names, none by default, and refuses unknown names', async () => {
    const request = {
      count: 1,
      description: 'anyone',
      language: { code: 'en', name: 'English' },
      bioInstructions: { facebook: 'a', instagram: 'b', x: 'c', tiktok: 'd' },
      seed: 'task:7',
      avoidNames: ['Ana Silva'],
      quotas: [{ gender: 'f' as const }],
    };
    server.reset();
    const plain = await buildContainer([flowisePlugin()], { config: config(), logger }, PORTS);
    await plain.resolvePort('personaProvider').generate(request);
    const extra = await buildContainer(
      [flowisePlugin()],
      { config: config({ FLOWISE_PERSONA_EXTRA_STATE: ' seed, quotas ' }), logger },
      PORTS,
    );
    await extra.resolvePort('personaProvider').generate(request);
    expect(server.requests[0]?.state).not.toHaveProperty('seed');
    expect(server.requests[0]?.state).not.toHaveProperty('quotas');
    expect(server.requests[1]?.state).toMatchObject({ seed: 'task:7', quotas: 'female' });
    expect(server.requests[1]?.state).not.toHaveProperty('used_names');
    expect(server.requests.map((r) => r.problems)).toEqual([[], []]);
    const error = (() => {
      try {
        config({ FLOWISE_PERSONA_EXTRA_STATE: 'seed,names' });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues[0]).toMatch(
      /^FLOWISE_PERSONA_EXTRA_STATE must be none or a comma-separated list of seed, used_names, quotas/,
    );
  });

  it('names the missing variables, never the key', async () => {
    const error = await buildContainer(
      [flowisePlugin()],
      { config: loadConfig({}), env: { FLOWISE_API_KEY: KEY, FLOWISE_PERSONA_FLOW_ID: 'p' }, logger },
      PORTS,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues).toEqual([
      'FLOWISE_URL is required (plugin @avatargen/provider-flowise)',
      'FLOWISE_PROMPT_FLOW_ID is required (plugin @avatargen/provider-flowise)',
    ]);
    expect((error as ConfigError).message).not.toContain(KEY);
  });
});
