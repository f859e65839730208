import { AvatarGenError, CancelledError, InvalidImageError, readImageInfo, ValidationError } from '@avatargen/core';
import { makeGridPng } from '@avatargen/core/testing';
import sharp, { type Sharp } from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImageProcessor, ImageTimeoutError, type OpencvImageProcessor } from '../src/index.js';
import { jpegScans, MAX_JPEG_SCANS } from '../src/limits.js';
import { bordered, crop, decode, meanSaturation, photo, photoGrid, png, rawImage } from './helpers.js';

let processor: OpencvImageProcessor;
beforeAll(() => {
  processor = createImageProcessor({ threads: 2 });
});
afterAll(() => processor.close());

describe('geometry through the pool', () => {
  it('crops white borders with near-white noise to the exact box and keeps the pixels', async () => {
    const image = bordered(120, 100, { top: 7, right: 0, bottom: 3, left: 11 }, 225, 3);
    const out = await decode(await processor.cropWhiteBorders(await png(image)));
    expect([out.width, out.height]).toEqual([109, 90]);
    expect(Buffer.from(out.data).equals(Buffer.from(crop(image, 11, 7, 109, 90).data))).toBe(true);
  });

  it('passes the crop options through', async () => {
    const image = bordered(80, 120, { top: 70, right: 2, bottom: 0, left: 0 });
    const bytes = await png(image);
    expect(readImageInfo(await processor.cropWhiteBorders(bytes)).height).toBe(70);
    expect(readImageInfo(await processor.cropWhiteBorders(bytes, { scanDepth: 100 })).height).toBe(50);
    expect(readImageInfo(await processor.cropWhiteBorders(bytes, { minBorder: 3 })).width).toBe(80);
  });

  it('trims exact white by default and near-white with a tolerance', async () => {
    const image = bordered(90, 70, { top: 5, right: 6, bottom: 7, left: 8 }, 249, 5);
    const bytes = await png(image);
    const exact = readImageInfo(await processor.trimWhitespace(bytes));
    expect(exact.width).toBeGreaterThan(76);
    const tolerant = await decode(await processor.trimWhitespace(bytes, { tolerance: 6 }));
    expect([tolerant.width, tolerant.height]).toEqual([76, 58]);
    expect(Buffer.from(tolerant.data).equals(Buffer.from(crop(image, 8, 5, 76, 58).data))).toBe(true);
  });

  it('splits odd sizes into PNG cells that put the image back together pixel for pixel', async () => {
    const image = rawImage(101, 99, (x, y) => [x, y, (x * y) % 256]);
    const cells = await Promise.all((await processor.splitGrid(await png(image), 3, 2)).map(decode));
    expect(cells.map((c) => [c.width, c.height])).toEqual([
      [50, 33],
      [51, 33],
      [50, 33],
      [51, 33],
      [50, 33],
      [51, 33],
    ]);
    for (const [i, cell] of cells.entries()) {
      const x = (i % 2) * 50;
      const y = Math.floor(i / 2) * 33;
      expect(Buffer.from(cell.data).equals(Buffer.from(crop(image, x, y, cell.width, cell.height).data))).toBe(true);
    }
  });

  it('makes WebP thumbnails that keep the aspect ratio, and never enlarges', async () => {
    const thumb = readImageInfo(await processor.thumbnail(await png(bordered(200, 100, { top: 0, right: 0, bottom: 0, left: 0 })), 50));
    expect([thumb.format, thumb.width, thumb.height]).toEqual(['webp', 50, 25]);
    const tiny = readImageInfo(await processor.thumbnail(await png(rawImage(2, 3, () => [9, 9, 9])), 4000));
    expect([tiny.width, tiny.height]).toEqual([2, 3]);
  });

  it('flattens transparency onto white and accepts greyscale', async () => {
    // a transparent frame around an opaque square: trimmed like a white frame
    const rgba = Buffer.alloc(40 * 30 * 4);
    for (let y = 0; y < 30; y++)
      for (let x = 0; x < 40; x++) if (x >= 10 && x < 30 && y >= 5 && y < 25) rgba.set([20, 40, 60, 255], (y * 40 + x) * 4);
    const transparent = await sharp(rgba, { raw: { width: 40, height: 30, channels: 4 } })
      .png()
      .toBuffer();
    expect(readImageInfo(await processor.trimWhitespace(transparent))).toMatchObject({ width: 20, height: 20 });
    const grey = await sharp(Buffer.alloc(32 * 32, 90), { raw: { width: 32, height: 32, channels: 1 } })
      .png()
      .toBuffer();
    const styled = await processor.randomizeStyle(grey, { seed: 'grey' });
    expect(readImageInfo(styled.data)).toMatchObject({ format: 'jpeg', width: 32, height: 32 });
  });
});

