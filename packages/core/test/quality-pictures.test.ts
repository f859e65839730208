import { describe, expect, it } from 'vitest';
import { type HashedPicture, hammingDistance, similarPictures, ValidationError } from '../src/index.js';

/** Deterministic 32-bit words (no Math.random: failures must be reproducible). */
function words(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    // the high bits of an LCG are the good ones: mix two draws
    const high = state >>> 16;
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return ((high << 16) | (state >>> 16)) >>> 0;
  };
}

const hex = (high: number, low: number) => high.toString(16).padStart(8, '0') + low.toString(16).padStart(8, '0');

/** The hash with the given bits (0 = most significant) flipped. */
function flip(hash: string, bits: number[]): string {
  let high = Number.parseInt(hash.slice(0, 8), 16);
  let low = Number.parseInt(hash.slice(8), 16);
  for (const bit of bits) {
    if (bit < 32) high = (high ^ (1 << (31 - bit))) >>> 0;
    else low = (low ^ (1 << (63 - bit))) >>> 0;
  }
  return hex(high >>> 0, low >>> 0);
}

/** Pictures of personas 1..personas, 'base' and 0..shots-1 each, with random hashes far apart. */
function dataset(personas: number, shots: number, seed = 7): HashedPicture[] {
  const next = words(seed);
  const pictures: HashedPicture[] = [];
  for (let personaId = 1; personaId <= personas; personaId++) {
    for (const idx of ['base' as const, ...Array.from({ length: shots }, (_, i) => i)]) {
      pictures.push({ personaId, idx, hash: hex(next(), next()) });
    }
  }
  return pictures;
}

const find = (pictures: HashedPicture[], personaId: number, idx: number | 'base') =>
  pictures.find((p) => p.personaId === personaId && p.idx === idx) as HashedPicture;

describe('hammingDistance', () => {
  it.each([
    ['0000000000000000', '0000000000000000', 0],
    ['0000000000000000', '0000000000000001', 1],
    ['8000000000000000', '0000000000000000', 1],
    ['0000000080000000', '0000000000000000', 1],
    ['00000001ffffffff', '0000000000000000', 33],
    ['ffffffffffffffff', '0000000000000000', 64],
    ['ffffffffffffffff', 'FFFFFFFFFFFFFFFF', 0],
    ['0123456789abcdef', '0000000000000000', 32],
    ['0123456789abcdef', 'fedcba9876543210', 64],
    ['5555555555555555', 'aaaaaaaaaaaaaaaa', 64],
    ['f0f0f0f0f0f0f0f0', 'f0f0f0f0f0f0f0f1', 1],
  ])('%s ~ %s is %i', (a, b, distance) => {
    expect(hammingDistance(a, b)).toBe(distance);
    expect(hammingDistance(b, a)).toBe(distance);
  });

  it('counts the flipped bits, wherever they are', () => {
    const base = '3c5a96e10f7b2d48';
    for (let bit = 0; bit < 64; bit++) expect(hammingDistance(base, flip(base, [bit])), `bit ${bit}`).toBe(1);
    expect(hammingDistance(base, flip(base, [0, 31, 32, 63]))).toBe(4);
  });

  it('refuses what is not 16 hex characters', () => {
    for (const bad of ['', '123', '0123456789abcdeg', '0123456789abcdef0', ' 0123456789abcde', 42 as unknown as string]) {
      expect(() => hammingDistance(bad, '0000000000000000'), String(bad)).toThrow(ValidationError);
      expect(() => hammingDistance('0000000000000000', bad), String(bad)).toThrow(ValidationError);
    }
  });
});

