import { availableParallelism } from 'node:os';
import { buildContainer, createLogger, loadConfig, runClosers } from '@avatargen/core';
import { makeGridPng } from '@avatargen/core/testing';
import { describe, expect, it } from 'vitest';
import { imageOpencvPlugin, type OpencvImageProcessor } from '../src/index.js';

describe('imageOpencvPlugin', () => {
  it('fills the imageProcessor port with IMAGE_PROCESSOR_THREADS threads and closes it with the app', async () => {
    const config = loadConfig({ IMAGE_PROCESSOR_THREADS: '1', LOG_LEVEL: 'silent' });
    const built = await buildContainer([imageOpencvPlugin()], { config, logger: createLogger(config) }, ['imageProcessor']);
    const processor = built.resolvePort('imageProcessor') as OpencvImageProcessor;
    expect(processor.threads).toBe(1);
    expect(await processor.splitGrid(makeGridPng())).toHaveLength(4);
    expect(built.closers).toHaveLength(1);
    await runClosers(built.closers);
    await expect(processor.splitGrid(makeGridPng())).rejects.toThrow(/closed/);
  });

  it('uses one thread per core for 0, and explicit options win over the config', async () => {
    const config = loadConfig({ IMAGE_PROCESSOR_THREADS: '0', LOG_LEVEL: 'silent' });
    const auto = await buildContainer([imageOpencvPlugin()], { config, logger: createLogger(config) }, ['imageProcessor']);
    expect((auto.resolvePort('imageProcessor') as OpencvImageProcessor).threads).toBe(availableParallelism());
    const fixed = await buildContainer([imageOpencvPlugin({ threads: 3 })], { config, logger: createLogger(config) }, ['imageProcessor']);
    expect((fixed.resolvePort('imageProcessor') as OpencvImageProcessor).threads).toBe(3);
    // no call was made, so no worker was started: closing is immediate
    await runClosers([...auto.closers, ...fixed.closers]);
  });
});