describe('processGrid', () => {
  const grid = makeGridPng({ cell: 40, gutter: 6, margin: 9 });

  it('styles each cell with the seed and its index, deterministically', async () => {
    const a = await processor.processGrid(grid, { cropWhiteBorders: true, styleSeed: 'persona-7' });
    const b = await processor.processGrid(grid, { cropWhiteBorders: true, styleSeed: 'persona-7' });
    expect(a.map((c) => c.style?.seed)).toEqual(['persona-7:0', 'persona-7:1', 'persona-7:2', 'persona-7:3']);
    for (const [i, cell] of a.entries()) {
      expect(Buffer.from(cell.data).equals(Buffer.from(b[i]?.data ?? []))).toBe(true);
      expect([cell.contentType, cell.width, cell.height]).toEqual(['image/jpeg', 40, 40]);
    }
    const other = await processor.processGrid(grid, { cropWhiteBorders: true, styleSeed: 'persona-8' });
    expect(Buffer.from(other[0]?.data ?? []).equals(Buffer.from(a[0]?.data ?? []))).toBe(false);
  });

  it('gives lossless PNG cells when not styled, and the stored style replays to the same bytes', async () => {
    const plain = await processor.processGrid(grid, { cropWhiteBorders: false, styleSeed: null });
    expect(plain.map((c) => [c.contentType, c.width, c.height, c.style])).toEqual(
      Array.from({ length: 4 }, () => ['image/png', 40, 40, null]),
    );
    const styled = await processor.processGrid(grid, { cropWhiteBorders: true, styleSeed: 'replay' });
    for (const [i, cell] of styled.entries()) {
      const replay = await processor.applyStyle(plain[i]?.data ?? new Uint8Array(), cell.style!);
      expect(Buffer.from(replay.data).equals(Buffer.from(cell.data))).toBe(true);
    }
  });

  it('splits other grid shapes', async () => {
    const out = await processor.processGrid(grid, { rows: 1, cols: 3, cropWhiteBorders: false, styleSeed: null });
    expect(out).toHaveLength(3);
  });

  it('cuts a 3x2 grid into 6 cells in reading order, each trimmed of its white gutters', async () => {
    // 3 rows x 2 columns of 30 x 20 px shots, each a colour of its own, 4 px white gutters and margin
    const colours: Array<[number, number, number]> = [
      [200, 30, 30],
      [30, 200, 30],
      [30, 30, 200],
      [200, 200, 30],
      [30, 200, 200],
      [200, 30, 200],
    ];
    const image = rawImage(4 + 2 * (30 + 4), 4 + 3 * (20 + 4), (x, y) => {
      const col = Math.floor((x - 4) / 34);
      const row = Math.floor((y - 4) / 24);
      const inside = x >= 4 && y >= 4 && (x - 4) % 34 < 30 && (y - 4) % 24 < 20 && col < 2 && row < 3;
      return inside ? (colours[row * 2 + col] as [number, number, number]) : [255, 255, 255];
    });
    const cells = await processor.processGrid(await png(image), { rows: 3, cols: 2, cropWhiteBorders: true, styleSeed: null });
    expect(cells).toHaveLength(6);
    for (const [i, cell] of cells.entries()) {
      expect([cell.contentType, cell.width, cell.height, cell.style]).toEqual(['image/png', 30, 20, null]);
      const pixels = await decode(cell.data);
      expect([...pixels.data.subarray(0, 3)], `cell ${i}`).toEqual(colours[i]);
    }
  });

  it('refuses rows and cols that are not whole numbers from 1 to 8', async () => {
    for (const [rows, cols] of [
      [0, 2],
      [2, 9],
      [1.5, 2],
      [2, Number.NaN],
      [-1, 4],
    ]) {
      const error = await processor.processGrid(grid, { rows, cols, cropWhiteBorders: true, styleSeed: null }).catch((e: unknown) => e);
      expect(error, `${rows}x${cols}`).toBeInstanceOf(ValidationError);
      expect(Object.values((error as ValidationError).fields).join(' ')).toMatch(/must be a whole number from 1 to 8/);
    }
    expect(await processor.processGrid(grid, { rows: 1, cols: 1, cropWhiteBorders: false, styleSeed: null })).toHaveLength(1);
  });
});

