import { ConfigError, definePlugin, type AvatarGenPlugin } from '@avatargen/core';
import { createFlowiseProviders } from './providers.js';

export interface FlowisePluginOptions {
  /** The fetch to use; Node's global fetch by default. */
  fetch?: typeof globalThis.fetch;
}

/**
 * Fills `personaProvider` and `imagePromptProvider` from the validated config: FLOWISE_URL,
 * FLOWISE_API_KEY, FLOWISE_PERSONA_FLOW_ID, FLOWISE_PROMPT_FLOW_ID, FLOWISE_PERSONA_TIMEOUT_SECONDS,
 * FLOWISE_PROMPT_TIMEOUT_SECONDS. (MULTITHREAD_FLOWISE is enforced by core's pipeline, not here.)
 */
export function flowisePlugin(options: FlowisePluginOptions = {}): AvatarGenPlugin {
  return definePlugin({
    name: 'flowise',
    provides: ['personaProvider', 'imagePromptProvider'],
    register(context) {
      const config = context.config;
      const missing = (['FLOWISE_URL', 'FLOWISE_PERSONA_FLOW_ID', 'FLOWISE_PROMPT_FLOW_ID'] as const).filter(
        (name) => !config[name],
      );
      if (missing.length > 0) throw new ConfigError(missing.map((name) => `${name} is required by the flowise plugin`));
      const providers = createFlowiseProviders({
        url: config.FLOWISE_URL as string,
        apiKey: config.FLOWISE_API_KEY,
        personaFlowId: config.FLOWISE_PERSONA_FLOW_ID as string,
        promptFlowId: config.FLOWISE_PROMPT_FLOW_ID as string,
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
