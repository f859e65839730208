import { describeImageProcessorContract } from '@avatargen/core/testing';
import { createImageProcessor } from '../src/index.js';

describeImageProcessorContract('image-opencv', {
  create: () => createImageProcessor({ threads: 2 }),
  destroy: (processor) => processor.close?.(),
});