describe('processPicture', () => {
  it('trims and crops a bordered picture to the exact box, and keeps its pixels', async () => {
    const image = bordered(120, 100, { top: 7, right: 4, bottom: 3, left: 11 }, 225, 5);
    const out = await processor.processPicture(await png(image), { cropWhiteBorders: true, styleSeed: null });
    expect([out.contentType, out.width, out.height, out.style]).toEqual(['image/png', 105, 90, null]);
    const pixels = await decode(out.data);
    expect(Buffer.from(pixels.data).equals(Buffer.from(crop(image, 11, 7, 105, 90).data))).toBe(true);
  });

  it('only trims exact white when not asked to crop borders', async () => {
    const image = bordered(60, 50, { top: 5, right: 5, bottom: 5, left: 5 }, 255);
    const out = await processor.processPicture(await png(image), { cropWhiteBorders: false, styleSeed: null });
    expect([out.width, out.height]).toEqual([50, 40]);
    const noisy = bordered(60, 50, { top: 5, right: 5, bottom: 5, left: 5 }, 230, 9);
    const kept = await processor.processPicture(await png(noisy), { cropWhiteBorders: false, styleSeed: null });
    expect([kept.width, kept.height]).toEqual([60, 50]);
  });

  it('styles with the seed as given, as a grid cell with the same seed is styled', async () => {
    const cell = bordered(40, 40, { top: 0, right: 0, bottom: 0, left: 0 });
    const a = await processor.processPicture(await png(cell), { cropWhiteBorders: true, styleSeed: 'shot-3:1' });
    const b = await processor.processPicture(await png(cell), { cropWhiteBorders: true, styleSeed: 'shot-3:1' });
    expect(a.style?.seed).toBe('shot-3:1');
    expect(a.contentType).toBe('image/jpeg');
    expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(true);
    const replay = await processor.applyStyle(await png(cell), a.style!);
    expect(Buffer.from(replay.data).equals(Buffer.from(a.data))).toBe(true);
  });

  it('refuses what is not an image with InvalidImageError and bad options with ValidationError', async () => {
    await expect(
      processor.processPicture(Buffer.from('not a picture'), { cropWhiteBorders: true, styleSeed: null }),
    ).rejects.toBeInstanceOf(InvalidImageError);
    const good = await png(bordered(20, 20, { top: 1, right: 1, bottom: 1, left: 1 }));
    await expect(processor.processPicture(good, null as never)).rejects.toBeInstanceOf(ValidationError);
    await expect(processor.processPicture(good, { cropWhiteBorders: 'yes' as never, styleSeed: null })).rejects.toBeInstanceOf(
      ValidationError,
    );
    await expect(processor.processPicture(good, { cropWhiteBorders: true, styleSeed: 7 as never })).rejects.toBeInstanceOf(ValidationError);
  });
});

