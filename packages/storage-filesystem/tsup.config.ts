import { packageBuild } from '../../tsup.shared.js';

// The worker reader is an entry of its own: a worker thread loads dist/filesystem-reader.js (the
// storage's workerReader() names it, next to dist/index.js) without the rest of the package.
export default packageBuild({ index: 'src/index.ts', 'filesystem-reader': 'src/filesystem-reader.ts' });
