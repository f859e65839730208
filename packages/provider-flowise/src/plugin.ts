import { type AvatarGenPlugin, definePlugin, variables, z } from '@avatargen/core';
import { createFlowiseProviders } from './providers.js';

const required = z.string({ error: 'is required' }).trim().min(1, { error: 'is required' });

/** The variables this plugin reads; validated by core when the plugin is loaded. */
export const flowiseConfig = z.object({
  FLOWISE_URL: variables.url().describe('Flowise server.'),
  FLOWISE_API_KEY: variables.text().describe('Flowise API key (Bearer).'),
  FLOWISE_PERSONA_FLOW_ID: required.describe('Flowise flow that returns personas.'),
  FLOWISE_PROMPT_FLOW_ID: required.describe('Flowise flow that returns image prompts.'),
  FLOWISE_PERSONA_TIMEOUT_SECONDS: variables.int(1, 3600).default(600).describe('Timeout of one persona call.'),
  FLOWISE_PROMPT_TIMEOUT_SECONDS: variables.int(1, 3600).default(120).describe('Timeout of one prompt call.'),
});
export type FlowiseConfig = z.output<typeof flowiseConfig>;

export interface FlowisePluginOptions {
  /** The fetch to use; Node's global fetch by default. */
  fetch?: typeof globalThis.fetch;
}

/**
 * Fills `personaProvider` and `imagePromptProvider` from the FLOWISE_* variables.
 * (MULTITHREAD_FLOWISE is core's: the pipeline enforces it, not this plugin.)
 */
export function flowisePlugin(options: FlowisePluginOptions = {}): AvatarGenPlugin {
  return definePlugin({
    name: '@avatargen/provider-flowise',
    provides: ['personaProvider', 'imagePromptProvider'],
    config: flowiseConfig,
    secrets: ['FLOWISE_API_KEY'],
    register(context) {
      const config = context.config;
      const providers = createFlowiseProviders({
        url: config.FLOWISE_URL,
        apiKey: config.FLOWISE_API_KEY,
        personaFlowId: config.FLOWISE_PERSONA_FLOW_ID,
        promptFlowId: config.FLOWISE_PROMPT_FLOW_ID,
        personaTimeoutMs: config.FLOWISE_PERSONA_TIMEOUT_SECONDS * 1000,
        promptTimeoutMs: config.FLOWISE_PROMPT_TIMEOUT_SECONDS * 1000,
        fetch: options.fetch,
      });
      context.provide('personaProvider', providers.personas);
      context.provide('imagePromptProvider', providers.prompts);
      context.logger.debug(
        { url: config.FLOWISE_URL, personaFlowId: config.FLOWISE_PERSONA_FLOW_ID, promptFlowId: config.FLOWISE_PROMPT_FLOW_ID },
        'Flowise providers registered',
      );
    },
  });
}
