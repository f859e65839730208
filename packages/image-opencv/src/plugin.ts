import { definePlugin, type AvatarGenPlugin } from '@avatargen/core';
import { createImageProcessor, type ImageProcessorOptions } from './processor.js';

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
        onPoolError:
          options.onPoolError ?? ((error) => context.logger.warn({ err: error }, 'image processing pool error')),
      });
      context.provide('imageProcessor', processor);
      context.onClose(() => processor.close());
    },
  });
}
