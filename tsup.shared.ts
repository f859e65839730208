import { defineConfig, type Options } from 'tsup';

/** The build every package uses: ESM with type declarations for Node 20+. */
export function packageBuild(entry: string[] | Record<string, string>, extra: Options = {}) {
  return defineConfig({ entry, format: ['esm'], dts: true, sourcemap: true, clean: true, target: 'node20', ...extra });
}
