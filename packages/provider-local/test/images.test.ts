import {
  CancelledError,
  ConfigError,
  type EncodedImage,
  InvalidImageError,
  type PersonaData,
  readImageInfo,
  ValidationError,
} from '@avatargen/core';
import { samplePersona } from '@avatargen/core/testing';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  baseOptions,
  createLocalImageProvider,
  createLocalProviders,
  DEFAULT_SIZE,
  faceOf,
  GREY_HAIR,
  pictureLayout,
  planPictures,
} from '../src/index.js';

const PICTURE = 96;
const provider = createLocalImageProvider({ imageSize: 80, pictureSize: PICTURE });
const layout = pictureLayout({ imageSize: 80, pictureSize: PICTURE });

/** `count` pictures for one prompt: the provider answers with separate images. */
async function shots(request: Parameters<typeof provider.pictures>[0]): Promise<EncodedImage[]> {
  const answer = await provider.pictures(request);
  if (answer.kind !== 'images') throw new Error(`expected separate images, got ${answer.kind}`);
  return answer.images;
}

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
const nearWhiteShare = (pixels: Array<[number, number, number]>) => pixels.filter((p) => p.every((v) => v >= 220)).length / pixels.length;

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

  it('default to 512 px, pictures too', async () => {
    const images = createLocalProviders().images;
    const persona = samplePersona();
    const image = await images.baseImage({ persona, seed: 's' });
    expect(readImageInfo(image.data)).toMatchObject({ width: 512, height: 512 });
    expect(DEFAULT_SIZE).toBe(512);
    expect(pictureLayout().picture).toBe(512);
    const answer = await images.pictures({ persona, base: image, prompt: prompts[0] as string, count: 1, seed: 's' });
    if (answer.kind !== 'images') throw new Error('expected images');
    expect(readImageInfo(answer.images[0]?.data ?? new Uint8Array()).width).toBeGreaterThanOrEqual(512);
  });
});

