import type { StyleParams, StylePreset } from '@avatargen/core';
import { seededRandom, seedWords } from './random.js';
import type { RawImage, Rect } from './pixels.js';

/**
 * The style step: a colour preset, contrast, a light blur or an unsharp mask, film grain and a
 * vignette, all chosen from the seed. The pixel work is one fused pass over raw RGB (JS is fast
 * enough for it and keeps the result byte-exact); only the JPEG encoding is left to sharp.
 *
 * This module runs inside the pool's worker threads, so it imports nothing from core at runtime.
 */

/** Same order as STYLE_PRESETS in core (a test checks they match). */
export const PRESETS = ['natural', 'warm', 'cool', 'matte', 'punchy', 'desaturated'] as const satisfies readonly StylePreset[];

/** Sigma of the Gaussian that the unsharp mask subtracts (a 3x3 neighbourhood). */
export const SHARPEN_SIGMA = 1;

const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;
const between = (low: number, high: number, t: number) => low + (high - low) * t;

/**
 * The parameters for a seed. Every draw is made whatever the branches decide, so one choice
 * never shifts the others. Values are rounded to what is stored, and rendering uses the
 * rounded values, so stored parameters replay to the same bytes.
 */
export function chooseStyle(seed: string): StyleParams {
  const random = seededRandom(`style:${seed}`);
  const presetDraw = random();
  const contrastBand = random();
  const contrastDraw = random();
  const filterKind = random();
  const filterDraw = random();
  const grainOn = random();
  const grainDraw = random();
  const vignetteOn = random();
  const vignetteDraw = random();
  const qualityDraw = random();
  const useBlur = filterKind < 0.5;
  return {
    seed,
    preset: PRESETS[Math.floor(presetDraw * PRESETS.length)] as StylePreset,
    // 70% of the time a gentle boost, otherwise anywhere in the full range
    contrast: round(contrastBand < 0.7 ? between(1.05, 1.12, contrastDraw) : between(0.95, 1.15, contrastDraw), 3),
    blurSigma: useBlur ? round(between(0.3, 0.7, filterDraw), 3) : null,
    sharpenAmount: useBlur ? null : round(between(0.4, 0.7, filterDraw), 3),
    grainSigma: grainOn < 0.6 ? round(between(3, 8, grainDraw), 2) : null,
    vignetteStrength: vignetteOn < 0.5 ? round(between(0.12, 0.18, vignetteDraw), 3) : null,
    jpegQuality: 78 + Math.floor(qualityDraw * 18),
  };
}

type Matrix = [number, number, number, number, number, number, number, number, number];

const LUMA = [0.299, 0.587, 0.114] as const;

/** Saturation change that keeps luma (s = 0: grey, 1: unchanged, > 1: more colourful). */
function saturation(s: number): Matrix {
  const m: number[] = [];
  for (let row = 0; row < 3; row++) {
    for (let col = 0; col < 3; col++) m.push((1 - s) * (LUMA[col] as number) + (row === col ? s : 0));
  }
  return m as Matrix;
}

const scale = (m: Matrix, k: number) => m.map((v) => v * k) as Matrix;

/** Each preset as out = M * rgb + offset, in 0-255 units. */
export const PRESET_TRANSFORMS: Record<StylePreset, { matrix: Matrix; offset: [number, number, number] }> = {
  natural: { matrix: [1, 0, 0, 0, 1, 0, 0, 0, 1], offset: [0, 0, 0] },
  // more red and a little green, less blue: golden light
  warm: { matrix: [1.06, 0, 0, 0, 1.01, 0, 0, 0, 0.9], offset: [8, 3, -4] },
  cool: { matrix: [0.92, 0, 0, 0, 1, 0, 0, 0, 1.06], offset: [-4, 2, 8] },
  // faded film: lifted blacks, lowered whites, a little less colour
  matte: { matrix: scale(saturation(0.85), 0.86), offset: [20, 20, 20] },
  // more colour and a touch more contrast around mid grey
  punchy: { matrix: scale(saturation(1.3), 1.06), offset: [-7.68, -7.68, -7.68] },
  desaturated: { matrix: saturation(0.55), offset: [0, 0, 0] },
};