describe('randomizeStyle and presets', () => {
  let photo: Buffer;
  beforeAll(async () => {
    photo = await png(rawImage(96, 96, (x, y) => [60 + x, 70 + ((y * 3) % 120), 150 - x / 2]));
  });
  const neutral = { contrast: 1, blurSigma: null, sharpenAmount: null, grainSigma: null, vignetteStrength: null, jpegQuality: 95 };
  const look = async (preset: 'natural' | 'warm' | 'cool' | 'matte' | 'punchy' | 'desaturated', extra = {}) =>
    (await processor.applyStyle(photo, { seed: 'preset', preset, ...neutral, ...extra })).data;
  const means = async (bytes: Uint8Array) => (await sharp(bytes).stats()).channels.map((c) => c.mean);

  it('returns byte-identical JPEG for the same seed with the parameters it chose', async () => {
    const a = await processor.randomizeStyle(photo, { seed: 'same' });
    const b = await processor.randomizeStyle(photo, { seed: 'same' });
    expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(true);
    expect(a.params).toEqual(b.params);
    expect(a.params.seed).toBe('same');
    expect(readImageInfo(a.data)).toMatchObject({ format: 'jpeg', width: 96, height: 96 });
    const replay = await processor.applyStyle(photo, a.params);
    expect(Buffer.from(replay.data).equals(Buffer.from(a.data))).toBe(true);
  });

  it('moves colour the way each preset says', async () => {
    const [r0, g0, b0] = (await means(await look('natural'))) as [number, number, number];
    const [rw, , bw] = (await means(await look('warm'))) as [number, number, number];
    const [rc, , bc] = (await means(await look('cool'))) as [number, number, number];
    expect(rw - bw).toBeGreaterThan(r0 - b0 + 10);
    expect(rc - bc).toBeLessThan(r0 - b0 - 10);
    const saturation = async (bytes: Uint8Array) => meanSaturation(await decode(bytes));
    const natural = await saturation(await look('natural'));
    expect(await saturation(await look('desaturated'))).toBeLessThan(natural * 0.7);
    expect(await saturation(await look('punchy'))).toBeGreaterThan(natural * 1.15);
    const matte = await sharp(await look('matte')).stats();
    const plain = await sharp(await look('natural')).stats();
    // faded: blacks lifted, less spread
    expect(Math.min(...matte.channels.map((c) => c.min))).toBeGreaterThan(Math.min(...plain.channels.map((c) => c.min)) + 10);
    expect(matte.channels[0]!.stdev).toBeLessThan(plain.channels[0]!.stdev);
    // natural with contrast 1 leaves the picture as it was (up to JPEG)
    expect(Math.abs(g0 - (await means(photo))[1]!)).toBeLessThan(2);
  });

  it('applies contrast, grain, vignette, blur and sharpening', async () => {
    const flat = await png(rawImage(64, 64, () => [128, 128, 128]));
    const on = async (extra: object) =>
      sharp((await processor.applyStyle(flat, { seed: 'fx', preset: 'natural', ...neutral, ...extra })).data);
    const stdev = async (image: Sharp) => (await image.stats()).channels[0]!.stdev;
    expect(await stdev(await on({}))).toBeLessThan(1);
    expect(await stdev(await on({ grainSigma: 8 }))).toBeGreaterThan(4);
    const vignetted = await decode(await (await on({ vignetteStrength: 0.18 })).png().toBuffer());
    const corner = vignetted.data[0] as number;
    const centre = vignetted.data[(32 * 64 + 32) * 3] as number;
    expect(centre - corner).toBeGreaterThan(15);
    const sharpness = async (extra: object) => (await (await on(extra)).stats()).sharpness;
    const textured = await png(rawImage(64, 64, (x, y) => (((x >> 2) + (y >> 2)) % 2 ? [200, 200, 200] : [60, 60, 60])));
    const sharpnessOf = async (extra: object) =>
      (await sharp((await processor.applyStyle(textured, { seed: 'fx', preset: 'natural', ...neutral, ...extra })).data).stats()).sharpness;
    const base = await sharpnessOf({});
    expect(await sharpnessOf({ blurSigma: 0.7 })).toBeLessThan(base);
    expect(await sharpnessOf({ sharpenAmount: 0.7 })).toBeGreaterThan(base);
    expect(await sharpness({ contrast: 1.15 })).toBeGreaterThanOrEqual(0);
    const lowContrast = await sharp(
      (await processor.applyStyle(textured, { seed: 'fx', preset: 'natural', ...neutral, contrast: 0.95 })).data,
    ).stats();
    const highContrast = await sharp(
      (await processor.applyStyle(textured, { seed: 'fx', preset: 'natural', ...neutral, contrast: 1.15 })).data,
    ).stats();
    expect(highContrast.channels[0]!.stdev).toBeGreaterThan(lowContrast.channels[0]!.stdev);
  });

  it('styles pictures too wide for the kernel on the JavaScript path', async () => {
    const wide = await png(rawImage(16400, 2, (x) => [x % 256, 100, 200]));
    const styled = await processor.randomizeStyle(wide, { seed: 'wide' });
    expect(readImageInfo(styled.data)).toMatchObject({ format: 'jpeg', width: 16400, height: 2 });
  });

  it('refuses parameters out of range', async () => {
    await expect(processor.applyStyle(photo, { seed: 'x', preset: 'sepia' as 'warm', ...neutral })).rejects.toBeInstanceOf(ValidationError);
    await expect(processor.applyStyle(photo, { seed: 'x', preset: 'warm', ...neutral, jpegQuality: 101 })).rejects.toBeInstanceOf(
      ValidationError,
    );
  });
});

