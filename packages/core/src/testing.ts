/**
 * `@avatargen/core/testing`: the contract suites every implementation of a port runs (with vitest),
 * and small helpers to make test images and personas.
 */
export * from './testing/contracts.js';
export * from './testing/png.js';
export * from './testing/database.js';
export * from './testing/exiftool.js';
