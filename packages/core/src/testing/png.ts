import { deflateSync } from 'node:zlib';

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) c = (CRC_TABLE[(c ^ byte) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

export type Rgb = [number, number, number];

/**
 * Encodes an RGB PNG from a pixel function. Small and dependency-free so that core's contract
 * suites can make test images without an image library.
 */
export function encodePng(width: number, height: number, pixel: (x: number, y: number) => Rgb): Buffer {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  let o = 0;
  for (let y = 0; y < height; y++) {
    raw[o++] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const [r, g, b] = pixel(x, y);
      raw[o++] = r;
      raw[o++] = g;
      raw[o++] = b;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type RGB
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/**
 * A synthetic 2x2 grid like the image services return: four coloured, textured cells separated
 * by white gutters, inside a white margin. Cell (r, c) has a distinct hue.
 */
export function makeGridPng(options: { cell?: number; gutter?: number; margin?: number } = {}): Buffer {
  const cell = options.cell ?? 64;
  const gutter = options.gutter ?? 8;
  const margin = options.margin ?? 12;
  const size = margin * 2 + cell * 2 + gutter;
  const hues: Rgb[] = [
    [200, 60, 60],
    [60, 160, 60],
    [60, 80, 200],
    [180, 140, 40],
  ];
  return encodePng(size, size, (x, y) => {
    const cx = x - margin;
    const cy = y - margin;
    const inCol = cx >= 0 && cx < cell ? 0 : cx >= cell + gutter && cx < cell * 2 + gutter ? 1 : -1;
    const inRow = cy >= 0 && cy < cell ? 0 : cy >= cell + gutter && cy < cell * 2 + gutter ? 1 : -1;
    if (inCol < 0 || inRow < 0) return [255, 255, 255];
    const [r, g, b] = hues[inRow * 2 + inCol] as Rgb;
    const t = ((x * 7 + y * 13) % 32) - 16; // texture, so encoders have something to do
    return [clamp(r + t), clamp(g + t), clamp(b + t)];
  });
}

/** A photo-like single image with a white border of the given thickness on every side. */
export function makeBorderedPng(options: { width?: number; height?: number; border?: number } = {}): Buffer {
  const width = options.width ?? 96;
  const height = options.height ?? 80;
  const border = options.border ?? 6;
  return encodePng(width, height, (x, y) => {
    if (x < border || y < border || x >= width - border || y >= height - border) return [255, 255, 255];
    return [clamp(90 + ((x * 3) % 60)), clamp(120 + ((y * 5) % 50)), 150];
  });
}

function clamp(v: number): number {
  return Math.max(0, Math.min(255, v));
}