/**
 * Renders `params` on the `rect` of a raw RGB image into a tightly packed RGB buffer (`target`
 * when it is large enough, else a new one).
 * Order: blur or unsharp mask (3x3, edges replicated), colour preset and contrast (one affine
 * transform, contrast around mid grey), grain (one Gaussian value per pixel, same on all
 * channels, from the seed), vignette (darkening towards the corners), round and clamp.
 *
 * Hot loops live in small top-level functions over plain locals: V8 compiles those to tight
 * machine code, while closures and branchy loops cost it several times over.
 */
export function renderStyle(source: RawImage, rect: Rect, params: StyleParams, target?: Uint8Array): Uint8Array {
  const { data: src, width: srcWidth } = source;
  const { x: x0, y: y0, width: w, height: h } = rect;
  const stride = srcWidth * 3;
  const rowLength = w * 3;
  const size = rowLength * h;
  // a reused target saves the page faults of fresh memory on every cell
  const out = target && target.byteLength >= size ? target.subarray(0, size) : new Uint8Array(size);
  const clamped = new Uint8ClampedArray(out.buffer, out.byteOffset, size);

  // filter: F = keep * source + blurWeight * blurred, with a separable 3-tap Gaussian
  let side = 0;
  let keep = 0;
  let blurWeight = 1;
  if (params.blurSigma !== null && params.blurSigma > 0) {
    const k = Math.exp(-1 / (2 * params.blurSigma * params.blurSigma));
    side = k / (1 + 2 * k);
  } else if (params.sharpenAmount !== null && params.sharpenAmount > 0) {
    const k = Math.exp(-1 / (2 * SHARPEN_SIGMA * SHARPEN_SIGMA));
    side = k / (1 + 2 * k);
    keep = 1 + params.sharpenAmount;
    blurWeight = -params.sharpenAmount;
  }
  const filtered = side > 0;
  const center = 1 - 2 * side;

  // colour: contrast c around 128 applied after the preset's affine transform
  const { matrix, offset } = PRESET_TRANSFORMS[params.preset];
  const c = params.contrast;
  const colour = new Float64Array(12);
  for (let i = 0; i < 9; i++) colour[i] = (matrix[i] as number) * c;
  for (let i = 0; i < 3; i++) colour[9 + i] = c * (offset[i] as number) + 128 * (1 - c);

  // vignette: 1 - s * d^2 with d = 1 in the corners; d^2 splits into a column and a row term
  const strength = params.vignetteStrength ?? 0;
  const vx = new Float64Array(w);
  const cx = (w - 1) / 2 || 1;
  const cy = (h - 1) / 2 || 1;
  for (let x = 0; x < w; x++) vx[x] = (strength * ((x - cx) / cx) ** 2) / 2;

  const grain = params.grainSigma ?? 0;
  const grainScale = grain / 147.8; // standard deviation of the sum of four uniform bytes
  let state = seedWords(`grain:${params.seed}`)[0] | 0;
  const noise = new Float64Array(w);

  // three horizontally filtered rows (above, current, below) rotated as we go down
  let above = new Float64Array(rowLength);
  let current = new Float64Array(rowLength);
  let below = new Float64Array(rowLength);
  const row = new Float64Array(rowLength);
  const rowStart = (y: number) => (y0 + y) * stride + x0 * 3;
  if (filtered) {
    filterRow(src, rowStart(0), rowLength, center, side, current);
    above.set(current);
    if (h > 1) filterRow(src, rowStart(1), rowLength, center, side, below);
    else below.set(current);
  }

  for (let y = 0; y < h; y++) {
    const start = rowStart(y);
    if (filtered) combineRows(src, start, rowLength, above, current, below, center, side, keep, blurWeight, row);
    else copyRow(src, start, rowLength, row);
    if (grain > 0) state = fillNoise(noise, w, state, grainScale);
    const vy = 1 - (strength * ((y - cy) / cy) ** 2) / 2;
    colourRow(row, noise, vx, vy, colour, clamped, y * rowLength, w);
    if (filtered && y + 1 < h) {
      const spare = above;
      above = current;
      current = below;
      below = spare;
      if (y + 2 < h) filterRow(src, rowStart(y + 2), rowLength, center, side, below);
      else below.set(current);
    }
  }
  return out;
}

