import {
  CancelledError,
  ConfigError,
  type EncodedImage,
  InvalidImageError,
  type PersonaData,
  readImageInfo,
} from '@avatargen/core';
import { samplePersona } from '@avatargen/core/testing';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { createLocalImageProvider, createLocalProviders, gridLayout } from '../src/index.js';

const CELL = 96;
const provider = createLocalImageProvider({ imageSize: 80, cellSize: CELL });
const layout = gridLayout({ imageSize: 80, cellSize: CELL });

interface Raw {
  data: Buffer;
  width: number;
  height: number;
  channels: number;
}

async function raw(image: Uint8Array): Promise<Raw> {
  const { data, info } = await sharp(image).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

const pixel = (img: Raw, x: number, y: number) => {
  const o = (y * img.width + x) * img.channels;
  return [img.data[o], img.data[o + 1], img.data[o + 2]] as [number, number, number];
};
const isWhite = (p: [number, number, number]) => p.every((v) => v === 255);
const rowWhite = (img: Raw, y: number, x0 = 0, x1 = img.width) => {
  for (let x = x0; x < x1; x++) if (!isWhite(pixel(img, x, y))) return false;
  return true;
};
const colWhite = (img: Raw, x: number, y0 = 0, y1 = img.height) => {
  for (let y = y0; y < y1; y++) if (!isWhite(pixel(img, x, y))) return false;
  return true;
};
/** Share of pixels in a row segment with every channel >= 220 (what cropWhiteBorders calls white). */
const nearWhiteShare = (pixels: Array<[number, number, number]>) =>
  pixels.filter((p) => p.every((v) => v >= 220)).length / pixels.length;

const personas: PersonaData[] = [
  samplePersona(),
  samplePersona({ firstName: 'Kenji', lastName: 'Sato', gender: 'm', ethnicity: 'East Asian (Japanese)', age: 67 }),
  samplePersona({ firstName: 'Amara', lastName: 'Okafor', gender: 'f', ethnicity: 'Black', age: 24 }),
  samplePersona({ firstName: 'Layla', lastName: 'Haddad', gender: 'f', ethnicity: 'Arab', age: 41 }),
];
const prompts = [
  'Full-body shot of Maria, walking her dog in a leafy city park, golden hour sunlight.',
  'Close-up portrait of Maria, sipping a cappuccino in a cozy neighborhood cafe, soft window light.',
  'Wide environmental portrait of Maria, singing along at an outdoor concert, neon evening light.',
  'A picture somewhere nobody described',
];

describe('base portraits', () => {
  it('are PNGs of the configured size that sharp decodes, the same bytes for the same persona', async () => {
    for (const persona of personas) {
      const image = await provider.baseImage({ persona, seed: 'task-1' });
      expect(image.contentType).toBe('image/png');
      expect(readImageInfo(image.data)).toMatchObject({ format: 'png', width: 80, height: 80 });
      const meta = await sharp(image.data).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['png', 80, 80]);
      const again = await provider.baseImage({ persona, seed: 'another-seed' });
      expect(Buffer.from(again.data).equals(Buffer.from(image.data))).toBe(true);
    }
    const a = await provider.baseImage({ persona: personas[0] as PersonaData, seed: 's' });
    const b = await provider.baseImage({ persona: personas[1] as PersonaData, seed: 's' });
    expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(false);
  });

  it('default to 256 px', async () => {
    const image = await createLocalProviders().images.baseImage({ persona: samplePersona(), seed: 's' });
    expect(readImageInfo(image.data)).toMatchObject({ width: 256, height: 256 });
  });
});

