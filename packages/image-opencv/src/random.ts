import { createHash } from 'node:crypto';

/**
 * Seeded randomness. Every random choice of the style step comes from here, never from
 * Math.random, so one seed always gives the same bytes (on any machine and Node version).
 */

/** Four 32-bit words from the SHA-256 of the text: a well-mixed generator state from any string. */
export function seedWords(text: string): [number, number, number, number] {
  const digest = createHash('sha256').update(text, 'utf8').digest();
  return [digest.readUInt32LE(0), digest.readUInt32LE(4), digest.readUInt32LE(8), digest.readUInt32LE(12)];
}

/** sfc32: a small, fast generator with a 128-bit state; returns floats in [0, 1). */
export function seededRandom(seed: string): () => number {
  let [a, b, c, d] = seedWords(seed);
  const next = () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  // the first outputs of sfc32 are still close to the seed words: skip them
  for (let i = 0; i < 12; i++) next();
  return next;
}
