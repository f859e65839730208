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
 *
 * Order: blur or unsharp mask, colour preset and contrast (one affine transform, contrast around
 * mid grey), grain (one Gaussian value per pixel, same on all channels, from the seed), vignette
 * (darkening towards the corners), round and clamp.
 *
 * Blur and unsharp mask work on luma, as photo tools (and sharp's own sharpen) do: the 3x3
 * Gaussian of the luma is compared with the luma and the difference, scaled, is added to all
 * three channels. Chroma detail would be halved by the JPEG's 4:2:0 subsampling anyway, and
 * filtering one plane instead of three keeps the pass fast.
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

  // filter: F = S + lambda * (gaussian(Y) - Y), lambda 1 blurs, -amount sharpens
  let side = 0;
  let lambda = 0;
  if (params.blurSigma !== null && params.blurSigma > 0) {
    const k = Math.exp(-1 / (2 * params.blurSigma * params.blurSigma));
    side = k / (1 + 2 * k);
    lambda = 1;
  } else if (params.sharpenAmount !== null && params.sharpenAmount > 0) {
    const k = Math.exp(-1 / (2 * SHARPEN_SIGMA * SHARPEN_SIGMA));
    side = k / (1 + 2 * k);
    lambda = -params.sharpenAmount;
  }
  const filtered = side > 0;
  const center = 1 - 2 * side;

  // colour: contrast c around 128 applied after the preset's affine transform
  const { matrix, offset } = PRESET_TRANSFORMS[params.preset];
  const c = params.contrast;
  const k = new Float64Array(16);
  for (let i = 0; i < 9; i++) k[i] = (matrix[i] as number) * c;
  for (let i = 0; i < 3; i++) k[9 + i] = c * (offset[i] as number) + 128 * (1 - c);
  k[12] = lambda;
  k[13] = center;
  k[14] = side;

  // vignette: 1 - s * d^2 with d = 1 in the corners; d^2 splits into a column and a row term
  const strength = params.vignetteStrength ?? 0;
  const vx = new Float64Array(w);
  const cx = (w - 1) / 2 || 1;
  const cy = (h - 1) / 2 || 1;
  for (let x = 0; x < w; x++) vx[x] = (strength * ((x - cx) / cx) ** 2) / 2;

  // grain: a seed-chosen stretch of the shared noise table, row after row
  const grain = params.grainSigma ?? 0;
  const table = grain > 0 ? grainTable() : undefined;
  const grainScale = grain / IRWIN_HALL_SD;
  const grainStart = seedWords(`grain:${params.seed}`)[0] & GRAIN_MASK;
  const noise = new Float64Array(w);

  // three horizontally filtered luma rows (above, current, below), rotated as we go down
  let above = new Float64Array(w);
  let current = new Float64Array(w);
  let below = new Float64Array(w);
  const rowStart = (y: number) => (y0 + y) * stride + x0 * 3;
  if (filtered) {
    filteredLuma(src, rowStart(0), w, center, side, current);
    above.set(current);
    if (h > 1) filteredLuma(src, rowStart(1), w, center, side, below);
    else below.set(current);
  }

  for (let y = 0; y < h; y++) {
    if (table) fillNoise(noise, w, table, (grainStart + y * w) & GRAIN_MASK, grainScale);
    const vy = 1 - (strength * ((y - cy) / cy) ** 2) / 2;
    if (filtered) styleRowFiltered(src, rowStart(y), above, current, below, noise, vx, vy, k, clamped, y * rowLength, w);
    else styleRow(src, rowStart(y), noise, vx, vy, k, clamped, y * rowLength, w);
    if (filtered && y + 1 < h) {
      const spare = above;
      above = current;
      current = below;
      below = spare;
      if (y + 2 < h) filteredLuma(src, rowStart(y + 2), w, center, side, below);
      else below.set(current);
    }
  }
  return out;
}

const LR = LUMA[0];
const LG = LUMA[1];
const LB = LUMA[2];

/** Horizontal 3-tap filter of one row's luma (edges replicated) into `dst`. */
function filteredLuma(src: Uint8Array, base: number, w: number, center: number, side: number, dst: Float64Array): void {
  if (w === 1) {
    dst[0] = LR * (src[base] as number) + LG * (src[base + 1] as number) + LB * (src[base + 2] as number);
    return;
  }
  // one pass: the luma of pixel x + 1 completes the filter of pixel x
  let left = LR * (src[base] as number) + LG * (src[base + 1] as number) + LB * (src[base + 2] as number);
  let middle = left;
  for (let x = 0, s = base + 3; x < w - 1; x++, s += 3) {
    const right = LR * (src[s] as number) + LG * (src[s + 1] as number) + LB * (src[s + 2] as number);
    dst[x] = center * middle + side * (left + right);
    left = middle;
    middle = right;
  }
  dst[w - 1] = center * middle + side * (left + middle);
}

