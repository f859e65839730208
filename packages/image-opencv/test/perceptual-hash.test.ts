import { CancelledError, hammingDistance, InvalidImageError, type StyleParams, ValidationError } from '@avatargen/core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImageProcessor, type OpencvImageProcessor } from '../src/index.js';
import { noise, png, rawImage } from './helpers.js';

/** Farthest a copy may hash from its original, and nearest two different pictures may be. */
const NEAR = 10;

let processor: OpencvImageProcessor;
beforeAll(() => {
  processor = createImageProcessor({ threads: 2 });
});
afterAll(() => processor.close());

interface Face {
  background: string;
  skin: string;
  hair: string;
  /** Centre and radii of the face, in a 512 px square. */
  cx: number;
  cy: number;
  rx: number;
  ry: number;
  /** Where the studio light falls on the backdrop, 0 (left) to 1 (right). */
  light: number;
}

/**
 * A face-like drawing rendered to PNG: a lit backdrop, hair, face, eyes, nose and mouth. The
 * backdrop is lit as a portrait's is: on a perfectly flat one, neighbours tie, and a vignette
 * decides those bits (up to 9 of 64 with this drawing).
 */
function face(f: Face, size = 512): Promise<Buffer> {
  const eyeY = f.cy - f.ry * 0.2;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 512 512">
    <defs><radialGradient id="light" cx="${f.light}" cy="0.3" r="0.9">
      <stop offset="0" stop-color="#ffffff" stop-opacity="0.45"/><stop offset="1" stop-color="#000000" stop-opacity="0.35"/>
    </radialGradient></defs>
    <rect width="512" height="512" fill="${f.background}"/>
    <rect width="512" height="512" fill="url(#light)"/>
    <ellipse cx="${f.cx}" cy="${f.cy - f.ry * 0.35}" rx="${f.rx * 1.15}" ry="${f.ry * 0.9}" fill="${f.hair}"/>
    <rect x="${f.cx - f.rx * 0.35}" y="${f.cy + f.ry * 0.8}" width="${f.rx * 0.7}" height="200" fill="${f.skin}"/>
    <ellipse cx="${f.cx}" cy="${f.cy}" rx="${f.rx}" ry="${f.ry}" fill="${f.skin}"/>
    <ellipse cx="${f.cx - f.rx * 0.4}" cy="${eyeY}" rx="${f.rx * 0.16}" ry="${f.ry * 0.08}" fill="#ffffff"/>
    <ellipse cx="${f.cx + f.rx * 0.4}" cy="${eyeY}" rx="${f.rx * 0.16}" ry="${f.ry * 0.08}" fill="#ffffff"/>
    <circle cx="${f.cx - f.rx * 0.4}" cy="${eyeY}" r="${f.rx * 0.07}" fill="#2a1a10"/>
    <circle cx="${f.cx + f.rx * 0.4}" cy="${eyeY}" r="${f.rx * 0.07}" fill="#2a1a10"/>
    <path d="M ${f.cx} ${eyeY + 10} L ${f.cx - f.rx * 0.12} ${f.cy + f.ry * 0.25} L ${f.cx + f.rx * 0.05} ${f.cy + f.ry * 0.27}" stroke="#8a5a40" stroke-width="4" fill="none"/>
    <path d="M ${f.cx - f.rx * 0.35} ${f.cy + f.ry * 0.5} Q ${f.cx} ${f.cy + f.ry * 0.65} ${f.cx + f.rx * 0.35} ${f.cy + f.ry * 0.5}" stroke="#9a3030" stroke-width="8" fill="none"/>
  </svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** A photo-like picture: a smooth random field of light and colour (a few low waves) with fine grain. */
function field(seed: number, width = 512, height = 512): Promise<Buffer> {
  const random = noise(seed);
  const waves = Array.from({ length: 4 }, () => ({
    fx: (random() - 0.5) * 6,
    fy: (random() - 0.5) * 6,
    phase: random() * 2 * Math.PI,
    amplitude: 20 + random() * 30,
    tint: [random(), random(), random()],
  }));
  const grain = noise(seed + 1000);
  return png(
    rawImage(width, height, (x, y) => {
      const rgb = [110, 110, 110];
      for (const w of waves) {
        const v = w.amplitude * Math.cos(2 * Math.PI * ((w.fx * x) / width + (w.fy * y) / height) + w.phase);
        for (let c = 0; c < 3; c++) rgb[c] = (rgb[c] as number) + v * (0.5 + (w.tint[c] as number));
      }
      const g = (grain() - 0.5) * 30;
      const [r, gg, b] = rgb.map((v) => Math.max(0, Math.min(255, Math.round(v + g)))) as [number, number, number];
      return [r, gg, b];
    }),
  );
}

const FACE_A: Face = { background: '#6f8fb0', skin: '#e0b090', hair: '#3a2414', cx: 256, cy: 250, rx: 120, ry: 160, light: 0.3 };
const FACE_B: Face = { background: '#d8d0b8', skin: '#8a5a3c', hair: '#101010', cx: 210, cy: 290, rx: 150, ry: 140, light: 0.7 };
const FACE_C: Face = { background: '#203020', skin: '#f0c8b0', hair: '#c09040', cx: 310, cy: 230, rx: 100, ry: 170, light: 0.5 };

/** Strong but valid parameters: the most a stored look can change a picture. */
const STRONG: StyleParams = {
  seed: 'strong',
  preset: 'matte',
  contrast: 1.15,
  blurSigma: null,
  sharpenAmount: 0.7,
  grainSigma: 8,
  vignetteStrength: 0.18,
  jpegQuality: 78,
};

describe('perceptualHash', () => {
  it('is 16 hex characters, the same for the same bytes', async () => {
    const picture = await face(FACE_A);
    const hash = await processor.perceptualHash(picture);
    expect(hash).toMatch(/^[0-9a-f]{16}$/);
    expect(await processor.perceptualHash(picture)).toBe(hash);
  });

  it('takes grey, transparent, 16-bit and WebP inputs alike', async () => {
    const picture = await face(FACE_A);
    const hash = await processor.perceptualHash(picture);
    const variants = {
      grey: await sharp(picture).greyscale().png().toBuffer(),
      alpha: await sharp(picture).ensureAlpha(1).png().toBuffer(),
      sixteenBit: await sharp(picture).png().toColourspace('rgb16').toBuffer(),
    };
    // the same pixels: at most a rounding apart
    for (const [name, bytes] of Object.entries(variants)) {
      expect(hammingDistance(hash, await processor.perceptualHash(bytes)), name).toBeLessThanOrEqual(2);
    }
    const webp = await sharp(picture).webp({ quality: 80 }).toBuffer();
    expect(hammingDistance(hash, await processor.perceptualHash(webp))).toBeLessThanOrEqual(NEAR);
  });

  it('hashes re-encoded, halved and restyled copies within 10 bits of the original', async () => {
    const report: Record<string, number> = {};
    for (const [name, original] of [
      ['face', await face(FACE_A)],
      ['field', await field(1)],
    ] as const) {
      const hash = await processor.perceptualHash(original);
      const { width } = await sharp(original).metadata();
      const copies: Record<string, Uint8Array> = {
        jpeg70: await sharp(original).jpeg({ quality: 70 }).toBuffer(),
        // four times the size and JPEG: shrunk while it loads, not decoded whole
        double: await sharp(original)
          .resize({ width: (width as number) * 4 })
          .jpeg({ quality: 90 })
          .toBuffer(),
        half: await sharp(original)
          .resize({ width: Math.round((width as number) / 2) })
          .png()
          .toBuffer(),
        strongStyle: (await processor.applyStyle(original, STRONG)).data,
        ...Object.fromEntries(
          await Promise.all(
            ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map(async (seed) => [
              `style-${seed}`,
              (await processor.randomizeStyle(original, { seed })).data,
            ]),
          ),
        ),
      };
      for (const [copy, bytes] of Object.entries(copies)) {
        report[`${name}/${copy}`] = hammingDistance(hash, await processor.perceptualHash(bytes));
      }
    }
    for (const [copy, distance] of Object.entries(report)) expect(distance, copy).toBeLessThanOrEqual(NEAR);
  });

  it('hashes clearly different pictures more than 10 bits apart', async () => {
    const pictures: Record<string, Uint8Array> = {
      faceA: await face(FACE_A),
      faceB: await face(FACE_B),
      faceC: await face(FACE_C),
      field1: await field(1),
      field2: await field(2),
      field3: await field(3),
      field4: await field(4),
    };
    const hashes = Object.fromEntries(
      await Promise.all(Object.entries(pictures).map(async ([name, bytes]) => [name, await processor.perceptualHash(bytes)] as const)),
    );
    const names = Object.keys(hashes);
    const distances: Record<string, number> = {};
    for (const [i, a] of names.entries()) {
      for (const b of names.slice(i + 1)) distances[`${a}~${b}`] = hammingDistance(hashes[a] as string, hashes[b] as string);
    }
    for (const [pair, distance] of Object.entries(distances)) expect(distance, pair).toBeGreaterThan(NEAR);
  });

  it('refuses bytes that are not an image with InvalidImageError, and the pool keeps working', async () => {
    const picture = await face(FACE_A);
    await expect(processor.perceptualHash(new Uint8Array([1, 2, 3, 4]))).rejects.toBeInstanceOf(InvalidImageError);
    await expect(processor.perceptualHash(new Uint8Array(0))).rejects.toBeInstanceOf(InvalidImageError);
    // a valid header with its pixels cut off: refused by the decoder in the worker
    await expect(processor.perceptualHash(picture.subarray(0, 200))).rejects.toBeInstanceOf(InvalidImageError);
    await expect(processor.perceptualHash('not bytes' as unknown as Uint8Array)).rejects.toBeInstanceOf(InvalidImageError);
    await expect(processor.perceptualHash(picture, 'x' as never)).rejects.toBeInstanceOf(ValidationError);
    expect(await processor.perceptualHash(picture)).toMatch(/^[0-9a-f]{16}$/);
  });

  it('takes an AbortSignal', async () => {
    await expect(processor.perceptualHash(await face(FACE_A), { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(CancelledError);
  });
});
