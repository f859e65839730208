import { definePlugin, type AvatarGenPlugin } from '@avatargen/core';
import { createImageProcessor, type ImageProcessorOptions } from './processor.js';

/** libuv's thread pool when UV_THREADPOOL_SIZE is unset. */
const DEFAULT_UV_THREADS = 4;

/**
 * Fills the `imageProcessor` port with the sharp + piscina processor. Threads come from
 * IMAGE_PROCESSOR_THREADS (0: one per core) unless given here; the pool closes with the app.
 */
export function imageOpencvPlugin(options: ImageProcessorOptions = {}): AvatarGenPlugin {
  return definePlugin({
    name: '@avatargen/image-opencv',
    provides: ['imageProcessor'],
    register(context) {
      const processor = createImageProcessor({
        ...options,
        threads: options.threads ?? context.config.IMAGE_PROCESSOR_THREADS,
        onPoolError: options.onPoolError ?? ((error) => context.logger.warn({ err: error }, 'image processing pool error')),
      });
      // sharp runs on libuv's thread pool, which all worker threads share: past its size, more
      // threads add no throughput. It is read once, at its first use, so only the process's
      // environment can set it.
      const uvThreads = Number(process.env.UV_THREADPOOL_SIZE) || DEFAULT_UV_THREADS;
      if (processor.threads > uvThreads) {
        context.logger.warn(
          { threads: processor.threads, uvThreadpoolSize: uvThreads },
          `image processing: ${processor.threads} worker threads share libuv's ${uvThreads} threads, so the pool stops scaling at ${uvThreads}: start the process with UV_THREADPOOL_SIZE=${processor.threads}`,
        );
      }
      context.provide('imageProcessor', processor);
      context.onClose(() => processor.close());
    },
  });
}
