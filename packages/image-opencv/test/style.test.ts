import { STYLE_PRESETS } from '@avatargen/core';
import { describe, expect, it } from 'vitest';
import { chooseStyle, PRESETS, renderStyle } from '../src/style.js';
import { rawImage } from './helpers.js';

describe('chooseStyle', () => {
  it('uses the presets of core, in order', () => {
    expect([...PRESETS]).toEqual([...STYLE_PRESETS]);
  });

  it('gives the same parameters for the same seed and different ones for other seeds', () => {
    expect(chooseStyle('persona-1:0')).toEqual(chooseStyle('persona-1:0'));
    const distinct = new Set(Array.from({ length: 50 }, (_, i) => JSON.stringify({ ...chooseStyle(`s${i}`), seed: '' })));
    expect(distinct.size).toBe(50);
  });

  it('draws every parameter from its range with the documented odds', () => {
    const all = Array.from({ length: 4000 }, (_, i) => chooseStyle(`seed-${i}`));
    const share = (test: (p: (typeof all)[number]) => boolean) => all.filter(test).length / all.length;
    for (const p of all) {
      expect(p.contrast).toBeGreaterThanOrEqual(0.95);
      expect(p.contrast).toBeLessThanOrEqual(1.15);
      expect((p.blurSigma === null) !== (p.sharpenAmount === null)).toBe(true);
      if (p.blurSigma !== null) expect(p.blurSigma >= 0.3 && p.blurSigma <= 0.7).toBe(true);
      if (p.sharpenAmount !== null) expect(p.sharpenAmount >= 0.4 && p.sharpenAmount <= 0.7).toBe(true);
      if (p.grainSigma !== null) expect(p.grainSigma >= 3 && p.grainSigma <= 8).toBe(true);
      if (p.vignetteStrength !== null) expect(p.vignetteStrength >= 0.12 && p.vignetteStrength <= 0.18).toBe(true);
      expect(Number.isInteger(p.jpegQuality) && p.jpegQuality >= 78 && p.jpegQuality <= 95).toBe(true);
    }
    // 70% in the gentle band, plus the share of the full range that falls in it (0.3 * 0.35)
    expect(share((p) => p.contrast >= 1.05 && p.contrast <= 1.12)).toBeCloseTo(0.7 + 0.3 * 0.35, 1);
    expect(share((p) => p.blurSigma !== null)).toBeCloseTo(0.5, 1);
    expect(share((p) => p.grainSigma !== null)).toBeCloseTo(0.6, 1);
    expect(share((p) => p.vignetteStrength !== null)).toBeCloseTo(0.5, 1);
    expect(new Set(all.map((p) => p.preset))).toEqual(new Set(STYLE_PRESETS));
    expect(new Set(all.map((p) => p.jpegQuality)).size).toBe(18);
  });
});

describe('renderStyle', () => {
  const image = rawImage(64, 48, (x, y) => [(x * 4) % 256, (y * 5) % 256, 128]);
  const rect = { x: 0, y: 0, width: 64, height: 48 };
  const plain = { seed: 'p', preset: 'natural' as const, contrast: 1, blurSigma: null, sharpenAmount: null, grainSigma: null, vignetteStrength: null, jpegQuality: 90 };

  it('is the identity with neutral parameters', () => {
    expect(Buffer.from(renderStyle(image, rect, plain)).equals(Buffer.from(image.data))).toBe(true);
  });

  it('is byte-identical for the same parameters, and the grain follows the seed', () => {
    const grainy = { ...plain, grainSigma: 6, sharpenAmount: 0.5, vignetteStrength: 0.15 };
    const a = renderStyle(image, rect, grainy);
    expect(Buffer.from(renderStyle(image, rect, grainy)).equals(Buffer.from(a))).toBe(true);
    expect(Buffer.from(renderStyle(image, rect, { ...grainy, seed: 'q' })).equals(Buffer.from(a))).toBe(false);
  });

  it('renders into a reused target the same as into a new buffer', () => {
    const params = { ...plain, blurSigma: 0.5, grainSigma: 4 };
    const target = new Uint8Array(64 * 48 * 3 + 100).fill(7);
    expect(Buffer.from(renderStyle(image, rect, params, target)).equals(Buffer.from(renderStyle(image, rect, params)))).toBe(true);
  });

  it('handles one-pixel-wide and one-pixel-high rectangles', () => {
    for (const r of [
      { x: 5, y: 0, width: 1, height: 48 },
      { x: 0, y: 7, width: 64, height: 1 },
      { x: 3, y: 3, width: 1, height: 1 },
    ]) {
      const out = renderStyle(image, r, { ...plain, blurSigma: 0.6, vignetteStrength: 0.15 });
      expect(out.length).toBe(r.width * r.height * 3);
    }
  });
});
