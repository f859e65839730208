import { packageBuild } from '../../tsup.shared.js';

// The worker is its own entry: the pool loads dist/worker.js in each thread.
export default packageBuild(['src/index.ts', 'src/worker.ts']);
