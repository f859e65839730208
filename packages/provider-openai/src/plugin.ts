import { type AvatarGenConfig, type AvatarGenPlugin, ConfigError, definePlugin } from '@avatargen/core';
import { createOpenAIImageProvider, type OpenAIImageProviderOptions } from './provider.js';

/** The provider's options from the validated configuration (OPENAI_*, BASE_PROMPT_APPEND). */
export function optionsFromConfig(config: AvatarGenConfig): OpenAIImageProviderOptions {
  if (!config.OPENAI_API_KEY) {
    throw new ConfigError(['OPENAI_API_KEY is required by @avatargen/provider-openai (or leave it out and use provider-local)']);
  }
  return {
    apiKey: config.OPENAI_API_KEY,
    baseURL: config.OPENAI_BASE_URL,
    model: config.OPENAI_IMAGE_MODEL,
    moderation: config.OPENAI_MODERATION,
    concurrency: config.OPENAI_CONCURRENCY,
    timeoutMs: config.OPENAI_TIMEOUT_SECONDS * 1000,
    promptAppend: config.BASE_PROMPT_APPEND,
  };
}

/**
 * Fills the `imageProvider` port with the OpenAI Images API. `overrides` win over the config
 * (e.g. a shorter timeout in tests).
 */
export function openaiPlugin(overrides: Partial<OpenAIImageProviderOptions> = {}): AvatarGenPlugin {
  return definePlugin({
    name: '@avatargen/provider-openai',
    provides: ['imageProvider'],
    register(context) {
      const options = { ...optionsFromConfig(context.config), logger: context.logger, ...overrides };
      context.provide('imageProvider', createOpenAIImageProvider(options));
    },
  });
}
