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
  if (formats.length === 0) throw new TypeError('formats is empty: every image would be refused');
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
  if (info.format === 'jpeg') {
    const scans = jpegScans(image, MAX_JPEG_SCANS + 1);
    if (scans > MAX_JPEG_SCANS) {
      throw new InvalidImageError(
        `JPEG with more than ${MAX_JPEG_SCANS} scans refused: decoding it would take very long (a progressive JPEG usually has about 10)`,
      );
    }
  }
  return image;
}

/** Scans a JPEG may have; libjpeg decodes every one, so thousands of tiny scans are a CPU bomb. */
export const MAX_JPEG_SCANS = 100;
const START_OF_SCAN = Buffer.from([0xff, 0xda]);

/**
 * Start-of-scan markers in a JPEG, counted up to `stopAt`. In entropy-coded data a 0xFF byte is
 * always followed by 0x00 or a restart marker, so the pair FF DA only starts a scan (or one of an
 * embedded thumbnail's, which counts a few too many, harmlessly).
 */
export function jpegScans(image: Uint8Array, stopAt: number): number {
  const bytes = Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  let count = 0;
  for (let at = bytes.indexOf(START_OF_SCAN); at !== -1 && count < stopAt; at = bytes.indexOf(START_OF_SCAN, at + 2)) count++;
  return count;
}
