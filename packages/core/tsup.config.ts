import { packageBuild } from '../../tsup.shared.js';

// The errors are an entry of their own (@avatargen/core/errors); index and errors share one chunk,
// so instanceof holds across both.
export default packageBuild(
  { index: 'src/index.ts', testing: 'src/testing.ts', errors: 'src/errors.ts', domain: 'src/domain-entry.ts' },
  { external: ['vitest'] },
);
