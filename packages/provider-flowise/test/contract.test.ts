import { describeImagePromptProviderContract, describePersonaProviderContract } from '@avatargen/core/testing';
import { afterAll, beforeAll } from 'vitest';
import { type FlowiseServer, startFlowiseServer } from '../../../tests/support/flowise-server.js';
import { createFlowiseProviders, type FlowiseProviders } from '../src/index.js';

// The providers against the Flowise stand-in in its default mode (it checks key and body shape).
let server: FlowiseServer;
let providers: FlowiseProviders;

beforeAll(async () => {
  server = await startFlowiseServer({ apiKey: 'contract-key-123456' });
  providers = createFlowiseProviders({
    url: server.url,
    apiKey: 'contract-key-123456',
    personaFlowId: server.personaFlowId,
    promptFlowId: server.promptFlowId,
    personaTimeoutMs: 10_000,
    promptTimeoutMs: 10_000,
  });
});
afterAll(async () => {
  // Every request the suites made had the shape the flows expect.
  const problems = server.requests.flatMap((r) => r.problems);
  await server.close();
  if (problems.length > 0) throw new Error(`the test server saw malformed requests: ${problems.join('; ')}`);
});

describePersonaProviderContract('flowise', { create: () => providers.personas });
describeImagePromptProviderContract('flowise', { create: () => providers.prompts });
