import { describeImagePromptProviderContract, describePersonaProviderContract } from '@avatargen/core/testing';
import { afterAll, beforeAll } from 'vitest';
import { type ChatServer, startChatServer } from '../../../tests/support/chat-server.js';
import { createOpenAIChatProviders, type OpenAIChatProviders } from '../src/index.js';

// The chat providers against the chat stand-in, once with strict structured output (OpenAI) and
// once against a server that refuses json_schema (Ollama-like: auto steps down to json_object).
for (const dialect of ['openai', 'ollama'] as const) {
  let server: ChatServer;
  let providers: OpenAIChatProviders;
  beforeAll(async () => {
    server = await startChatServer({ apiKey: 'sk-contract-chat', dialect });
    providers = createOpenAIChatProviders({ apiKey: 'sk-contract-chat', baseURL: server.baseURL, timeoutMs: 10_000 });
  });
  afterAll(async () => {
    // Every request but the refused json_schema ones (the ollama dialect's 400) was well formed.
    const problems = server.requests.flatMap((r) => r.problems).filter((p) => !(dialect === 'ollama' && /json_schema/.test(p)));
    await server.close();
    if (problems.length > 0) throw new Error(`the chat server saw malformed requests: ${problems.join('; ')}`);
  });
  describePersonaProviderContract(`openai chat (${dialect})`, { create: () => providers.personas });
  describeImagePromptProviderContract(`openai chat (${dialect})`, { create: () => providers.prompts });
}