describe('pictures', () => {
  const sets: Array<{ persona: PersonaData; prompt: string; images: EncodedImage[] }> = [];
  beforeAll(async () => {
    for (const persona of personas) {
      const base = await provider.baseImage({ persona, seed: 'grid' });
      for (const prompt of prompts.slice(0, 2)) {
        sets.push({ persona, prompt, images: await shots({ persona, base, prompt, count: 4, seed: 'grid' }) });
      }
    }
    const persona = personas[0] as PersonaData;
    const base = await provider.baseImage({ persona, seed: 'grid' });
    for (const prompt of prompts.slice(2)) {
      sets.push({ persona, prompt, images: await shots({ persona, base, prompt, count: 4, seed: 'grid' }) });
    }
  });

  it('are `count` separate square PNGs of picture + 2 margins that readImageInfo and sharp accept', async () => {
    expect(layout).toEqual({ picture: 96, margin: 10, size: 96 + 2 * 10 });
    for (const { images } of sets) {
      expect(images).toHaveLength(4);
      for (const image of images) {
        expect(image.contentType).toBe('image/png');
        expect(readImageInfo(image.data)).toMatchObject({ format: 'png', width: layout.size, height: layout.size });
        const meta = await sharp(image.data).metadata();
        expect([meta.width, meta.height]).toEqual([layout.size, layout.size]);
      }
    }
    const persona = personas[0] as PersonaData;
    const base = await provider.baseImage({ persona, seed: 'grid' });
    expect(await shots({ persona, base, prompt: prompts[0] as string, count: 6, seed: 'grid' })).toHaveLength(6);
  });

  it('have an all-white frame around a scene whose edges are not white, so cropping takes exactly the frame', async () => {
    const { picture, margin, size } = layout;
    for (const { images, prompt } of sets) {
      for (const [index, image] of images.entries()) {
        const img = await raw(image.data);
        for (let i = 0; i < margin; i++) {
          expect(rowWhite(img, i), `top margin row ${i}`).toBe(true);
          expect(rowWhite(img, size - 1 - i), `bottom margin row ${i}`).toBe(true);
          expect(colWhite(img, i), `left margin column ${i}`).toBe(true);
          expect(colWhite(img, size - 1 - i), `right margin column ${i}`).toBe(true);
        }
        const edges = {
          top: Array.from({ length: picture }, (_, k) => pixel(img, margin + k, margin)),
          bottom: Array.from({ length: picture }, (_, k) => pixel(img, margin + k, margin + picture - 1)),
          left: Array.from({ length: picture }, (_, k) => pixel(img, margin, margin + k)),
          right: Array.from({ length: picture }, (_, k) => pixel(img, margin + picture - 1, margin + k)),
        };
        for (const [side, pixels] of Object.entries(edges)) {
          expect(nearWhiteShare(pixels), `${prompt}: picture ${index} ${side} edge`).toBeLessThan(0.5);
        }
      }
      // four different shots of the prompt, not one picture four times
      expect(new Set(images.map((image) => Buffer.from(image.data).toString('base64'))).size).toBe(4);
    }
  });

  it('change with the prompt and stay the same for the same prompt and seed', async () => {
    const persona = personas[0] as PersonaData;
    const base = await provider.baseImage({ persona, seed: 'grid' });
    const again = await shots({ persona, base, prompt: prompts[0] as string, count: 4, seed: 'grid' });
    const first = sets.find((g) => g.persona === persona && g.prompt === prompts[0]);
    expect(again.map((image, i) => Buffer.from(image.data).equals(Buffer.from(first?.images[i]?.data ?? [])))).toEqual([
      true,
      true,
      true,
      true,
    ]);
    const other = sets.find((g) => g.persona === persona && g.prompt === prompts[1]);
    expect(Buffer.from(other?.images[0]?.data ?? []).equals(Buffer.from(first?.images[0]?.data ?? []))).toBe(false);
    const reseeded = await shots({ persona, base, prompt: prompts[0] as string, count: 4, seed: 'another' });
    expect(Buffer.from(reseeded[0]?.data ?? []).equals(Buffer.from(first?.images[0]?.data ?? []))).toBe(false);
  });

  it('take their scene colours from the setting in the prompt', async () => {
    // The top-left pixel inside each frame is sky: the concert at night is much darker than the park at golden hour.
    const brightness = async (images: EncodedImage[]) => {
      let sum = 0;
      for (const image of images) {
        const [r, g, b] = pixel(await raw(image.data), layout.margin + 1, layout.margin + 1);
        sum += r + g + b;
      }
      return sum / (3 * images.length);
    };
    const park = sets.find((g) => g.persona === personas[0] && g.prompt === prompts[0]);
    const concert = sets.find((g) => g.prompt === prompts[2]);
    expect(await brightness(concert?.images ?? [])).toBeLessThan((await brightness(park?.images ?? [])) - 60);
  });
});