describe('realistic inputs (made by the test)', () => {
  let grid: Awaited<ReturnType<typeof photoGrid>>;
  beforeAll(async () => {
    grid = await photoGrid();
  });

  it('turns a 1024 px grid into four 484 px shots without the white frame, pixel for pixel', async () => {
    const cells = await processor.processGrid(grid.png, { cropWhiteBorders: true, styleSeed: 'real' });
    expect(cells.map((c) => [c.contentType, c.width, c.height])).toEqual(Array.from({ length: 4 }, () => ['image/jpeg', 484, 484]));
    const plain = await processor.processGrid(grid.png, { cropWhiteBorders: true, styleSeed: null });
    for (const [i, cell] of plain.entries()) {
      const { x, y } = grid.shots[i]!;
      const expected = crop(grid.raw, x, y, 484, 484);
      expect(Buffer.from((await decode(cell.data)).data).equals(Buffer.from(expected.data)), `cell ${i}`).toBe(true);
    }
  });

  it('crops the near-white borders of single pictures by the old rules', async () => {
    for (const [size, borders] of [
      [512, { top: 12, right: 7, bottom: 30, left: 3 }],
      [1024, { top: 0, right: 41, bottom: 9, left: 18 }],
    ] as const) {
      // a photo inside near-white borders (every channel 225-255)
      const source = photo(size, size, size);
      const framed = bordered(size, size, borders, 225, 7);
      const width = size - borders.left - borders.right;
      const height = size - borders.top - borders.bottom;
      for (let y = borders.top; y < borders.top + height; y++) {
        const start = (y * size + borders.left) * 3;
        framed.data.set(source.data.subarray(start, start + width * 3), start);
      }
      const out = await decode(await processor.cropWhiteBorders(await png(framed)));
      expect([out.width, out.height]).toEqual([width, height]);
      expect(Buffer.from(out.data).equals(Buffer.from(crop(framed, borders.left, borders.top, width, height).data))).toBe(true);
    }
  });

  it('styles a realistic picture deterministically, and differently for another seed', async () => {
    const bytes = await png(photo(512, 512, 3));
    const a = await processor.randomizeStyle(bytes, { seed: 'real-1' });
    const b = await processor.randomizeStyle(bytes, { seed: 'real-1' });
    expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(true);
    const c = await processor.randomizeStyle(bytes, { seed: 'real-2' });
    expect(Buffer.from(c.data).equals(Buffer.from(a.data))).toBe(false);
  });
});

