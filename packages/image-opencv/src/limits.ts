import { type ImageFormat, InvalidImageError, readImageInfo } from '@avatargen/core';

/** What the processor accepts, checked on the main thread before any byte reaches a worker. */
export interface InputLimits {
  maxInputBytes: number;
  maxPixels: number;
  formats: readonly ImageFormat[];
}

export const DEFAULT_FORMATS: readonly ImageFormat[] = ['png', 'jpeg', 'webp'];
const KNOWN_FORMATS: readonly ImageFormat[] = ['png', 'jpeg', 'webp', 'gif'];

/** Normalises the `formats` option ("jpg" is "jpeg"); an unknown name is a programming error. */
export function parseFormats(formats: readonly string[] | undefined): ImageFormat[] {
  if (formats === undefined) return [...DEFAULT_FORMATS];
  return formats.map((name) => {
    const format = name.toLowerCase() === 'jpg' ? 'jpeg' : (name.toLowerCase() as ImageFormat);
    if (!KNOWN_FORMATS.includes(format)) {
      throw new TypeError(`Unknown image format "${name}" (known: ${KNOWN_FORMATS.join(', ')})`);
    }
    return format;
  });
}

/**
 * Refuses empty, oversized, unknown, disallowed and decompression-bomb inputs from their header,
 * before decoding. The caller's bytes are left alone (the pool copies them into a buffer of its
 * own before moving it to a worker).
 */
export function admit(image: unknown, limits: InputLimits): Uint8Array {
  if (!(image instanceof Uint8Array)) throw new InvalidImageError('Not an image: expected bytes (a Uint8Array or Buffer)');
  if (image.byteLength === 0) throw new InvalidImageError('Not an image: the input is empty (0 bytes)');
  if (image.byteLength > limits.maxInputBytes) {
    throw new InvalidImageError(`Image too large: ${image.byteLength} bytes, the limit is ${limits.maxInputBytes}`);
  }
  const info = readImageInfo(image);
  if (!limits.formats.includes(info.format)) {
    throw new InvalidImageError(`Image format ${info.format} is not accepted (accepted: ${limits.formats.join(', ')})`);
  }
  const pixels = info.width * info.height;
  if (pixels > limits.maxPixels) {
    throw new InvalidImageError(
      `Image too large: ${info.width}x${info.height} is ${pixels} pixels, the limit is ${limits.maxPixels} (decompression bomb?)`,
    );
  }
  return image;
}
