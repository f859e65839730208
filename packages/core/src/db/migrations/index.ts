import { Migration20261130000000_initial } from './Migration20261130000000_initial.js';
import { Migration20261201000000_login_attempts } from './Migration20261201000000_login_attempts.js';
import { Migration20261210000000_task_usage } from './Migration20261210000000_task_usage.js';
import { Migration20261211000000_task_counters } from './Migration20261211000000_task_counters.js';
import { Migration20261212000000_unit_jobs } from './Migration20261212000000_unit_jobs.js';
import { Migration20261213000000_picture_hashes } from './Migration20261213000000_picture_hashes.js';
import { Migration20261214000000_targets } from './Migration20261214000000_targets.js';
import { Migration20261215000000_provider_limits } from './Migration20261215000000_provider_limits.js';

/** Every migration in order. Listed explicitly so bundled builds need no file globbing. */
export const MIGRATIONS = [
  { name: 'Migration20261130000000_initial', class: Migration20261130000000_initial },
  { name: 'Migration20261201000000_login_attempts', class: Migration20261201000000_login_attempts },
  { name: 'Migration20261210000000_task_usage', class: Migration20261210000000_task_usage },
  { name: 'Migration20261211000000_task_counters', class: Migration20261211000000_task_counters },
  { name: 'Migration20261212000000_unit_jobs', class: Migration20261212000000_unit_jobs },
  { name: 'Migration20261213000000_picture_hashes', class: Migration20261213000000_picture_hashes },
  { name: 'Migration20261214000000_targets', class: Migration20261214000000_targets },
  { name: 'Migration20261215000000_provider_limits', class: Migration20261215000000_provider_limits },
];
