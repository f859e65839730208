/**
 * `npm run bench:quality-pictures`: the picture half of the dataset quality report.
 *
 *   - similarPictures over 300 personas x 21 pictures (6300 random 64-bit hashes, about 20 million
 *     comparisons) with 20 planted near pairs (0-10 bits apart, across and within personas):
 *     median of 15 runs after 3 warm-up runs. Every planted pair must be found.
 *   - perceptualHash of a 1024x1024 photo-like PNG through the real piscina pool (one worker):
 *     median of 30 runs after 5 warm-up runs, encoded bytes in, 16 hex characters out.
 *
 * Last line: BENCH quality.pictures_ms=<median ms per similarPictures> quality.hash_ms=<median ms per hash>
 */
import { type HashedPicture, type SimilarPicturePair, similarPictures } from '@avatargen/core';
import { createImageProcessor } from '@avatargen/image-opencv';
import sharp from 'sharp';

const PERSONAS = 300;
const PICTURES = 21; // the base and 20 shots
const PLANTED = 20;

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/** Deterministic 32-bit words (mulberry32): the same dataset every run, well mixed from the first word. */
function words(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}
const next = words(2026);
const hex = (high: number, low: number) => high.toString(16).padStart(8, '0') + low.toString(16).padStart(8, '0');

const pictures: HashedPicture[] = [];
for (let personaId = 1; personaId <= PERSONAS; personaId++) {
  for (let i = 0; i < PICTURES; i++) pictures.push({ personaId, idx: i === 0 ? 'base' : i - 1, hash: hex(next(), next()) });
}
// near pairs: a copy of one picture with 0-10 bits flipped, put on another picture (every 4th in the same persona)
const planted = new Set<string>();
const key = (p: { personaId: number; idx: number | 'base' }) => `${p.personaId}/${p.idx}`;
for (let k = 0; k < PLANTED; k++) {
  const from = pictures[(k * 311 + 5) % pictures.length] as HashedPicture;
  const to = (
    k % 4 === 0 ? pictures[pictures.indexOf(from) + (from.idx === 19 ? -1 : 1)] : pictures[(k * 977 + 1234) % pictures.length]
  ) as HashedPicture;
  let high = Number.parseInt(from.hash.slice(0, 8), 16);
  let low = Number.parseInt(from.hash.slice(8), 16);
  for (let bit = 0; bit < k % 11; bit++) {
    const at = (k * 13 + bit * 7) % 64;
    if (at < 32) high ^= 1 << at;
    else low ^= 1 << (at - 32);
  }
  to.hash = hex(high >>> 0, low >>> 0);
  planted.add([key(from), key(to)].sort().join(' '));
}

let found: ReturnType<typeof similarPictures> = { acrossPersonas: [], withinPersona: [] };
const runsMs: number[] = [];
for (let run = 0; run < 18; run++) {
  const started = performance.now();
  found = similarPictures(pictures);
  if (run >= 3) runsMs.push(performance.now() - started);
}
const pairKey = (p: Pick<SimilarPicturePair, 'a' | 'b'>) => [key(p.a), key(p.b)].sort().join(' ');
const foundKeys = new Set([...found.acrossPersonas, ...found.withinPersona].map(pairKey));
const missed = [...planted].filter((p) => !foundKeys.has(p));
if (missed.length > 0) throw new Error(`planted pairs not found: ${missed.join(', ')}`);
// random 64-bit hashes: about 0.2 chance pairs within 10 bits among 20 million
const extra = [...found.acrossPersonas, ...found.withinPersona].filter((p) => !planted.has(pairKey(p)));
if (extra.length > 0) console.log(`found besides the planted pairs: ${extra.map((p) => `${pairKey(p)} (${p.distance} bits)`).join(', ')}`);
const picturesMs = median(runsMs);
console.log(
  `similarPictures: ${pictures.length} hashes, ${found.acrossPersonas.length} across + ${found.withinPersona.length} within (${planted.size} planted) in ${picturesMs.toFixed(1)} ms (median of ${runsMs.length})`,
);

// a photo-like 1024 px PNG: smooth colour waves and fine grain, so that PNG cannot squeeze it much
const SIZE = 1024;
const raw = Buffer.alloc(SIZE * SIZE * 3);
const grain = words(7);
for (let y = 0; y < SIZE; y++) {
  for (let x = 0; x < SIZE; x++) {
    const wave = 60 * Math.cos((x / SIZE) * 5 + (y / SIZE) * 3) + 40 * Math.sin((y / SIZE) * 7 - (x / SIZE) * 2);
    for (let c = 0; c < 3; c++)
      raw[(y * SIZE + x) * 3 + c] = Math.max(0, Math.min(255, 120 + wave * (0.6 + c * 0.2) + ((grain() & 31) - 16)));
  }
}
const png = await sharp(raw, { raw: { width: SIZE, height: SIZE, channels: 3 } })
  .png()
  .toBuffer();
const processor = createImageProcessor({ threads: 1 });
const hashMs: number[] = [];
let hash = '';
try {
  for (let run = 0; run < 35; run++) {
    const started = performance.now();
    hash = await processor.perceptualHash(png);
    if (run >= 5) hashMs.push(performance.now() - started);
  }
} finally {
  await processor.close();
}
const perHash = median(hashMs);
console.log(
  `perceptualHash: ${SIZE}x${SIZE} PNG of ${(png.length / 1024).toFixed(0)} KiB -> ${hash} in ${perHash.toFixed(1)} ms (median of ${hashMs.length}, one worker)`,
);
console.log(`BENCH quality.pictures_ms=${picturesMs.toFixed(1)} quality.hash_ms=${perHash.toFixed(1)}`);
