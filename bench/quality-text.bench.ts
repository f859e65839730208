/**
 * `npm run bench:quality-text`: the text half of the quality report (near-duplicate texts by
 * MinHash/LSH, packages/core/src/quality/text.ts) on 300 personas x 5 texts of 40 to 60 words,
 * generated from phrase lists with the seeded PRNG, 15 of them planted copies with a word changed.
 *
 * Two warm-up runs, then BENCH_RUNS (default 9) timed runs; the median wall time and the median
 * CPU time of the process (the VMs are shared, so CPU time is the steadier figure). Beside it, the
 * string hash the module uses (FNV-1a + murmur3 finaliser) against one node:crypto MD5 digest per
 * shingle, over the same shingles: the reason the module does not hash with node:crypto.
 *
 * Last line: BENCH quality.text_ms=<median ms, 1500 texts> quality.text_per_1000_ms=<the same per 1000 texts>
 *   quality.text_cpu_ms=<median CPU ms> quality.pairs=<pairs found> quality.fnv_hash_ms= quality.crypto_hash_ms=
 */
import { createHash } from 'node:crypto';
import { createRandom, nearDuplicateTexts, type Random, type TextItem, wordShingles } from '@avatargen/core';

const PERSONAS = 300;
const FIELDS = ['bio_instagram', 'bio_facebook', 'bio_twitter', 'about', 'headline'];
const RUNS = Number(process.env.BENCH_RUNS ?? 9);

const OPENERS = [
  'These days',
  'Most weekends',
  'Since college',
  'Every morning',
  'Lately',
  'After work',
  'On slow Sundays',
  'For years now',
];
const SUBJECTS = ['I', 'my partner and I', 'our little crew', 'my sister and I', 'the dog and I', 'my running club', 'our book circle'];
const VERBS = ['restore', 'photograph', 'sketch', 'cook', 'hunt for', 'write about', 'collect', 'repair', 'grow', 'brew', 'paint', 'bake'];
const OBJECTS = [
  'vintage bicycles',
  'sourdough loaves',
  'mountain trails',
  'jazz records',
  'tiny succulents',
  'street murals',
  'wild mushrooms',
  'old radios',
];
const PLACES = [
  'near the harbour',
  'in a cramped garage',
  'on the rooftop',
  'at the community garden',
  'by the river',
  'in a borrowed studio',
  'downtown',
];
const TAILS = [
  'with loud music',
  'for no reason at all',
  'to stay sane',
  'while the coffee gets cold',
  'until the light fades',
  'to clear my head',
];

function bio(random: Random): string {
  const sentences: string[] = [];
  let words = 0;
  const target = random.int(34, 52); // the last sentence overshoots: 40 to 60 words, ~50 on average
  while (words < target) {
    const sentence = `${random.pick(OPENERS)} ${random.pick(SUBJECTS)} ${random.pick(VERBS)} ${random.pick(OBJECTS)} ${random.pick(PLACES)} ${random.pick(TAILS)}.`;
    sentences.push(sentence);
    words += sentence.split(' ').length;
  }
  return sentences.join(' ');
}

function corpus(): TextItem[] {
  const random = createRandom('quality-text-bench');
  const items: TextItem[] = [];
  for (let personaId = 1; personaId <= PERSONAS; personaId++) {
    for (const field of FIELDS) items.push({ personaId, field, text: bio(random) });
  }
  for (let k = 0; k < 15; k++) {
    const source = items[k * 50]!;
    const target = items[k * 50 + 750]!; // sources 0..700, targets 750..1450: no copy of a copy
    target.text = source.text.replace(/\b\w+\b/, 'Honestly');
  }
  return items;
}

function cpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const items = corpus();
const words = items.reduce((sum, item) => sum + item.text.split(/\s+/).length, 0);
let pairs = 0;
for (let i = 0; i < 2; i++) pairs = nearDuplicateTexts(items, { seed: 'bench' }).length;

const wall: number[] = [];
const cpu: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const cpu0 = cpuMs();
  const t0 = performance.now();
  nearDuplicateTexts(items, { seed: `bench-${i}` });
  wall.push(performance.now() - t0);
  cpu.push(cpuMs() - cpu0);
}

// The string hash alone, over every shingle of the corpus: FNV-1a + fmix32 (as in the module) against an MD5 digest each.
const shingles = items.flatMap((item) => [...wordShingles(item.text, 3)]);
function fnv(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
const hashTimes = { fnv: [] as number[], crypto: [] as number[] };
let sink = 0;
for (let i = 0; i < 5; i++) {
  let t0 = performance.now();
  for (const shingle of shingles) sink ^= fnv(shingle);
  hashTimes.fnv.push(performance.now() - t0);
  t0 = performance.now();
  for (const shingle of shingles) sink ^= createHash('md5').update(shingle).digest().readUInt32LE(0);
  hashTimes.crypto.push(performance.now() - t0);
}

const ms = median(wall);
console.log(
  `${items.length} texts (${PERSONAS} personas x ${FIELDS.length}), ${(words / items.length).toFixed(1)} words each on average, ${shingles.length} shingles; ` +
    `${RUNS} runs: wall ${wall.map((t) => t.toFixed(1)).join(' ')} ms; node ${process.version} (hash check ${sink & 1})`,
);
console.log(
  `BENCH quality.text_ms=${ms.toFixed(1)} quality.text_per_1000_ms=${((ms * 1000) / items.length).toFixed(1)} quality.text_cpu_ms=${median(cpu).toFixed(1)} ` +
    `quality.pairs=${pairs} quality.fnv_hash_ms=${median(hashTimes.fnv).toFixed(1)} quality.crypto_hash_ms=${median(hashTimes.crypto).toFixed(1)}`,
);
