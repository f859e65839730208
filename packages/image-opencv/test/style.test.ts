import { neutralStyle, STYLE_PRESETS } from '@avatargen/core';
import { describe, expect, it } from 'vitest';
import { chooseStyle, PRESETS, renderStyle } from '../src/style.js';
import { noise, rawImage } from './helpers.js';

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
  const plain = neutralStyle('p');
  // the WebAssembly path returns a view into its memory: copy before the next call
  const render = (...args: Parameters<typeof renderStyle>) => Buffer.from(renderStyle(...args));

  it('is the identity with neutral parameters, on both engines', () => {
    expect(render(image, rect, plain, undefined, 'wasm').equals(Buffer.from(image.data))).toBe(true);
    expect(render(image, rect, plain, undefined, 'js').equals(Buffer.from(image.data))).toBe(true);
  });

  it('is byte-identical for the same parameters, and the grain follows the seed', () => {
    const grainy = { ...plain, grainSigma: 6, sharpenAmount: 0.5, vignetteStrength: 0.15 };
    const a = render(image, rect, grainy);
    expect(render(image, rect, grainy).equals(a)).toBe(true);
    expect(render(image, rect, { ...grainy, seed: 'q' }).equals(a)).toBe(false);
  });

  it('gives the same bytes with WebAssembly and with JavaScript, for every shape and parameter', () => {
    const random = noise(11);
    const photo = rawImage(300, 200, (x, y) => [
      Math.round(random() * 255),
      (x * 3 + y) % 256,
      Math.round(128 + 120 * Math.sin((x + y) / 9)),
    ]);
    const rects = [
      { x: 0, y: 0, width: 300, height: 200 },
      { x: 17, y: 9, width: 1, height: 40 },
      { x: 5, y: 5, width: 40, height: 1 },
      { x: 299, y: 199, width: 1, height: 1 },
      { x: 3, y: 4, width: 5, height: 6 },
      { x: 10, y: 20, width: 129, height: 77 },
      { x: 1, y: 2, width: 130, height: 3 },
      { x: 0, y: 0, width: 2, height: 2 },
    ];
    for (let i = 0; i < 40; i++) {
      const params = chooseStyle(`engines-${i}`);
      const r = rects[i % rects.length]!;
      const wasm = render(photo, r, params, undefined, 'wasm');
      const js = render(photo, r, params, undefined, 'js');
      expect(wasm.length).toBe(r.width * r.height * 3);
      expect(wasm.equals(js), `${JSON.stringify(params)} on ${JSON.stringify(r)}`).toBe(true);
    }
  });

  it('renders into a reused target on the JavaScript path', () => {
    const params = { ...plain, blurSigma: 0.5, grainSigma: 4 };
    const target = new Uint8Array(64 * 48 * 3 + 100).fill(7);
    const out = renderStyle(image, rect, params, target, 'js');
    expect(out.buffer).toBe(target.buffer);
    expect(Buffer.from(out).equals(render(image, rect, params, undefined, 'wasm'))).toBe(true);
  });
});
