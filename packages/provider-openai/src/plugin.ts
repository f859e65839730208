import { type AvatarGenPlugin, definePlugin, variables, z } from '@avatargen/core';
import { createOpenAIImageProvider, type OpenAIImageProviderOptions } from './provider.js';

/** The variables this plugin reads; validated by core when the plugin is loaded. */
export const openaiConfig = z.object({
  OPENAI_API_KEY: z.string({ error: 'is required' }).trim().min(1, { error: 'is required' }).describe('OpenAI API key.'),
  OPENAI_BASE_URL: variables.url().optional().describe('OpenAI-compatible gateway base URL (default: the OpenAI API).'),
  OPENAI_IMAGE_MODEL: z.string().default('gpt-image-1.5').describe('Image model.'),
  OPENAI_MODERATION: z.enum(['auto', 'low']).default('auto').describe('Moderation level sent with image requests.'),
  OPENAI_CONCURRENCY: variables.int(1, 50).default(4).describe('OpenAI image calls in flight per worker process.'),
  OPENAI_TIMEOUT_SECONDS: variables.int(1, 3600).default(600).describe('Timeout of one image call.'),
  BASE_PROMPT_APPEND: z.string().optional().describe('Text appended to every image prompt.'),
});
export type OpenAIConfig = z.output<typeof openaiConfig>;

/** The provider's options from the plugin's validated variables (OPENAI_*, BASE_PROMPT_APPEND). */
export function optionsFromConfig(config: OpenAIConfig): OpenAIImageProviderOptions {
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
 * Fills the `imageProvider` port with the OpenAI Images API. `overrides` win over the variables
 * (e.g. a shorter timeout in tests).
 */
export function openaiPlugin(overrides: Partial<OpenAIImageProviderOptions> = {}): AvatarGenPlugin {
  return definePlugin({
    name: '@avatargen/provider-openai',
    provides: ['imageProvider'],
    config: openaiConfig,
    secrets: ['OPENAI_API_KEY'],
    register(context) {
      const options = { ...optionsFromConfig(context.config), logger: context.logger, ...overrides };
      context.provide('imageProvider', createOpenAIImageProvider(options));
    },
  });
}
