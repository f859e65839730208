/**
 * `@avatargen/provider-openai`: an ImageProvider over the OpenAI Images API. Base selfies by
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
  type Moderation,
  OpenAIImageProvider,
  type OpenAIImageProviderOptions,
  type ProviderLogger,
} from './provider.js';
export { type OpenAIConfig, openaiConfig, openaiPlugin, optionsFromConfig } from './plugin.js';
export { openaiPlugin as default } from './plugin.js';
export { buildBasePrompt, buildGridPrompt, describePerson, type BasePromptOptions, type PromptOptions } from './prompts.js';
export { isModerationBlock, parseRetryAfter, scrub } from './errors.js';
export { Semaphore } from './semaphore.js';
