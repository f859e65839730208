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
} from './providers.js';
export { type FlowiseConfig, flowiseConfig, flowisePlugin, type FlowisePluginOptions } from './plugin.js';
export { flowisePlugin as default } from './plugin.js';
export { parsePersonaText, personaFromFlowise, type ParsedPersonas } from './persona.js';
export { MAX_PROMPT_LENGTH, parsePromptText, personDataJson, promptsHistory } from './prompt.js';
export { scanJsonValues, scanJsonItems, type ScannedValue } from './scanner.js';
export { parseRetryAfter, type StartStateEntry } from './client.js';
