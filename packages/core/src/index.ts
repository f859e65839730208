export * from './config.js';
export * from './domain/index.js';
export * from './errors.js';
export * from './image-info.js';
export * from './logger.js';
export * from './plugin.js';
export * from './ports.js';
export * from './util.js';
