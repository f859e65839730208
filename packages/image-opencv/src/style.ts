// The worker imports this module: core's light entry only, never the ORM.
import { createRandom, type StyleParams, type StylePreset, seedWords } from '@avatargen/core/domain';
import { GRAIN_BITS, GRAIN_MASK, type KernelCoefficients, kernelFits, runJs, runKernel } from './kernel.js';
import type { RawImage, Rect } from './pixels.js';

/**
 * The style step: a colour preset, contrast, a light blur or an unsharp mask, film grain and a
 * vignette, all chosen from the seed. The pixel work is one pass over raw RGB (kernel.ts); only
 * the JPEG encoding is left to sharp.
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
  const { next: random } = createRandom(`style:${seed}`);
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

/** Standard deviation of the sum of four uniform bytes (Irwin-Hall, n = 4, scaled to 0-255). */
const IRWIN_HALL_SD = Math.sqrt((4 * (256 * 256 - 1)) / 12);
let sharedGrain: Int16Array | undefined;

/**
 * 2^20 approximately Gaussian values (the sum of the four bytes of a mulberry32 output, minus its
 * mean), made once per thread from a fixed seed with integer arithmetic only, so every machine
 * builds the same table. A picture reads a seed-chosen stretch of it: one load per pixel instead
 * of a generator step, and a 1024 x 1024 picture still never sees a value twice.
 */
export function grainTable(): Int16Array {
  if (sharedGrain) return sharedGrain;
  const table = new Int16Array(1 << GRAIN_BITS);
  let state = (seedWords('avatargen grain table')[0] as number) | 0;
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

/** Every number the pass needs for these parameters on a picture of this size, as float32. */
export function coefficients(params: StyleParams, width: number, height: number): KernelCoefficients {
  const f = Math.fround;
  // filter: F = S + lambda * (gaussian(luma) - luma); lambda 1 blurs, -amount sharpens
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
  // colour: contrast c around 128 applied after the preset's affine transform
  const { matrix, offset } = PRESET_TRANSFORMS[params.preset];
  const c = params.contrast;
  const colour = new Float32Array(12);
  for (let i = 0; i < 9; i++) colour[i] = (matrix[i] as number) * c;
  for (let i = 0; i < 3; i++) colour[9 + i] = c * (offset[i] as number) + 128 * (1 - c);
  // vignette: 1 - s * d^2 with d = 1 in the corners; d^2 splits into a column and a row term
  const strength = params.vignetteStrength ?? 0;
  const cx = (width - 1) / 2 || 1;
  const cy = (height - 1) / 2 || 1;
  const vx = new Float32Array(width);
  // plain products, not **: they are exact IEEE operations on every engine version
  for (let x = 0; x < width; x++) {
    const t = (x - cx) / cx;
    vx[x] = (strength * t * t) / 2;
  }
  const grain = params.grainSigma ?? 0;
  return {
    colour,
    lambda: f(lambda),
    center: f(1 - 2 * side),
    side: f(side),
    filtered: side > 0,
    grainScale: f(grain / IRWIN_HALL_SD),
    vx,
    vy: (y) => {
      const t = (y - cy) / cy;
      return f(1 - (strength * t * t) / 2);
    },
    grain: grainTable(),
    // grain: a seed-chosen stretch of the shared table, row after row
    grainStart: (seedWords(`grain:${params.seed}`)[0] as number) & GRAIN_MASK,
  };
}

/**
 * Renders `params` on the `rect` of a raw RGB image into a tightly packed RGB buffer.
 *
 * Order: blur or unsharp mask, colour preset and contrast (one affine transform, contrast around
 * mid grey), grain (one Gaussian value per pixel, the same on all channels), vignette (darkening
 * towards the corners), round half to even and clamp.
 *
 * Blur and unsharp mask work on luma, as photo tools (and sharp's own sharpen) do: the 3x3
 * Gaussian of the luma is compared with the luma and the difference, scaled, is added to all
 * three channels. Chroma detail would be halved by the JPEG's 4:2:0 subsampling anyway.
 *
 * The WebAssembly kernel returns a view into its own memory, valid until the next call on this
 * thread; the JavaScript path (for very large pictures) writes into `target` when it is large
 * enough. `engine` forces one of them (tests compare the two).
 */
export function renderStyle(
  source: RawImage,
  rect: Rect,
  params: StyleParams,
  target?: Uint8Array,
  engine: 'auto' | 'wasm' | 'js' = 'auto',
): Uint8Array {
  const c = coefficients(params, rect.width, rect.height);
  const useKernel = engine === 'wasm' || (engine === 'auto' && kernelFits(rect));
  return useKernel ? runKernel(source, rect, c) : runJs(source, rect, c, target);
}
