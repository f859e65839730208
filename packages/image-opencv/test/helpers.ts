import sharp from 'sharp';
import type { RawImage } from '../src/pixels.js';

export type Pixel = [number, number, number];

/** A raw RGB image from a pixel function. */
export function rawImage(width: number, height: number, pixel: (x: number, y: number) => Pixel): RawImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) data.set(pixel(x, y), (y * width + x) * 3);
  }
  return { data, width, height };
}

export function png(image: RawImage): Promise<Buffer> {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .png()
    .toBuffer();
}

/** Decodes any encoded image to raw RGB. */
export async function decode(bytes: Uint8Array): Promise<RawImage> {
  const { data, info } = await sharp(bytes).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), width: info.width, height: info.height };
}

/** Copy of a region, for comparing pixels. */
export function crop(image: RawImage, x: number, y: number, width: number, height: number): RawImage {
  const data = new Uint8Array(width * height * 3);
  for (let row = 0; row < height; row++) {
    const start = ((y + row) * image.width + x) * 3;
    data.set(image.data.subarray(start, start + width * 3), row * width * 3);
  }
  return { data, width, height };
}

/** Deterministic noise for test images (no Math.random: failures must be reproducible). */
export function noise(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296;
  };
}

/**
 * A photo-like picture with white borders of the given thickness, whose border pixels are
 * near-white noise (every channel in [nearWhiteMin, 255]).
 */
export function bordered(
  width: number,
  height: number,
  borders: { top: number; right: number; bottom: number; left: number },
  nearWhiteMin = 255,
  seed = 1,
): RawImage {
  const random = noise(seed);
  return rawImage(width, height, (x, y) => {
    const inBorder = y < borders.top || y >= height - borders.bottom || x < borders.left || x >= width - borders.right;
    if (inBorder) {
      const v = () => Math.round(nearWhiteMin + random() * (255 - nearWhiteMin));
      return [v(), v(), v()];
    }
    return [40 + ((x * 5) % 120), 60 + ((y * 3) % 100), 90 + (((x + y) * 2) % 80)];
  });
}

/** Mean saturation (max - min channel) over all pixels, 0-255. */
export function meanSaturation(image: RawImage): number {
  let sum = 0;
  for (let i = 0; i < image.data.length; i += 3) {
    const r = image.data[i] as number;
    const g = image.data[i + 1] as number;
    const b = image.data[i + 2] as number;
    sum += Math.max(r, g, b) - Math.min(r, g, b);
  }
  return sum / (image.data.length / 3);
}

/** A photo-like picture: smooth colour gradients, a few soft shapes and fine noise (no white). */
export function photo(width: number, height: number, seed = 1): RawImage {
  const random = noise(seed);
  const blobs = Array.from({ length: 5 }, () => ({
    x: random() * width,
    y: random() * height,
    r: (0.1 + random() * 0.3) * width,
    tone: random(),
  }));
  return rawImage(width, height, (x, y) => {
    let light = 0;
    for (const b of blobs) light += Math.max(0, 1 - Math.hypot(x - b.x, y - b.y) / b.r) * (b.tone - 0.5);
    const grain = (random() - 0.5) * 24;
    const channel = (base: number) => Math.max(0, Math.min(235, Math.round(base + light * 90 + grain)));
    return [channel(60 + (x / width) * 110), channel(70 + (y / height) * 80), channel(140 - ((x + y) / (width + height)) * 70)];
  });
}

/**
 * A 2x2 grid of photo-like shots on white, as an image service returns it: 1024 px square, a 20 px
 * white frame and 16 px white gutters, so that each cell trims to a 484 px shot.
 */
export async function photoGrid(): Promise<{ png: Buffer; raw: RawImage; shots: Array<{ x: number; y: number }> }> {
  const size = 1024;
  const shot = 484;
  const shots = [20, 520].flatMap((y) => [20, 520].map((x) => ({ x, y })));
  const data = new Uint8Array(size * size * 3).fill(255);
  for (const [i, at] of shots.entries()) {
    const picture = photo(shot, shot, i + 1);
    for (let row = 0; row < shot; row++) {
      data.set(picture.data.subarray(row * shot * 3, (row + 1) * shot * 3), ((at.y + row) * size + at.x) * 3);
    }
  }
  const raw = { data, width: size, height: size };
  return { png: await png(raw), raw, shots };
}