describe('bad input', () => {
  let good: Buffer;
  let bad: Array<{ name: string; bytes: Uint8Array; reason: RegExp }>;
  beforeAll(async () => {
    good = await png(rawImage(48, 48, (x, y) => [x * 5, y * 5, 100]));
    const jpeg = await sharp(good).jpeg().toBuffer();
    const corrupt = Buffer.from(good);
    for (let i = 60; i < corrupt.length - 20; i += 7) corrupt[i] = (corrupt[i] as number) ^ 0x5a;
    // a valid-looking PNG header that claims 100000 x 100000 pixels
    const bomb = Buffer.from(good);
    bomb.writeUInt32BE(100_000, 16);
    bomb.writeUInt32BE(100_000, 20);
    bad = [
      { name: 'empty', bytes: new Uint8Array(0), reason: /empty/ },
      { name: 'text', bytes: Buffer.from('definitely not an image, just words'), reason: /unknown format/ },
      { name: 'short', bytes: Buffer.from([0x89, 0x50]), reason: /Not an image/ },
      { name: 'truncated png', bytes: good.subarray(0, Math.floor(good.length / 2)), reason: /Cannot decode/ },
      { name: 'corrupt png', bytes: corrupt, reason: /Cannot decode/ },
      { name: 'truncated jpeg', bytes: jpeg.subarray(0, Math.floor(jpeg.length * 0.6)), reason: /Cannot decode/ },
      { name: 'bomb', bytes: bomb, reason: /pixels, the limit is/ },
      { name: 'gif', bytes: Buffer.from('GIF89a\x10\x00\x10\x00\x00\x00\x00', 'latin1'), reason: /format gif is not accepted/ },
    ];
  });

  it('rejects every kind with InvalidImageError and the reason', async () => {
    for (const { name, bytes, reason } of bad) {
      const error = await processor.splitGrid(bytes).catch((e: unknown) => e);
      expect(error, name).toBeInstanceOf(InvalidImageError);
      expect((error as Error).message, name).toMatch(reason);
      expect((error as InvalidImageError).retryable).toBe(false);
    }
    await expect(processor.thumbnail(bad[4]!.bytes, 10)).rejects.toBeInstanceOf(InvalidImageError);
    await expect(processor.randomizeStyle(bad[3]!.bytes, { seed: 's' })).rejects.toBeInstanceOf(InvalidImageError);
  });

  it('applies the size and format limits it was given', async () => {
    const strict = createImageProcessor({ threads: 1, maxInputBytes: 1500, maxPixels: 1000, formats: ['png'] });
    try {
      expect(good.length).toBeGreaterThan(1500);
      await expect(strict.trimWhitespace(good)).rejects.toThrow(/bytes, the limit is 1500/);
      const small = await png(rawImage(40, 30, () => [1, 2, 3]));
      await expect(strict.trimWhitespace(small)).rejects.toThrow(/1200 pixels, the limit is 1000/);
      const jpeg = await sharp(Buffer.alloc(10 * 10 * 3), { raw: { width: 10, height: 10, channels: 3 } })
        .jpeg()
        .toBuffer();
      await expect(strict.trimWhitespace(jpeg)).rejects.toThrow(/format jpeg is not accepted \(accepted: png\)/);
      expect(readImageInfo(await strict.trimWhitespace(await png(rawImage(10, 10, () => [1, 2, 3])))).width).toBe(10);
    } finally {
      await strict.close();
    }
    expect(() => createImageProcessor({ formats: ['tiff'] })).toThrow(/Unknown image format/);
  });

  it("leaves the caller's bytes alone, through good and failed calls", async () => {
    const single = createImageProcessor({ threads: 1 });
    try {
      const images = [
        bordered(90, 60, { top: 4, right: 0, bottom: 0, left: 9 }),
        bordered(60, 90, { top: 0, right: 5, bottom: 8, left: 0 }),
      ];
      const inputs = await Promise.all(images.map(png));
      const copies = inputs.map((bytes) => Buffer.from(bytes));
      const expected = [
        [81, 56],
        [55, 82],
      ];
      for (let round = 0; round < 6; round++) {
        const i = round % 2;
        const out = readImageInfo(await single.cropWhiteBorders(inputs[i]!));
        expect([out.width, out.height]).toEqual(expected[i]);
        await expect(single.cropWhiteBorders(inputs[i]!.subarray(0, 40))).rejects.toBeInstanceOf(InvalidImageError);
      }
      for (const [i, bytes] of inputs.entries()) expect(bytes.equals(copies[i]!)).toBe(true);
    } finally {
      await single.close();
    }
  });

  it('never puts the input bytes in the message', async () => {
    const error = await processor.trimWhitespace(Buffer.from('Authorization: Bearer sk-live-12345 secret')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidImageError);
    expect((error as Error).message).not.toContain('sk-live');
  });

  it('keeps returning every good result while 100 bad inputs go through the pool', async () => {
    const grid = makeGridPng({ cell: 24, gutter: 4, margin: 6 });
    const calls: Array<Promise<unknown>> = [];
    const kinds: boolean[] = [];
    for (let i = 0; i < 100; i++) {
      calls.push(processor.processGrid(bad[i % bad.length]!.bytes, { cropWhiteBorders: true, styleSeed: `b${i}` }));
      kinds.push(false);
      if (i % 5 === 0) {
        calls.push(processor.processGrid(grid, { cropWhiteBorders: true, styleSeed: `g${i}` }));
        kinds.push(true);
      }
    }
    const results = await Promise.allSettled(calls);
    for (const [i, result] of results.entries()) {
      if (kinds[i]) {
        expect(result.status).toBe('fulfilled');
        expect((result as PromiseFulfilledResult<unknown[]>).value).toHaveLength(4);
      } else {
        expect(result.status).toBe('rejected');
        expect((result as PromiseRejectedResult).reason).toBeInstanceOf(InvalidImageError);
      }
    }
    expect(kinds.filter(Boolean)).toHaveLength(20);
  });

  it('refuses a JPEG of hundreds of scans (a CPU bomb in few bytes) from its markers, before decoding', async () => {
    const progressive = await sharp(await png(rawImage(64, 64, (x, y) => [x * 4, y * 4, 90])))
      .jpeg({ progressive: true })
      .toBuffer();
    const scans = jpegScans(progressive, 1000);
    expect(scans).toBeGreaterThan(1);
    expect(scans).toBeLessThan(20);
    expect(readImageInfo(await processor.thumbnail(progressive, 32)).width).toBe(32);
    // the last scan repeated until there are 101: each decodes (and costs) like a real one
    const lastScan = progressive.lastIndexOf(Buffer.from([0xff, 0xda]));
    const scan = progressive.subarray(lastScan, progressive.length - 2);
    const bomb = Buffer.concat([
      progressive.subarray(0, progressive.length - 2),
      ...Array(MAX_JPEG_SCANS + 1 - scans).fill(scan),
      Buffer.from([0xff, 0xd9]),
    ]);
    expect(jpegScans(bomb, 1000)).toBe(MAX_JPEG_SCANS + 1);
    const error = await processor.thumbnail(bomb, 32).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidImageError);
    expect((error as Error).message).toMatch(/more than 100 scans/);
  });

  it('refuses a result too wide for JPEG with InvalidImageError, not a server error', async () => {
    const wide = await sharp({ create: { width: 70_000, height: 8, channels: 3, background: '#808080' } })
      .png()
      .toBuffer();
    const error = await processor.randomizeStyle(wide, { seed: 'wide' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidImageError);
    expect((error as Error).message).toMatch(/70000x8 pixels: a JPEG holds at most 65535 per side/);
  });

  it('refuses bad arguments with ValidationError', async () => {
    await expect(processor.processGrid(good, null as never)).rejects.toBeInstanceOf(ValidationError);
    await expect(processor.processGrid(good, { styleSeed: null, cropWhiteBorders: 'yes' as never })).rejects.toBeInstanceOf(
      ValidationError,
    );
    await expect(processor.randomizeStyle(good, { seed: 's', signal: {} as never })).rejects.toBeInstanceOf(ValidationError);
    await expect(processor.randomizeStyle(good, { seed: 's', timeoutMs: 2 ** 31 })).rejects.toBeInstanceOf(ValidationError);
    await expect(processor.cropWhiteBorders(good, 'x' as never)).rejects.toBeInstanceOf(ValidationError);
    // no options, or a field left undefined, is the defaults
    expect(readImageInfo(await processor.trimWhitespace(good, null as never)).width).toBe(48);
    expect(readImageInfo(await processor.cropWhiteBorders(good, { threshold: undefined })).width).toBe(48);
    expect(() => createImageProcessor({ timeoutMs: 2 ** 31 })).toThrow(ValidationError);
    expect(() => createImageProcessor({ formats: [] })).toThrow(/formats is empty/);
    await expect(processor.splitGrid(good, 0, 2)).rejects.toBeInstanceOf(ValidationError);
    await expect(processor.thumbnail(good, 0)).rejects.toBeInstanceOf(ValidationError);
    await expect(processor.cropWhiteBorders(good, { whiteRatio: 2 })).rejects.toBeInstanceOf(ValidationError);
    // more rows than pixels is only known after decoding, in the worker
    const error = await processor.splitGrid(await png(rawImage(8, 3, () => [0, 0, 0])), 4, 2).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).fields.rows).toMatch(/4 rows do not fit/);
  });
});

