import { Migration20261130000000_initial } from './Migration20261130000000_initial.js';

/** Every migration in order. Listed explicitly so bundled builds need no file globbing. */
export const MIGRATIONS = [{ name: 'Migration20261130000000_initial', class: Migration20261130000000_initial }];
