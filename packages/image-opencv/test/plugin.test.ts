import { availableParallelism } from 'node:os';
import { Writable } from 'node:stream';
import { buildContainer, createLogger, loadConfig, runClosers } from '@avatargen/core';
import { makeGridPng } from '@avatargen/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
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

  describe('libuv thread pool warning', () => {
    const saved = process.env.UV_THREADPOOL_SIZE;
    afterEach(() => {
      if (saved === undefined) delete process.env.UV_THREADPOOL_SIZE;
      else process.env.UV_THREADPOOL_SIZE = saved;
    });

    /** The warnings the plugin logs at register for this many threads. */
    async function warnings(threads: number): Promise<Array<{ msg: string; threads: number; uvThreadpoolSize: number }>> {
      const lines: string[] = [];
      const sink = new Writable({
        write(chunk, _encoding, done) {
          lines.push(...String(chunk).split('\n').filter(Boolean));
          done();
        },
      });
      const config = loadConfig({ LOG_LEVEL: 'warn' });
      const built = await buildContainer([imageOpencvPlugin({ threads })], { config, logger: createLogger(config, sink) }, [
        'imageProcessor',
      ]);
      await runClosers(built.closers);
      return lines.map((line) => JSON.parse(line)).filter((entry) => /UV_THREADPOOL_SIZE/.test(entry.msg));
    }

    it('warns once, naming the variable and the value, when the threads outnumber libuv pool', async () => {
      delete process.env.UV_THREADPOOL_SIZE;
      const logged = await warnings(6);
      expect(logged).toHaveLength(1);
      expect(logged[0]).toMatchObject({ threads: 6, uvThreadpoolSize: 4 });
      expect(logged[0]?.msg).toMatch(/UV_THREADPOOL_SIZE=6/);
      process.env.UV_THREADPOOL_SIZE = '5';
      expect((await warnings(6))[0]?.msg).toMatch(/libuv's 5 threads.*UV_THREADPOOL_SIZE=6/);
    });

    it('stays quiet when libuv has a thread for every worker', async () => {
      delete process.env.UV_THREADPOOL_SIZE;
      expect(await warnings(4)).toEqual([]);
      process.env.UV_THREADPOOL_SIZE = '16';
      expect(await warnings(16)).toEqual([]);
    });
  });
});
