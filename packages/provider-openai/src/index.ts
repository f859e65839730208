/**
 * `@avatargen/provider-openai`: an ImageProvider over the OpenAI Images API, and a PersonaProvider
 * and ImagePromptProvider over any OpenAI-compatible chat model (chat.ts). Base selfies by
 * text-to-image (/v1/images/generations) or from a reference face, and 2x2 grids of four shots
 * from the base selfie (/v1/images/edits).
 */
export {
  createOpenAIImageProvider,
  decodeAnswer,
  DEFAULT_BASE_URL,
  DEFAULT_CONCURRENCY,
  DEFAULT_MODEL,
  DEFAULT_TIMEOUT_MS,
  DROPPABLE_PARAMS,
  INPUT_FIDELITIES,
  type InputFidelity,
  type Moderation,
  OpenAIImageProvider,
  type OpenAIImageProviderOptions,
  outputParams,
  type ProviderLogger,
} from './provider.js';
export {
  chatOptionsFromConfig,
  type OpenAIChatConfig,
  openaiChatConfig,
  type OpenAIConfig,
  openaiConfig,
  openaiPlugin,
  type OpenAIPluginOptions,
  optionsFromConfig,
} from './plugin.js';
export {
  CHAT_OUTPUTS,
  type ChatOutput,
  createOpenAIChatProviders,
  DEFAULT_CHAT_MODEL,
  DEFAULT_CHAT_TIMEOUT_MS,
  type OpenAIChatOptions,
  type OpenAIChatProviders,
  refusesResponseFormat,
} from './chat.js';
export { openaiPlugin as default } from './plugin.js';
export { buildBasePrompt, buildGridPrompt, describePerson, type BasePromptOptions, type PromptOptions } from './prompts.js';
export { isModerationBlock, parseRetryAfter, scrub } from './errors.js';
