import type { PersonaData } from '@avatargen/core';
import type { RgbImage } from './png.js';

/**
 * The drawing: a head-and-shoulders figure on a coloured background, painted pixel by pixel.
 * The face (skin, hair, eyes, clothes) comes from the persona's identity only, so every picture
 * shows the same person; the pose and background come from the seed and the picture's index.
 * No colour is white or near white (every colour has a channel under 200), so an image
 * processor's trim and white-border crop leave the pictures whole.
 */

export type Rgb = [number, number, number];
export const PAINTER_STYLES = ['flat', 'stripes'] as const;
export type PainterStyle = (typeof PAINTER_STYLES)[number];

/** A small, seedable generator: FNV-1a over the parts, then mulberry32. */
export function random(...parts: Array<string | number>): () => number {
  let h = 0x811c9dc5;
  for (const ch of parts.join('\u0000')) {
    h ^= ch.codePointAt(0) as number;
    h = Math.imul(h, 0x01000193);
  }
  let state = h >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(next: () => number, list: readonly T[]): T => list[Math.floor(next() * list.length)] as T;

function hsl(h: number, s: number, l: number): Rgb {
  const hue = (((h % 360) + 360) % 360) / 360;
  const q = l < 0.5 ? l * (1 + s) : l + s - l * s;
  const p = 2 * l - q;
  const channel = (t: number) => {
    const x = t < 0 ? t + 1 : t > 1 ? t - 1 : t;
    if (x < 1 / 6) return p + (q - p) * 6 * x;
    if (x < 1 / 2) return q;
    if (x < 2 / 3) return p + (q - p) * (2 / 3 - x) * 6;
    return p;
  };
  return [channel(hue + 1 / 3), channel(hue), channel(hue - 1 / 3)].map((v) => Math.round(v * 255)) as Rgb;
}

const shade = (c: Rgb, factor: number): Rgb => c.map((v) => Math.max(0, Math.min(255, Math.round(v * factor)))) as Rgb;

const hex = (value: string): Rgb => [0, 2, 4].map((i) => Number.parseInt(value.slice(i, i + 2), 16)) as Rgb;
const SKIN = ['f1c27d', 'e0ac69', 'c68642', '8d5524', 'ffcf9e', 'd9a066', 'a86b3c', '6b3e1f'].map(hex);
const HAIR = ['2c1b18', '4a312c', '724133', 'a55728', 'b58143', 'c93305', '3b2a20'].map(hex);
const GREY_HAIR = ['9e9e9e', 'b0a9a2', '7d7873'].map(hex);
const EYES = ['2b1d14', '3a4a5c', '2f4a2a', '1e1e1e'].map(hex);

export type HairStyle = 'short' | 'long' | 'bun' | 'bald';

/** What stays the same in every picture of one persona. */
export interface Face {
  skin: Rgb;
  hair: Rgb;
  hairStyle: HairStyle;
  eyes: Rgb;
  shirt: Rgb;
  /** Hue of the backdrop of the base portrait. */
  studioHue: number;
  /** Head width relative to the average (0.9 to 1.1). */
  headWidth: number;
}

/** The identity a face is drawn from: name, gender, age and ethnicity (not the task), so it never drifts. */
export function identityOf(persona: Pick<PersonaData, 'firstName' | 'lastName' | 'gender' | 'age' | 'ethnicity'>): string {
  return [persona.firstName, persona.lastName, persona.gender, persona.age ?? '', persona.ethnicity].join('|');
}

export function faceOf(persona: Pick<PersonaData, 'firstName' | 'lastName' | 'gender' | 'age' | 'ethnicity'>): Face {
  const next = random('face', identityOf(persona));
  const age = persona.age ?? 35;
  const styles: HairStyle[] =
    persona.gender === 'f' ? ['long', 'long', 'bun', 'short'] : age >= 50 ? ['short', 'short', 'bald'] : ['short', 'short', 'long'];
  return {
    skin: pick(next, SKIN),
    hair: age >= 60 && next() < 0.7 ? pick(next, GREY_HAIR) : pick(next, HAIR),
    hairStyle: pick(next, styles),
    eyes: pick(next, EYES),
    shirt: hsl(next() * 360, 0.45 + next() * 0.25, 0.3 + next() * 0.2),
    studioHue: next() * 360,
    headWidth: 0.9 + next() * 0.2,
  };
}

/** Where the figure stands in one picture, and what is behind it. */
export interface Scene {
  background: Rgb;
  /** Horizontal centre of the figure, 0..1 of the width. */
  centre: number;
  /** Size of the figure (1: the head fills about a third of the height). */
  scale: number;
  /** The head leans left or right of the shoulders, in head widths. */
  lean: number;
  /** Stripe period in pixels at 256 px (style "stripes"). */
  stripe: number;
}

/** The base portrait: centred and upright on the persona's backdrop, its shade from the seed. */
export function baseScene(face: Face, seed: string): Scene {
  const next = random('base', seed);
  return {
    background: hsl(face.studioHue + (next() - 0.5) * 30, 0.35 + next() * 0.15, 0.58 + next() * 0.08),
    centre: 0.5,
    scale: 1,
    lean: 0,
    stripe: 18 + Math.floor(next() * 10),
  };
}

/** Picture `index` of a set: another backdrop, place, size and lean of the head. */
export function pictureScene(identity: string, seed: string, prompt: string, index: number): Scene {
  const next = random('picture', identity, seed, prompt, index);
  return {
    background: hsl(next() * 360, 0.4 + next() * 0.25, 0.42 + next() * 0.2),
    centre: 0.5 + (next() - 0.5) * 0.36,
    scale: 0.72 + next() * 0.36,
    lean: (next() - 0.5) * 0.5,
    stripe: 12 + Math.floor(next() * 20),
  };
}

class Canvas implements RgbImage {
  readonly pixels: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.pixels = new Uint8Array(width * height * 3);
  }

  set(x: number, y: number, c: Rgb): void {
    const o = (y * this.width + x) * 3;
    this.pixels[o] = c[0];
    this.pixels[o + 1] = c[1];
    this.pixels[o + 2] = c[2];
  }

  background(c: Rgb, stripe: number | null): void {
    const dark = shade(c, 0.82);
    for (let y = 0; y < this.height; y++) {
      for (let x = 0; x < this.width; x++) {
        this.set(x, y, stripe && Math.floor((x + y) / stripe) % 2 === 1 ? dark : c);
      }
    }
  }

  ellipse(cx: number, cy: number, rx: number, ry: number, c: Rgb): void {
    const x0 = Math.max(0, Math.floor(cx - rx));
    const x1 = Math.min(this.width - 1, Math.ceil(cx + rx));
    const y0 = Math.max(0, Math.floor(cy - ry));
    const y1 = Math.min(this.height - 1, Math.ceil(cy + ry));
    for (let y = y0; y <= y1; y++) {
      const dy = (y + 0.5 - cy) / ry;
      for (let x = x0; x <= x1; x++) {
        const dx = (x + 0.5 - cx) / rx;
        if (dx * dx + dy * dy <= 1) this.set(x, y, c);
      }
    }
  }

  rect(left: number, top: number, right: number, bottom: number, c: Rgb): void {
    const x0 = Math.max(0, Math.round(left));
    const x1 = Math.min(this.width, Math.round(right));
    const y0 = Math.max(0, Math.round(top));
    const y1 = Math.min(this.height, Math.round(bottom));
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) this.set(x, y, c);
  }
}

