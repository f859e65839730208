/**
 * `@avatargen/provider-flowise`: PersonaProvider and ImagePromptProvider over the Flowise
 * prediction API, as the old system called it.
 */
export {
  createFlowiseProviders,
  DEFAULT_PERSONA_TIMEOUT_MS,
  DEFAULT_PROMPT_TIMEOUT_MS,
  type FlowiseProviders,
  type FlowiseProvidersOptions,
  PERSONA_EXTRA_STATE_KEYS,
  type PersonaExtraStateKey,
  quotasState,
} from './providers.js';
export { type FlowiseConfig, flowiseConfig, flowisePlugin, type FlowisePluginOptions, parsePersonaExtraState } from './plugin.js';
export { flowisePlugin as default } from './plugin.js';
export { personDataJson, promptsHistory } from './prompt.js';
/** The tolerant reader moved to core (every text provider uses it); these names stay for existing callers. */
export {
  MAX_PROMPT_LENGTH,
  type ParsedPersonas,
  personaCandidate as personaFromFlowise,
  readPersonas as parsePersonaText,
  readPrompt as parsePromptText,
  type ScannedValue,
  scanJsonItems,
  scanJsonValues,
} from '@avatargen/core';
export { parseRetryAfter, type StartStateEntry } from './client.js';