/** Horizontal 3-tap filter of one row, edges replicated. */
function filterRow(src: Uint8Array, base: number, n: number, center: number, side: number, dst: Float64Array): void {
  if (n === 3) {
    dst[0] = src[base] as number;
    dst[1] = src[base + 1] as number;
    dst[2] = src[base + 2] as number;
    return;
  }
  for (let ch = 0; ch < 3; ch++) {
    const first = src[base + ch] as number;
    dst[ch] = center * first + side * (first + (src[base + 3 + ch] as number));
    const l = base + n - 3 + ch;
    const last = src[l] as number;
    dst[n - 3 + ch] = center * last + side * (last + (src[l - 3] as number));
  }
  const end = n - 3;
  for (let i = 3; i < end; i++) {
    const s = base + i;
    dst[i] = center * (src[s] as number) + side * ((src[s - 3] as number) + (src[s + 3] as number));
  }
}

/** Vertical 3-tap filter of the three filtered rows, mixed with the source for the unsharp mask. */
function combineRows(
  src: Uint8Array,
  base: number,
  n: number,
  above: Float64Array,
  current: Float64Array,
  below: Float64Array,
  center: number,
  side: number,
  keep: number,
  blurWeight: number,
  dst: Float64Array,
): void {
  for (let i = 0; i < n; i++) {
    const blurred = center * (current[i] as number) + side * ((above[i] as number) + (below[i] as number));
    dst[i] = keep * (src[base + i] as number) + blurWeight * blurred;
  }
}

function copyRow(src: Uint8Array, base: number, n: number, dst: Float64Array): void {
  for (let i = 0; i < n; i++) dst[i] = src[base + i] as number;
}

/**
 * Grain for one row: mulberry32 outputs, each turned into an approximately Gaussian value by
 * summing its four bytes (Irwin-Hall). Returns the generator state for the next row.
 */
function fillNoise(noise: Float64Array, n: number, seedState: number, scale: number): number {
  let state = seedState;
  for (let x = 0; x < n; x++) {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    t = (t ^ (t >>> 14)) >>> 0;
    noise[x] = ((t & 255) + ((t >>> 8) & 255) + ((t >>> 16) & 255) + (t >>> 24) - 510) * scale;
  }
  return state;
}

/** Colour transform, grain and vignette for one row; the clamped array rounds and clamps. */
function colourRow(
  row: Float64Array,
  noise: Float64Array,
  vx: Float64Array,
  vy: number,
  k: Float64Array,
  out: Uint8ClampedArray,
  o: number,
  w: number,
): void {
  const m0 = k[0] as number;
  const m1 = k[1] as number;
  const m2 = k[2] as number;
  const m3 = k[3] as number;
  const m4 = k[4] as number;
  const m5 = k[5] as number;
  const m6 = k[6] as number;
  const m7 = k[7] as number;
  const m8 = k[8] as number;
  const o0 = k[9] as number;
  const o1 = k[10] as number;
  const o2 = k[11] as number;
  for (let x = 0, i = 0; x < w; x++, i += 3) {
    const r = row[i] as number;
    const g = row[i + 1] as number;
    const b = row[i + 2] as number;
    const n = noise[x] as number;
    const v = vy - (vx[x] as number);
    out[o + i] = (m0 * r + m1 * g + m2 * b + o0 + n) * v;
    out[o + i + 1] = (m3 * r + m4 * g + m5 * b + o1 + n) * v;
    out[o + i + 2] = (m6 * r + m7 * g + m8 * b + o2 + n) * v;
  }
}