describe('one persona, one look', () => {
  const ages = [24, 34, 41, 57, 67];
  const people = ages.flatMap((age) => [
    samplePersona({ firstName: `F${age}`, gender: 'f', age }),
    samplePersona({ firstName: `M${age}`, lastName: 'Okafor', gender: 'm', ethnicity: 'Black', age }),
  ]);

  it('keeps skin, hair, hair colour, beard and brows of the base in all 4 pictures of every prompt', () => {
    const identity = (o: ReturnType<typeof baseOptions>) => ({
      skinColor: o.skinColor,
      top: o.top,
      hairColor: o.hairColor,
      facialHair: o.facialHairProbability ? o.facialHair : [],
      facialHairColor: o.facialHairColor,
      eyebrows: o.eyebrows,
    });
    for (const persona of people) {
      const base = identity(baseOptions(persona, 512));
      expect(base.skinColor).toHaveLength(1);
      expect(base.hairColor).toHaveLength(1);
      for (const prompt of [...prompts, 'Full-body shot of Ann, catching snowflakes on a snowy street, bright midday sun.']) {
        const plans = planPictures(persona, prompt, 'task-9', 4, 512);
        expect(plans).toHaveLength(4);
        for (const plan of plans) {
          expect(identity(plan.avatar), `${persona.firstName}: ${prompt}`).toEqual(base);
          // the same reading glasses, or none (sunglasses may replace them outdoors in the sun)
          const glasses = plan.avatar.accessoriesProbability ? plan.avatar.accessories : [];
          if (!glasses?.some((g) => g === 'sunglasses' || g === 'wayfarers')) {
            expect(glasses, `${persona.firstName}: ${prompt}`).toEqual(faceOf(persona).wearsGlasses ? [faceOf(persona).glasses] : []);
          }
        }
      }
    }
  });

  it('draws grey hair from 55 on, and grown-up clothes and natural brows from 40 on', () => {
    for (const persona of people) {
      const face = faceOf(persona);
      const age = persona.age ?? 0;
      if (age >= 55) expect(GREY_HAIR, `${persona.firstName}`).toContain(face.hairColor);
      if (age >= 40) {
        expect(['hoodie', 'graphicShirt', 'overall']).not.toContain(face.clothing);
        expect(face.eyebrows).toMatch(/Natural$/);
        for (const plan of planPictures(persona, prompts[0] as string, 's', 4, 256)) {
          expect(['hoodie', 'graphicShirt', 'overall']).not.toContain(plan.avatar.clothing?.[0]);
        }
      }
    }
    // younger people are not all grey
    expect(people.filter((p) => (p.age ?? 0) < 45).some((p) => !GREY_HAIR.includes(faceOf(p).hairColor))).toBe(true);
  });

  it('shows the planned skin colour and hair colour in the pixels of the base and of every picture', async () => {
    const count = (img: Raw, color: string) => {
      const [r, g, b] = [0, 2, 4].map((i) => Number.parseInt(color.slice(i, i + 2), 16));
      let n = 0;
      for (let o = 0; o < img.data.length; o += img.channels) if (img.data[o] === r && img.data[o + 1] === g && img.data[o + 2] === b) n++;
      return n;
    };
    const big = createLocalImageProvider({ imageSize: 160, pictureSize: 160 });
    for (const persona of [people[3], people[6]] as PersonaData[]) {
      const face = faceOf(persona);
      const base = await big.baseImage({ persona, seed: 's' });
      const answer = await big.pictures({ persona, base, prompt: prompts[1] as string, count: 4, seed: 's' });
      if (answer.kind !== 'images') throw new Error('expected images');
      for (const [i, image] of [base, ...answer.images].entries()) {
        const img = await raw(image.data);
        expect(count(img, face.skinColor), `${persona.firstName} image ${i} skin`).toBeGreaterThan(20);
        expect(count(img, face.hairColor), `${persona.firstName} image ${i} hair`).toBeGreaterThan(5);
      }
    }
  });
});

describe('errors and cancellation', () => {
  const persona = samplePersona();

  it('refuses a base that is not an image with InvalidImageError', async () => {
    await expect(
      provider.pictures({
        persona,
        base: { data: Buffer.from('not an image at all'), contentType: 'image/png' },
        prompt: 'x',
        count: 4,
        seed: 's',
      }),
    ).rejects.toBeInstanceOf(InvalidImageError);
  });

  it('refuses a count that is not a whole number from 1 to 16 with ValidationError', async () => {
    const base = await provider.baseImage({ persona, seed: 's' });
    for (const count of [0, 17, 2.5]) {
      await expect(provider.pictures({ persona, base, prompt: 'x', count, seed: 's' })).rejects.toBeInstanceOf(ValidationError);
    }
  });

  it('rejects with CancelledError when the signal fires while pictures are being drawn', async () => {
    const base = await provider.baseImage({ persona, seed: 's' });
    const controller = new AbortController();
    const pending = provider.pictures({ persona, base, prompt: prompts[0] as string, count: 4, seed: 's', signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(CancelledError);
    const pendingBase = provider.baseImage({ persona, seed: 's', signal: controller.signal });
    await expect(pendingBase).rejects.toBeInstanceOf(CancelledError);
  });

  it('refuses bad sizes with a ConfigError naming the option', () => {
    expect(() => createLocalImageProvider({ imageSize: 10 })).toThrow(ConfigError);
    expect(() => createLocalImageProvider({ pictureSize: 1.5 })).toThrow(/pictureSize/);
    expect(() => createLocalImageProvider({ margin: 0 })).toThrow(/margin/);
  });
});
