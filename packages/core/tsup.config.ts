import { packageBuild } from '../../tsup.shared.js';

// The ZIP worker and the filesystem storage's worker reader are entries of their own: a worker
// thread loads dist/zip-worker.js (and dist/filesystem-reader.js) without the rest of core.
export default packageBuild(
  { index: 'src/index.ts', testing: 'src/testing.ts', 'zip-worker': 'src/exports/zip-worker.ts', 'filesystem-reader': 'src/storage/filesystem-reader.ts' },
  { external: ['vitest'] },
);
