/**
 * `@avatargen/image-opencv`: the ImageProcessor port (grid split, trim, white-border crop, style
 * randomizing, thumbnails) with sharp in a piscina worker pool. The name is the old system's; the
 * work is done by libvips and plain JS on raw pixels, not OpenCV.
 */
export { ImageTimeoutError } from './errors.js';
export { DEFAULT_FORMATS } from './limits.js';
export { DEFAULT_WHITE_BORDERS, type Rect, type WhiteBorderSettings } from './pixels.js';
export { imageOpencvPlugin } from './plugin.js';
export { imageOpencvPlugin as default } from './plugin.js';
export {
  type CallOptions,
  createImageProcessor,
  DEFAULT_MAX_INPUT_BYTES,
  DEFAULT_MAX_PIXELS,
  DEFAULT_TIMEOUT_MS,
  type ImageProcessorOptions,
  type OpencvImageProcessor,
} from './processor.js';
export { chooseStyle, PRESET_TRANSFORMS, SHARPEN_SIGMA } from './style.js';