/** Standard deviation of the sum of four uniform bytes (Irwin-Hall, n = 4, scaled to 0-255). */
const IRWIN_HALL_SD = Math.sqrt((4 * (256 * 256 - 1)) / 12);
const GRAIN_BITS = 20;
const GRAIN_MASK = (1 << GRAIN_BITS) - 1;
let sharedGrain: Int16Array | undefined;

/**
 * 2^20 approximately Gaussian values (the sum of the four bytes of a mulberry32 output, minus its
 * mean), made once per thread from a fixed seed with integer arithmetic only, so every machine
 * builds the same table. A cell reads a seed-chosen stretch of it: one load per pixel instead of
 * a generator step, and a 1024 x 1024 image still never sees a value twice.
 */
export function grainTable(): Int16Array {
  if (sharedGrain) return sharedGrain;
  const table = new Int16Array(1 << GRAIN_BITS);
  let state = seedWords('avatargen grain table')[0] | 0;
  for (let i = 0; i < table.length; i++) {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    t = (t ^ (t >>> 14)) >>> 0;
    table[i] = (t & 255) + ((t >>> 8) & 255) + ((t >>> 16) & 255) + (t >>> 24) - 510;
  }
  sharedGrain = table;
  return table;
}

/** One row of grain from the table, starting at `start` (wrapping at the end). */
function fillNoise(noise: Float64Array, n: number, table: Int16Array, start: number, scale: number): void {
  for (let x = 0; x < n; x++) noise[x] = (table[(start + x) & GRAIN_MASK] as number) * scale;
}

/** Colour transform, grain and vignette for one row; the clamped array rounds and clamps. */
function styleRow(
  src: Uint8Array,
  s0: number,
  noise: Float64Array,
  vx: Float64Array,
  vy: number,
  k: Float64Array,
  out: Uint8ClampedArray,
  o0: number,
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
  const a0 = k[9] as number;
  const a1 = k[10] as number;
  const a2 = k[11] as number;
  for (let x = 0, s = s0, o = o0; x < w; x++, s += 3, o += 3) {
    const r = src[s] as number;
    const g = src[s + 1] as number;
    const b = src[s + 2] as number;
    const n = noise[x] as number;
    const v = vy - (vx[x] as number);
    out[o] = (m0 * r + m1 * g + m2 * b + a0 + n) * v;
    out[o + 1] = (m3 * r + m4 * g + m5 * b + a1 + n) * v;
    out[o + 2] = (m6 * r + m7 * g + m8 * b + a2 + n) * v;
  }
}

/** styleRow with the luma blur or unsharp mask folded in. */
function styleRowFiltered(
  src: Uint8Array,
  s0: number,
  above: Float64Array,
  current: Float64Array,
  below: Float64Array,
  noise: Float64Array,
  vx: Float64Array,
  vy: number,
  k: Float64Array,
  out: Uint8ClampedArray,
  o0: number,
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
  const a0 = k[9] as number;
  const a1 = k[10] as number;
  const a2 = k[11] as number;
  const lambda = k[12] as number;
  const center = k[13] as number;
  const side = k[14] as number;
  for (let x = 0, s = s0, o = o0; x < w; x++, s += 3, o += 3) {
    const r0 = src[s] as number;
    const g0 = src[s + 1] as number;
    const b0 = src[s + 2] as number;
    const y = LR * r0 + LG * g0 + LB * b0;
    const blurred = center * (current[x] as number) + side * ((above[x] as number) + (below[x] as number));
    const d = lambda * (blurred - y);
    const r = r0 + d;
    const g = g0 + d;
    const b = b0 + d;
    const n = noise[x] as number;
    const v = vy - (vx[x] as number);
    out[o] = (m0 * r + m1 * g + m2 * b + a0 + n) * v;
    out[o + 1] = (m3 * r + m4 * g + m5 * b + a1 + n) * v;
    out[o + 2] = (m6 * r + m7 * g + m8 * b + a2 + n) * v;
  }
}
