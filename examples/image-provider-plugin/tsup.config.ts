import { defineConfig } from 'tsup';

// `npm pack` runs this through the prepack script: ESM and type declarations for Node 20+.
// @avatargen/core is a peer dependency, so tsup leaves it external: the site's copy is used.
export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  clean: true,
  target: 'node20',
});
