// @avatargen/core/domain: what worker threads and small tools need (errors, the seeded PRNG,
// the domain schemas, image sniffing, provenance marks) without loading the ORM, pg-boss or pino.
export * from './domain/index.js';
export * from './domain/prices.js';
export * from './errors.js';
export * from './image-info.js';
export * from './provenance.js';
export type * from './ports.js';
export { z } from 'zod';
