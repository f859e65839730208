import { packageBuild } from '../../tsup.shared.js';

export default packageBuild(['src/index.ts'], { external: ['@avatargen/core', 'sharp'] });
