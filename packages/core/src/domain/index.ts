export * from './languages.js';
export * from './persona.js';
export * from './request.js';
export * from './settings.js';
export * from './status.js';
export * from './random.js';
export * from './style.js';
export * from './targets.js';
