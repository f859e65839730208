import { packageBuild } from '../../tsup.shared.js';

// The ZIP worker is an entry of its own: a worker thread loads dist/zip-worker.js without the rest
// of core. So are the errors: a storage's worker reader (@avatargen/storage-filesystem's) imports
// @avatargen/core/errors alone; index and errors share one chunk, so instanceof holds across both.
export default packageBuild(
  { index: 'src/index.ts', testing: 'src/testing.ts', errors: 'src/errors.ts', domain: 'src/domain-entry.ts', 'zip-worker': 'src/exports/zip-worker.ts' },
  { external: ['vitest'] },
);
