export * from './prompts.js';
export { MAX_PROMPT_LENGTH, type ParsedPersonas, personaCandidate, readPersonas, readPrompt } from './reader.js';
export { type ScannedValue, scanJsonItems, scanJsonValues } from './scanner.js';