describe('timeouts, cancelling and close', () => {
  let grid: Buffer;
  beforeAll(async () => {
    grid = (await photoGrid()).png;
  });

  it('times out a slow call with a clear error, replaces the worker and keeps working', async () => {
    const single = createImageProcessor({ threads: 1 });
    try {
      const error = await single.processGrid(grid, { cropWhiteBorders: true, styleSeed: 's', timeoutMs: 1 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ImageTimeoutError);
      expect(error).toBeInstanceOf(AvatarGenError);
      expect((error as ImageTimeoutError).kind).toBe('timeout');
      expect((error as Error).message).toMatch(/processGrid\) did not finish within 1 ms/);
      const cells = await single.processGrid(grid, { cropWhiteBorders: true, styleSeed: 's' });
      expect(cells).toHaveLength(4);
    } finally {
      await single.close();
    }
  });

  it('applies the processor-wide timeout', async () => {
    const hurried = createImageProcessor({ threads: 1, timeoutMs: 1 });
    try {
      await expect(hurried.processGrid(grid, { cropWhiteBorders: true, styleSeed: 's' })).rejects.toBeInstanceOf(ImageTimeoutError);
    } finally {
      await hurried.close();
    }
  });

  it('cancels with an AbortSignal, before and during the call', async () => {
    const aborted = AbortSignal.abort();
    await expect(processor.processGrid(grid, { cropWhiteBorders: true, styleSeed: null, signal: aborted })).rejects.toBeInstanceOf(
      CancelledError,
    );
    const controller = new AbortController();
    const call = processor.processGrid(grid, { cropWhiteBorders: true, styleSeed: 'c', signal: controller.signal });
    setTimeout(() => controller.abort(), 1);
    await expect(call).rejects.toBeInstanceOf(CancelledError);
    expect(await processor.processGrid(grid, { cropWhiteBorders: true, styleSeed: 'c' })).toHaveLength(4);
  });

  it('close() lets calls in flight finish, then refuses new ones', async () => {
    const closing = createImageProcessor({ threads: 1 });
    const small = makeGridPng();
    const inFlight = [closing.splitGrid(small), closing.splitGrid(small), closing.thumbnail(small, 20)];
    const closed = closing.close();
    await expect(closing.splitGrid(small)).rejects.toBeInstanceOf(CancelledError);
    const results = await Promise.all(inFlight);
    expect(results[0]).toHaveLength(4);
    await closed;
    await closing.close();
  });
});
