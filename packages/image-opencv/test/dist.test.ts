import { rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { InvalidImageError, readImageInfo } from '@avatargen/core';
import { makeGridPng } from '@avatargen/core/testing';
import { build } from 'tsup';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// inside the package so that sharp and piscina resolve as they do from dist/ (git ignores every
// folder named dist); not under node_modules, so that vitest still resolves core to its sources
const outDir = resolve(root, 'test/.build/dist');

describe('built package', () => {
  afterAll(() => rm(resolve(root, 'test/.build'), { recursive: true, force: true }));

  it('runs its pool on the built worker.js, without tsx', async () => {
    await build({
      config: resolve(root, 'tsup.config.ts'),
      entry: [resolve(root, 'src/index.ts'), resolve(root, 'src/worker.ts')],
      outDir,
      // tsup takes the dependencies as external from the package.json of its working directory
      external: ['@avatargen/core', 'piscina', 'sharp'],
      dts: false,
      sourcemap: false,
      silent: true,
    });
    const built = (await import(pathToFileURL(resolve(outDir, 'index.js')).href)) as typeof import('../src/index.js');
    const processor = built.createImageProcessor({ threads: 1 });
    try {
      const cells = await processor.processGrid(makeGridPng(), { cropWhiteBorders: true, styleSeed: 'dist' });
      expect(cells.map((c) => [readImageInfo(c.data).format, c.width])).toEqual(Array.from({ length: 4 }, () => ['jpeg', 64]));
      // the typed error survives the built worker too
      await expect(processor.processGrid(makeGridPng().subarray(0, 300), { cropWhiteBorders: true, styleSeed: null })).rejects.toBeInstanceOf(
        InvalidImageError,
      );
    } finally {
      await processor.close();
    }
  });
});
