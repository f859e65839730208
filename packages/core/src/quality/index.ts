export * from './text.js';
export * from './pictures.js';