describe('similarPictures', () => {
  it('gives no pairs for a clean set of random hashes', () => {
    expect(similarPictures(dataset(40, 20))).toEqual({ acrossPersonas: [], withinPersona: [] });
    expect(similarPictures([])).toEqual({ acrossPersonas: [], withinPersona: [] });
  });

  it('finds the same face on two personas and wasted shots of one, with the right ids and distances', () => {
    const pictures = dataset(30, 20);
    // persona 12's shot 3 is persona 5's base, 4 bits off; persona 20's shot 7 is persona 9's shot 0 exactly
    find(pictures, 12, 3).hash = flip(find(pictures, 5, 'base').hash, [1, 17, 40, 63]);
    find(pictures, 20, 7).hash = find(pictures, 9, 0).hash;
    // persona 8's shots 2 and 11 are the same shot, 10 bits off (the limit); shot 15 is 11 off its base (just over)
    find(pictures, 8, 11).hash = flip(find(pictures, 8, 2).hash, [0, 5, 9, 14, 22, 30, 33, 41, 50, 58]);
    find(pictures, 8, 15).hash = flip(find(pictures, 8, 'base').hash, [0, 5, 9, 14, 22, 30, 33, 41, 50, 58, 61]);

    const result = similarPictures(pictures);
    expect(result.acrossPersonas).toEqual([
      { a: { personaId: 9, idx: 0 }, b: { personaId: 20, idx: 7 }, distance: 0 },
      { a: { personaId: 5, idx: 'base' }, b: { personaId: 12, idx: 3 }, distance: 4 },
    ]);
    expect(result.withinPersona).toEqual([{ a: { personaId: 8, idx: 2 }, b: { personaId: 8, idx: 11 }, distance: 10 }]);

    // a tighter limit drops the far pair; a looser one takes in the 11-bit one
    expect(similarPictures(pictures, { maxDistance: 9 }).withinPersona).toEqual([]);
    expect(similarPictures(pictures, { maxDistance: 11 }).withinPersona).toEqual([
      { a: { personaId: 8, idx: 2 }, b: { personaId: 8, idx: 11 }, distance: 10 },
      { a: { personaId: 8, idx: 'base' }, b: { personaId: 8, idx: 15 }, distance: 11 },
    ]);
    expect(similarPictures(pictures, { maxDistance: 0 }).acrossPersonas).toEqual([result.acrossPersonas[0]]);
  });

  it('orders each pair with base first, and a group of three as its three pairs', () => {
    const hash = 'a5a5a5a5a5a5a5a5';
    const pictures: HashedPicture[] = [
      { personaId: 2, idx: 10, hash },
      { personaId: 2, idx: 'base', hash: flip(hash, [3]) },
      { personaId: 2, idx: 9, hash: flip(hash, [3, 4]) },
      { personaId: 1, idx: 0, hash: '0f0f0f0f0f0f0f0f' },
    ];
    expect(similarPictures(pictures)).toEqual({
      acrossPersonas: [],
      withinPersona: [
        { a: { personaId: 2, idx: 'base' }, b: { personaId: 2, idx: 9 }, distance: 1 },
        { a: { personaId: 2, idx: 'base' }, b: { personaId: 2, idx: 10 }, distance: 1 },
        { a: { personaId: 2, idx: 9 }, b: { personaId: 2, idx: 10 }, distance: 2 },
      ],
    });
  });

  it('is deterministic: the same pictures in any order give the same result', () => {
    const pictures = dataset(25, 20, 3);
    // a cluster across three personas and a few inside ones
    const seedHash = find(pictures, 4, 1).hash;
    find(pictures, 17, 'base').hash = flip(seedHash, [2, 3]);
    find(pictures, 23, 6).hash = flip(seedHash, [2, 3, 44]);
    find(pictures, 11, 19).hash = flip(find(pictures, 11, 0).hash, [7]);
    find(pictures, 11, 5).hash = flip(find(pictures, 11, 0).hash, [8, 60]);
    const expected = similarPictures(pictures);
    expect(expected.acrossPersonas).toHaveLength(3);
    expect(expected.withinPersona).toHaveLength(3);
    const next = words(99);
    for (let round = 0; round < 5; round++) {
      const shuffled = [...pictures];
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = next() % (i + 1);
        [shuffled[i], shuffled[j]] = [shuffled[j] as HashedPicture, shuffled[i] as HashedPicture];
      }
      expect(similarPictures(shuffled)).toEqual(expected);
    }
    // sorted by distance, then a, then b
    const keys = expected.acrossPersonas.map((p) => p.distance);
    expect(keys).toEqual([...keys].sort((x, y) => x - y));
  });

  it('matches a plain all-pairs count with hammingDistance', () => {
    const pictures = dataset(6, 20, 11).map((p, i) => (i % 3 === 0 ? p : { ...p, hash: flip(p.hash, [i % 64]) }));
    // make many near pairs: every picture is one of 8 hashes with a few bits flipped
    const roots = dataset(1, 7, 5).map((p) => p.hash);
    for (const [i, p] of pictures.entries()) p.hash = flip(roots[i % roots.length] as string, [i % 64, (i * 7) % 64]);
    const result = similarPictures(pictures, { maxDistance: 12 });
    let across = 0;
    let within = 0;
    for (const [i, a] of pictures.entries()) {
      for (const b of pictures.slice(i + 1)) {
        if (hammingDistance(a.hash, b.hash) > 12) continue;
        if (a.personaId === b.personaId) within++;
        else across++;
      }
    }
    expect(across).toBeGreaterThan(0);
    expect(within).toBeGreaterThan(0);
    expect([result.acrossPersonas.length, result.withinPersona.length]).toEqual([across, within]);
    for (const pair of [...result.acrossPersonas, ...result.withinPersona]) {
      const a = find(pictures, pair.a.personaId, pair.a.idx);
      const b = find(pictures, pair.b.personaId, pair.b.idx);
      expect(pair.distance).toBe(hammingDistance(a.hash, b.hash));
    }
  });

  it('refuses a malformed hash, a picture twice and a maxDistance outside 0..64', () => {
    const good = { personaId: 1, idx: 0, hash: '0000000000000000' };
    expect(() => similarPictures([good, { ...good, idx: 1, hash: 'xyz' }])).toThrow(ValidationError);
    expect(() => similarPictures([good, { ...good }])).toThrow(/twice/);
    expect(() => similarPictures([{ ...good, idx: -1 }])).toThrow(ValidationError);
    expect(() => similarPictures([{ ...good, idx: 'first' as never }])).toThrow(ValidationError);
    expect(() => similarPictures([{ ...good, personaId: 1.5 }])).toThrow(ValidationError);
    for (const maxDistance of [-1, 65, 2.5, Number.NaN]) expect(() => similarPictures([good], { maxDistance })).toThrow(ValidationError);
  });

  it('handles 300 personas x 21 pictures quickly', () => {
    const pictures = dataset(300, 20, 13);
    find(pictures, 299, 20 - 1).hash = flip(find(pictures, 1, 'base').hash, [0, 63]);
    const started = performance.now();
    const result = similarPictures(pictures);
    const ms = performance.now() - started;
    expect(pictures).toHaveLength(6300);
    expect(result.acrossPersonas).toContainEqual({ a: { personaId: 1, idx: 'base' }, b: { personaId: 299, idx: 19 }, distance: 2 });
    // about 20 million comparisons; generous for a busy CI machine
    expect(ms).toBeLessThan(2_000);
  });
});
