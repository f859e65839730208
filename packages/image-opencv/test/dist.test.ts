import { copyFile, readFile, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { InvalidImageError, readImageInfo } from '@avatargen/core';
import { makeGridPng } from '@avatargen/core/testing';
import { build } from 'tsup';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// The package as published (package.json beside dist/), inside this one so that sharp and piscina
// resolve as they do from dist/; not under node_modules, so that vitest still resolves core to its
// sources.
const published = resolve(root, 'test/.build/package');
const outDir = resolve(published, 'dist');

describe('built package', () => {
  afterAll(() => rm(resolve(root, 'test/.build'), { recursive: true, force: true }));

  it('runs its pool on the built worker.js, without tsx', async () => {
    const common = { config: resolve(root, 'tsup.config.ts'), outDir, dts: false, sourcemap: false, silent: true, clean: false } as const;
    // tsup takes the dependencies as external from the package.json of its working directory
    await build({ ...common, entry: [resolve(root, 'src/index.ts')], external: ['@avatargen/core', 'piscina', 'sharp'] });
    // The published worker imports core's built dist/domain.js. Here core may not be built (a
    // fresh clone), so the worker takes core's light entry from its sources, bundled in (its
    // provenance code reads ../package.json, which is this package's copy).
    await build({
      ...common,
      entry: [resolve(root, 'src/worker.ts')],
      external: ['piscina', 'sharp'],
      noExternal: ['@avatargen/core'],
      esbuildOptions(options) {
        options.conditions = ['source'];
      },
    });
    await copyFile(resolve(root, 'package.json'), resolve(published, 'package.json'));
    expect(await readFile(resolve(outDir, 'worker.js'), 'utf8')).not.toMatch(/from ["']@avatargen\/core/);
    const built = (await import(pathToFileURL(resolve(outDir, 'index.js')).href)) as typeof import('../src/index.js');
    const processor = built.createImageProcessor({ threads: 1 });
    try {
      const cells = await processor.processGrid(makeGridPng(), { cropWhiteBorders: true, styleSeed: 'dist' });
      expect(cells.map((c) => [readImageInfo(c.data).format, c.width])).toEqual(Array.from({ length: 4 }, () => ['jpeg', 64]));
      // the typed error survives the built worker too
      await expect(
        processor.processGrid(makeGridPng().subarray(0, 300), { cropWhiteBorders: true, styleSeed: null }),
      ).rejects.toBeInstanceOf(InvalidImageError);
    } finally {
      await processor.close();
    }
  });
});
