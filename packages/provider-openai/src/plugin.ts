import { type AvatarGenPlugin, definePlugin, type PortName, variables, z } from '@avatargen/core';
import { CHAT_OUTPUTS, createOpenAIChatProviders, DEFAULT_CHAT_MODEL, type OpenAIChatOptions } from './chat.js';
import { createOpenAIImageProvider, type OpenAIImageProviderOptions } from './provider.js';

const chatVariables = {
  OPENAI_CHAT_MODEL: z.string().trim().min(1).default(DEFAULT_CHAT_MODEL).describe('Chat model that writes personas and image prompts.'),
  OPENAI_CHAT_BASE_URL: variables
    .url()
    .optional()
    .describe('OpenAI-compatible server for chat, e.g. http://127.0.0.1:11434/v1 for Ollama (default: OPENAI_BASE_URL).'),
  OPENAI_CHAT_API_KEY: variables.text().describe('Key for the chat server (default: OPENAI_API_KEY; none for a server that takes none).'),
  OPENAI_CHAT_TEMPERATURE: z.coerce
    .number()
    .min(0)
    .max(2)
    .optional()
    .describe("Sampling temperature of chat calls (default: the model's own)."),
  OPENAI_CHAT_TIMEOUT_SECONDS: variables.int(1, 3600).default(120).describe('Timeout of one chat call.'),
  OPENAI_CHAT_OUTPUT: z
    .enum(CHAT_OUTPUTS)
    .default('auto')
    .describe(
      'How the answer shape is asked: json_schema (strict), json_object, prompt; auto steps down when the server refuses with a 400.',
    ),
};

/** The variables this plugin reads; validated by core when the plugin is loaded. */
export const openaiConfig = z.object({
  OPENAI_API_KEY: z.string({ error: 'is required' }).trim().min(1, { error: 'is required' }).describe('OpenAI API key.'),
  OPENAI_BASE_URL: variables.url().optional().describe('OpenAI-compatible gateway base URL (default: the OpenAI API).'),
  OPENAI_IMAGE_MODEL: z
    .string()
    .default('gpt-image-1.5')
    .describe('Image model: gpt-image-1.5 (default), gpt-image-1, gpt-image-1-mini, or a newer GPT image model; see docs/images.md.'),
  OPENAI_MODERATION: z.enum(['auto', 'low']).default('auto').describe('Moderation level sent with image requests.'),
  OPENAI_INPUT_FIDELITY: z
    .enum(['high', 'low', 'off'])
    .default('high')
    .describe(
      'input_fidelity of edits (reference face, pictures): high keeps faces closest; off sends none. A model that refuses it gets none.',
    ),
  OPENAI_CONCURRENCY: variables.int(1, 50).default(4).describe('OpenAI image calls in flight per worker process.'),
  OPENAI_TIMEOUT_SECONDS: variables.int(1, 3600).default(600).describe('Timeout of one image call.'),
  BASE_PROMPT_APPEND: z.string().optional().describe('Text appended to every image prompt.'),
  ...chatVariables,
});
export type OpenAIConfig = z.output<typeof openaiConfig>;

/** Text only (personas and prompts, no pictures): no key required, for a local server such as Ollama. */
export const openaiChatConfig = z.object({
  OPENAI_API_KEY: variables.text().describe('OpenAI API key (the chat key when OPENAI_CHAT_API_KEY is unset).'),
  OPENAI_BASE_URL: variables.url().optional().describe('OpenAI-compatible gateway base URL (default: the OpenAI API).'),
  ...chatVariables,
});
export type OpenAIChatConfig = z.output<typeof openaiChatConfig>;

/** The provider's options from the plugin's validated variables (OPENAI_*, BASE_PROMPT_APPEND). */
export function optionsFromConfig(config: OpenAIConfig): OpenAIImageProviderOptions {
  return {
    apiKey: config.OPENAI_API_KEY,
    baseURL: config.OPENAI_BASE_URL,
    model: config.OPENAI_IMAGE_MODEL,
    moderation: config.OPENAI_MODERATION,
    inputFidelity: config.OPENAI_INPUT_FIDELITY,
    concurrency: config.OPENAI_CONCURRENCY,
    timeoutMs: config.OPENAI_TIMEOUT_SECONDS * 1000,
    promptAppend: config.BASE_PROMPT_APPEND,
  };
}

/** The chat providers' options: the chat base URL and key default to the image ones. */
export function chatOptionsFromConfig(config: OpenAIChatConfig): OpenAIChatOptions {
  return {
    apiKey: config.OPENAI_CHAT_API_KEY ?? config.OPENAI_API_KEY,
    keyVariable: config.OPENAI_CHAT_API_KEY ? 'OPENAI_CHAT_API_KEY' : 'OPENAI_API_KEY',
    baseURL: config.OPENAI_CHAT_BASE_URL ?? config.OPENAI_BASE_URL,
    model: config.OPENAI_CHAT_MODEL,
    temperature: config.OPENAI_CHAT_TEMPERATURE,
    timeoutMs: config.OPENAI_CHAT_TIMEOUT_SECONDS * 1000,
    output: config.OPENAI_CHAT_OUTPUT,
  };
}

export interface OpenAIPluginOptions extends Partial<OpenAIImageProviderOptions> {
  /** Fill `imageProvider` (the Images API). Default true. */
  images?: boolean;
  /** Fill `personaProvider` and `imagePromptProvider` from a chat model. Default false. */
  text?: boolean;
  /** Win over the chat variables (e.g. a shorter timeout in tests). */
  chat?: Partial<OpenAIChatOptions>;
}

/**
 * The OpenAI plugin: `imageProvider` from the Images API, and with `text: true` also
 * `personaProvider` and `imagePromptProvider` from an OpenAI-compatible chat model (which may be
 * another server: OPENAI_CHAT_BASE_URL). `{ images: false, text: true }` needs no image key.
 * Other options win over the image variables (e.g. a shorter timeout in tests).
 */
export function openaiPlugin(options: OpenAIPluginOptions = {}): AvatarGenPlugin {
  const { images = true, text = false, chat, ...overrides } = options;
  if (!images && !text) throw new TypeError('openaiPlugin: images and text are both off, so it would fill no port');
  const provides: PortName[] = [
    ...(images ? (['imageProvider'] as const) : []),
    ...(text ? (['personaProvider', 'imagePromptProvider'] as const) : []),
  ];
  const register = (
    context: { config: OpenAIChatConfig & Partial<OpenAIConfig>; logger: OpenAIImageProviderOptions['logger'] },
    provide: (port: PortName, value: unknown) => void,
  ) => {
    if (images) {
      provide(
        'imageProvider',
        createOpenAIImageProvider({ ...optionsFromConfig(context.config as OpenAIConfig), logger: context.logger, ...overrides }),
      );
    }
    if (text) {
      const providers = createOpenAIChatProviders({ ...chatOptionsFromConfig(context.config), logger: context.logger, ...chat });
      provide('personaProvider', providers.personas);
      provide('imagePromptProvider', providers.prompts);
    }
  };
  if (images) {
    return definePlugin({
      name: '@avatargen/provider-openai',
      provides,
      config: openaiConfig,
      secrets: ['OPENAI_API_KEY', 'OPENAI_CHAT_API_KEY'],
      register: (context) => register(context, (port, value) => context.provide(port, value as never)),
    });
  }
  return definePlugin({
    name: '@avatargen/provider-openai',
    provides,
    config: openaiChatConfig,
    secrets: ['OPENAI_API_KEY', 'OPENAI_CHAT_API_KEY'],
    register: (context) => register(context, (port, value) => context.provide(port, value as never)),
  });
}
