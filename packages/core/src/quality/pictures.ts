import { ValidationError } from '../errors.js';

/**
 * Near-duplicate pictures of a dataset from their perceptual hashes (the image processor's 64-bit
 * dHash, 16 hex characters). Pure: no I/O. Two personas with near-identical pictures are "two
 * different people with the same face"; near-identical pictures of one persona are wasted shots.
 */

export interface HashedPicture {
  personaId: number;
  /** The picture's index among the persona's shots, or 'base' for its base picture. */
  idx: number | 'base';
  /** 16 hex characters (64 bits). */
  hash: string;
}

export interface PictureRef {
  personaId: number;
  idx: number | 'base';
}

export interface SimilarPicturePair {
  /** The smaller of the two by (personaId, idx), with 'base' before any index. */
  a: PictureRef;
  b: PictureRef;
  /** Hamming distance between the two hashes, 0..64. */
  distance: number;
}

export interface SimilarPictures {
  acrossPersonas: SimilarPicturePair[];
  withinPersona: SimilarPicturePair[];
}

export const DEFAULT_MAX_PICTURE_DISTANCE = 10;

const HASH = /^[0-9a-fA-F]{16}$/;

/** Set bits of a 32-bit value (SWAR: no table, no BigInt). */
function popcount32(value: number): number {
  let v = value - ((value >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) as number;
}

function halves(hash: unknown, field: string): [number, number] {
  if (typeof hash !== 'string' || !HASH.test(hash)) throw new ValidationError({ [field]: 'must be 16 hex characters (a 64-bit hash)' });
  return [Number.parseInt(hash.slice(0, 8), 16) >>> 0, Number.parseInt(hash.slice(8), 16) >>> 0];
}

/** The number of bits that differ between two 64-bit hashes given as 16 hex characters (0..64). */
export function hammingDistance(a: string, b: string): number {
  const [aHigh, aLow] = halves(a, 'a');
  const [bHigh, bLow] = halves(b, 'b');
  return popcount32(aHigh ^ bHigh) + popcount32(aLow ^ bLow);
}

/** 'base' first, then the indexes in order. */
const idxRank = (idx: number | 'base') => (idx === 'base' ? -1 : idx);
const compareRefs = (x: PictureRef, y: PictureRef) => x.personaId - y.personaId || idxRank(x.idx) - idxRank(y.idx);

function checkPicture(picture: HashedPicture, at: number): void {
  if (picture === null || typeof picture !== 'object') throw new ValidationError({ [`pictures[${at}]`]: 'must be an object' });
  if (!Number.isSafeInteger(picture.personaId)) throw new ValidationError({ [`pictures[${at}].personaId`]: 'must be a whole number' });
  if (picture.idx !== 'base' && !(Number.isSafeInteger(picture.idx) && picture.idx >= 0)) {
    throw new ValidationError({ [`pictures[${at}].idx`]: "must be 'base' or a whole number >= 0" });
  }
}

/**
 * Every pair of pictures whose hashes are at most `maxDistance` bits apart (default 10), split
 * into pairs of two personas and pairs of one. All pairs are compared, as two 32-bit halves with
 * a popcount, the low half only when the high half is close enough: 6300 pictures (300 personas
 * x 21) are about 20 million comparisons, some 50-100 ms (npm run bench:quality-pictures). Each pair is ordered (a before b by personaId, then idx with 'base' first); the
 * lists are sorted by distance, then a, then b, so the same pictures in any order give the same
 * result. The same (personaId, idx) twice, a malformed hash or maxDistance outside 0..64 is a
 * ValidationError.
 */
export function similarPictures(pictures: readonly HashedPicture[], options: { maxDistance?: number } = {}): SimilarPictures {
  const maxDistance = options.maxDistance ?? DEFAULT_MAX_PICTURE_DISTANCE;
  if (!Number.isInteger(maxDistance) || maxDistance < 0 || maxDistance > 64) {
    throw new ValidationError({ maxDistance: `must be a whole number from 0 to 64, got ${String(maxDistance)}` });
  }
  if (!Array.isArray(pictures)) throw new ValidationError({ pictures: 'must be an array' });
  pictures.forEach(checkPicture);
  // sorted first, so that pairs come out ordered and the input's order does not matter
  const sorted = [...pictures].sort(compareRefs);
  const n = sorted.length;
  const high = new Uint32Array(n);
  const low = new Uint32Array(n);
  const persona = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const picture = sorted[i] as HashedPicture;
    if (i > 0 && compareRefs(sorted[i - 1] as HashedPicture, picture) === 0) {
      throw new ValidationError({ pictures: `picture ${picture.idx} of persona ${picture.personaId} is there twice` });
    }
    [high[i], low[i]] = halves(picture.hash, `pictures[${pictures.indexOf(picture)}].hash`);
    persona[i] = picture.personaId;
  }

  const found: Array<{ i: number; j: number; distance: number }> = [];
  for (let i = 0; i < n - 1; i++) {
    const h = high[i] as number;
    const l = low[i] as number;
    for (let j = i + 1; j < n; j++) {
      // most pairs are already too far apart in the high half: the low half is not counted
      const highDistance = popcount32(h ^ (high[j] as number));
      if (highDistance > maxDistance) continue;
      const distance = highDistance + popcount32(l ^ (low[j] as number));
      if (distance <= maxDistance) found.push({ i, j, distance });
    }
  }
  // i and j index the sorted pictures: ordering by (distance, i, j) orders by (distance, a, b)
  found.sort((x, y) => x.distance - y.distance || x.i - y.i || x.j - y.j);

  const ref = (at: number): PictureRef => {
    const { personaId, idx } = sorted[at] as HashedPicture;
    return { personaId, idx };
  };
  const result: SimilarPictures = { acrossPersonas: [], withinPersona: [] };
  for (const { i, j, distance } of found) {
    const pair = { a: ref(i), b: ref(j), distance };
    (persona[i] === persona[j] ? result.withinPersona : result.acrossPersonas).push(pair);
  }
  return result;
}
