import type { StyleParams } from '../ports.js';

/** The look that changes nothing: natural colours, contrast 1, no blur, sharpening, grain or vignette. */
export function neutralStyle(seed: string, jpegQuality = 90): StyleParams {
  return {
    seed,
    preset: 'natural',
    contrast: 1,
    blurSigma: null,
    sharpenAmount: null,
    grainSigma: null,
    vignetteStrength: null,
    jpegQuality,
  };
}
