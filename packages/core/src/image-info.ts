import { InvalidImageError } from './errors.js';
import type { Bytes } from './ports.js';

export type ImageFormat = 'png' | 'jpeg' | 'webp' | 'gif';

export interface ImageInfo {
  format: ImageFormat;
  contentType: string;
  width: number;
  height: number;
}

const CONTENT_TYPES: Record<ImageFormat, string> = {
  png: 'image/png',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  gif: 'image/gif',
};

export const EXTENSIONS: Record<string, string> = {
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/webp': 'webp',
  'image/gif': 'gif',
};

/**
 * Reads an image's format and size from its header, without decoding it. Used at the edges
 * (provider answers, uploads) to refuse bytes that are not an image before they go further.
 */
export function readImageInfo(bytes: Bytes): ImageInfo {
  if (bytes.length < 12) throw new InvalidImageError(`Not an image: only ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const info = (format: ImageFormat, width: number, height: number): ImageInfo => {
    if (width <= 0 || height <= 0) throw new InvalidImageError(`Invalid ${format} image: size ${width}x${height}`);
    return { format, contentType: CONTENT_TYPES[format], width, height };
  };
  // PNG: signature then IHDR
  if (view.getUint32(0) === 0x89504e47 && view.getUint32(4) === 0x0d0a1a0a) {
    if (bytes.length < 24) throw new InvalidImageError('Truncated PNG image');
    return info('png', view.getUint32(16), view.getUint32(20));
  }
  // JPEG: walk the segments to the first SOFn
  if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    let offset = 2;
    while (offset + 9 < bytes.length) {
      if (bytes[offset] !== 0xff) throw new InvalidImageError('Corrupt JPEG image: bad segment marker');
      const marker = bytes[offset + 1] as number;
      if (marker === 0xff) {
        offset += 1;
        continue;
      }
      const length = view.getUint16(offset + 2);
      const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
      if (isSof) return info('jpeg', view.getUint16(offset + 7), view.getUint16(offset + 5));
      offset += 2 + length;
    }
    throw new InvalidImageError('Truncated JPEG image: no frame header');
  }
  // WebP: RIFF....WEBP then VP8 / VP8L / VP8X
  if (view.getUint32(0) === 0x52494646 && view.getUint32(8) === 0x57454250 && bytes.length >= 30) {
    const chunk = String.fromCharCode(...bytes.subarray(12, 16));
    if (chunk === 'VP8 ') return info('webp', view.getUint16(26, true) & 0x3fff, view.getUint16(28, true) & 0x3fff);
    if (chunk === 'VP8L') {
      const b = view.getUint32(21, true);
      return info('webp', (b & 0x3fff) + 1, ((b >> 14) & 0x3fff) + 1);
    }
    if (chunk === 'VP8X') {
      const w = 1 + ((bytes[24] as number) | ((bytes[25] as number) << 8) | ((bytes[26] as number) << 16));
      const h = 1 + ((bytes[27] as number) | ((bytes[28] as number) << 8) | ((bytes[29] as number) << 16));
      return info('webp', w, h);
    }
    throw new InvalidImageError('Corrupt WebP image: unknown chunk');
  }
  // GIF87a / GIF89a
  if (view.getUint32(0) === 0x47494638) return info('gif', view.getUint16(6, true), view.getUint16(8, true));
  throw new InvalidImageError('Not an image: unknown format');
}

export function extensionFor(contentType: string): string {
  return EXTENSIONS[contentType] ?? 'bin';
}
