import { describeImageProviderContract } from '@avatargen/core/testing';
import { type OpenAIServer, providerFor, startOpenAIServer } from './helpers.js';

let server: OpenAIServer | undefined;

describeImageProviderContract('provider-openai against the OpenAI test server', {
  create: async () => {
    server = await startOpenAIServer();
    return providerFor(server);
  },
  destroy: async () => {
    await server?.close();
  },
});
