import { createHash } from 'node:crypto';

/** A stable 128-bit hash of the parts, as four unsigned 32-bit words (what faker.seed accepts). */
export function seedWords(...parts: Array<string | number>): number[] {
  const digest = createHash('sha256').update(parts.join('\u0000')).digest();
  return [digest.readUInt32LE(0), digest.readUInt32LE(4), digest.readUInt32LE(8), digest.readUInt32LE(12)];
}

/** The one seeded PRNG of the project (sfc32 over the seed words): persona choices, picture looks and styles all draw from it, never from Math.random, so one seed gives the same result anywhere. */
export interface Random {
  /** [0, 1) */
  next(): number;
  int(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  chance(probability: number): boolean;
  /** Shuffled copy. */
  shuffle<T>(items: readonly T[]): T[];
}

export function createRandom(...parts: Array<string | number>): Random {
  let [a, b, c, d] = seedWords(...parts) as [number, number, number, number];
  const next = () => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next(); // let the state mix
  const random: Random = {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: <T>(items: readonly T[]) => items[Math.floor(next() * items.length)] as T,
    chance: (probability) => next() < probability,
    shuffle: <T>(items: readonly T[]) => {
      const out = [...items];
      for (let i = out.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [out[i], out[j]] = [out[j] as T, out[i] as T];
      }
      return out;
    },
  };
  return random;
}