/** Paints one picture: the persona's figure in the scene, `size` pixels square. */
export function paint(face: Face, scene: Scene, size: number, style: PainterStyle): RgbImage {
  const canvas = new Canvas(size, size);
  canvas.background(scene.background, style === 'stripes' ? Math.max(4, Math.round((scene.stripe * size) / 256)) : null);
  const u = size * scene.scale; // the figure's unit
  const cx = size * scene.centre;
  const headW = 0.15 * u * face.headWidth;
  const hx = cx + scene.lean * headW;
  const hy = size - 0.62 * u;
  // Long hair falls behind the shoulders; then the shoulders, the neck, the head, the hair on top.
  if (face.hairStyle === 'long') {
    canvas.ellipse(hx, hy + 0.02 * u, headW * 1.3, 0.22 * u, face.hair);
    canvas.rect(hx - headW * 1.3, hy, hx + headW * 1.3, hy + 0.34 * u, face.hair);
  }
  canvas.ellipse(cx, size + 0.02 * u, 0.36 * u, 0.34 * u, face.shirt);
  canvas.ellipse(cx, size - 0.31 * u, 0.12 * u, 0.05 * u, shade(face.shirt, 0.75)); // collar
  canvas.rect(cx - 0.06 * u, hy + 0.1 * u, cx + 0.06 * u, size - 0.31 * u, shade(face.skin, 0.88));
  if (face.hairStyle === 'bun') canvas.ellipse(hx, hy - 0.21 * u, 0.07 * u, 0.065 * u, face.hair);
  if (face.hairStyle !== 'bald') canvas.ellipse(hx, hy - 0.05 * u, headW * 1.08, 0.17 * u, face.hair);
  canvas.ellipse(hx - headW, hy + 0.01 * u, 0.025 * u, 0.04 * u, shade(face.skin, 0.92)); // ears
  canvas.ellipse(hx + headW, hy + 0.01 * u, 0.025 * u, 0.04 * u, shade(face.skin, 0.92));
  canvas.ellipse(hx, hy + 0.02 * u, headW, 0.17 * u, face.skin);
  const eyeY = hy + 0.0 * u;
  canvas.ellipse(hx - 0.055 * u, eyeY, 0.022 * u, 0.016 * u, [236, 236, 190]);
  canvas.ellipse(hx + 0.055 * u, eyeY, 0.022 * u, 0.016 * u, [236, 236, 190]);
  canvas.ellipse(hx - 0.055 * u, eyeY, 0.012 * u, 0.013 * u, face.eyes);
  canvas.ellipse(hx + 0.055 * u, eyeY, 0.012 * u, 0.013 * u, face.eyes);
  canvas.rect(hx - 0.075 * u, eyeY - 0.045 * u, hx - 0.035 * u, eyeY - 0.035 * u, shade(face.hair, 0.8)); // brows
  canvas.rect(hx + 0.035 * u, eyeY - 0.045 * u, hx + 0.075 * u, eyeY - 0.035 * u, shade(face.hair, 0.8));
  canvas.ellipse(hx, hy + 0.05 * u, 0.012 * u, 0.02 * u, shade(face.skin, 0.8)); // nose
  canvas.ellipse(hx, hy + 0.1 * u, 0.045 * u, 0.013 * u, [150, 60, 60]); // mouth
  return canvas;
}
