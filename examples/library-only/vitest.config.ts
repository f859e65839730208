import { packageProject } from '../../vitest.shared.js';

export default packageProject('example-library-only', { testTimeout: 180_000 });