describe('grids', () => {
  const grids: Array<{ persona: PersonaData; prompt: string; image: EncodedImage }> = [];
  beforeAll(async () => {
    for (const persona of personas) {
      const base = await provider.baseImage({ persona, seed: 'grid' });
      for (const prompt of prompts.slice(0, 2)) {
        grids.push({ persona, prompt, image: await provider.gridFromBase({ persona, base, prompt, seed: 'grid' }) });
      }
    }
    const persona = personas[0] as PersonaData;
    const base = await provider.baseImage({ persona, seed: 'grid' });
    for (const prompt of prompts.slice(2)) {
      grids.push({ persona, prompt, image: await provider.gridFromBase({ persona, base, prompt, seed: 'grid' }) });
    }
  });

  it('are square PNGs of margin + 2 cells + gutter that readImageInfo and sharp accept', async () => {
    expect(layout).toEqual({ cell: 96, gutter: 6, margin: 10, size: 10 * 2 + 96 * 2 + 6 });
    for (const { image } of grids) {
      expect(readImageInfo(image.data)).toMatchObject({ format: 'png', width: layout.size, height: layout.size });
      const meta = await sharp(image.data).metadata();
      expect([meta.width, meta.height]).toEqual([layout.size, layout.size]);
    }
  });

  it('have an all-white margin and gutters, and cells whose edges are not white, so they split cleanly into 4', async () => {
    const { cell, gutter, margin, size } = layout;
    for (const { image, prompt } of grids) {
      const img = await raw(image.data);
      for (let i = 0; i < margin; i++) {
        expect(rowWhite(img, i), `top margin row ${i}`).toBe(true);
        expect(rowWhite(img, size - 1 - i), `bottom margin row ${i}`).toBe(true);
        expect(colWhite(img, i), `left margin column ${i}`).toBe(true);
        expect(colWhite(img, size - 1 - i), `right margin column ${i}`).toBe(true);
      }
      for (let i = 0; i < gutter; i++) {
        expect(rowWhite(img, margin + cell + i), `gutter row ${i}`).toBe(true);
        expect(colWhite(img, margin + cell + i), `gutter column ${i}`).toBe(true);
      }
      // Each of the 4 cells: its outermost rows and columns are picture, not border.
      for (let index = 0; index < 4; index++) {
        const x0 = margin + (index % 2) * (cell + gutter);
        const y0 = margin + Math.floor(index / 2) * (cell + gutter);
        const edges = {
          top: Array.from({ length: cell }, (_, k) => pixel(img, x0 + k, y0)),
          bottom: Array.from({ length: cell }, (_, k) => pixel(img, x0 + k, y0 + cell - 1)),
          left: Array.from({ length: cell }, (_, k) => pixel(img, x0, y0 + k)),
          right: Array.from({ length: cell }, (_, k) => pixel(img, x0 + cell - 1, y0 + k)),
        };
        for (const [side, pixels] of Object.entries(edges)) {
          expect(nearWhiteShare(pixels), `${prompt}: cell ${index} ${side} edge`).toBeLessThan(0.5);
        }
      }
      // Splitting the way image processors do gives four equal cells.
      const cells = await Promise.all(
        [0, 1, 2, 3].map((index) =>
          sharp(image.data)
            .extract({
              left: margin + (index % 2) * (cell + gutter),
              top: margin + Math.floor(index / 2) * (cell + gutter),
              width: cell,
              height: cell,
            })
            .png()
            .toBuffer(),
        ),
      );
      for (const c of cells) expect(readImageInfo(c)).toMatchObject({ width: cell, height: cell });
      // ...and four different shots
      expect(new Set(cells.map((c) => c.toString('base64'))).size).toBe(4);
    }
  });

  it('change with the prompt and stay the same for the same prompt and seed', async () => {
    const persona = personas[0] as PersonaData;
    const base = await provider.baseImage({ persona, seed: 'grid' });
    const again = await provider.gridFromBase({ persona, base, prompt: prompts[0] as string, seed: 'grid' });
    const first = grids.find((g) => g.persona === persona && g.prompt === prompts[0]);
    expect(Buffer.from(again.data).equals(Buffer.from(first?.image.data ?? []))).toBe(true);
    const other = grids.find((g) => g.persona === persona && g.prompt === prompts[1]);
    expect(Buffer.from(other?.image.data ?? []).equals(Buffer.from(first?.image.data ?? []))).toBe(false);
  });

  it('take their scene colours from the setting in the prompt', async () => {
    // The top-left pixel of each cell is sky: the concert at night is much darker than the park at golden hour.
    const brightness = async (image: EncodedImage) => {
      const img = await raw(image.data);
      const { cell, gutter, margin } = layout;
      let sum = 0;
      for (let index = 0; index < 4; index++) {
        const [r, g, b] = pixel(img, margin + (index % 2) * (cell + gutter) + 1, margin + Math.floor(index / 2) * (cell + gutter) + 1);
        sum += r + g + b;
      }
      return sum / 12;
    };
    const park = grids.find((g) => g.persona === personas[0] && g.prompt === prompts[0]);
    const concert = grids.find((g) => g.prompt === prompts[2]);
    expect(await brightness(concert?.image as EncodedImage)).toBeLessThan((await brightness(park?.image as EncodedImage)) - 60);
  });
});

describe('errors and cancellation', () => {
  const persona = samplePersona();

  it('refuses a base that is not an image with InvalidImageError', async () => {
    await expect(
      provider.gridFromBase({ persona, base: { data: Buffer.from('not an image at all'), contentType: 'image/png' }, prompt: 'x', seed: 's' }),
    ).rejects.toBeInstanceOf(InvalidImageError);
  });

  it('rejects with CancelledError when the signal fires while a grid is being drawn', async () => {
    const base = await provider.baseImage({ persona, seed: 's' });
    const controller = new AbortController();
    const pending = provider.gridFromBase({ persona, base, prompt: prompts[0] as string, seed: 's', signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(CancelledError);
    const pendingBase = provider.baseImage({ persona, seed: 's', signal: controller.signal });
    await expect(pendingBase).rejects.toBeInstanceOf(CancelledError);
  });

  it('refuses bad sizes with a ConfigError naming the option', () => {
    expect(() => createLocalImageProvider({ imageSize: 10 })).toThrow(ConfigError);
    expect(() => createLocalImageProvider({ cellSize: 1.5 })).toThrow(/cellSize/);
    expect(() => createLocalImageProvider({ gutter: 0 })).toThrow(/gutter/);
  });
});
