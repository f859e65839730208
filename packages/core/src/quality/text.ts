/**
 * The text half of a dataset's quality report: near-duplicate texts across personas (MinHash over
 * word shingles, LSH banding for candidates, the exact Jaccard of the shingle sets to decide) and
 * personas that share one full name.
 *
 * Written here rather than taken from npm: the one MinHash package there (`minhash` 0.0.9) has no
 * types, seeds its functions from a Math.sin PRNG of its own rather than the project's
 * `createRandom`, computes (a * h + b) mod p in doubles past 2^53 (inexact) and hashes each string
 * once per function (128 times); what is needed here is ~100 plain lines.
 * Strings are hashed with FNV-1a (32-bit) plus murmur3's finaliser, not `node:crypto`: over the
 * ~68,000 shingles of 1500 bios an MD5 digest each took ~130 ms, more than the whole report
 * (~95 ms), against ~4 ms for FNV-1a (bench/quality-text.bench.ts, Node 20, December 2026).
 */
import { createRandom } from '../domain/random.js';

export interface TextItem {
  personaId: number;
  /** Which text of the persona, e.g. 'bio_instagram', 'about'. */
  field: string;
  text: string;
}

export interface NearDuplicatePair {
  /** The pair's first text: the lower persona id (then field). */
  a: { personaId: number; field: string };
  b: { personaId: number; field: string };
  /** Jaccard similarity of the two texts' word-shingle sets, 0..1, rounded to 3 decimals (exact for the candidates MinHash/LSH proposes). */
  similarity: number;
}

export interface NameDuplicate {
  /** The name as the lowest persona id of the group writes it (trimmed, single spaces). */
  fullName: string;
  /** Ascending, at least two. */
  personaIds: number[];
}

export interface NearDuplicateOptions {
  /** Jaccard similarity at or above which two texts are reported, in (0, 1]; default 0.7. */
  threshold?: number;
  /** Words per shingle, a positive integer; default 3. */
  shingle?: number;
  /** Seeds the MinHash functions (which candidates LSH proposes, never the similarities reported); default ''. */
  seed?: string;
}

/** MinHash signature length: 128 values, cut into bands of `rows` values (see bandRows). */
export const MINHASH_SIZE = 128;
/** LSH recall wanted for a pair exactly at the threshold; pairs above it are proposed more surely still. */
const RECALL_AT_THRESHOLD = 0.995;

/**
 * NFKC, lower case, apostrophes dropped inside words ("don't" = "dont"), every other non-letter,
 * non-digit (punctuation, emoji, symbols) a space; the words. Combining marks stay with their
 * letters (Devanagari, decomposed accents), but the emoji presentation selectors and the keycap
 * mark, which are marks too, go, and a "word" of marks alone is dropped.
 */
export function normalizeWords(text: string): string[] {
  const cleaned = text
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[\uFE00-\uFE0F\u20E3\u{E0100}-\u{E01EF}]/gu, '')
    .replace(/(?<=[\p{L}\p{N}])['\u2019\u02bc](?=[\p{L}\p{N}])/gu, '')
    .replace(/[^\p{L}\p{M}\p{N}]+/gu, ' ')
    .trim();
  return cleaned === '' ? [] : cleaned.split(' ').filter((word) => /[\p{L}\p{N}]/u.test(word));
}

/** The set of `size`-word shingles of the text; a text shorter than `size` words is one shingle of what it has, an empty one none. */
export function wordShingles(text: string, size = 3): Set<string> {
  const words = normalizeWords(text);
  const shingles = new Set<string>();
  if (words.length === 0) return shingles;
  if (words.length <= size) {
    shingles.add(words.join(' '));
    return shingles;
  }
  for (let i = 0; i + size <= words.length; i++) shingles.add(words.slice(i, i + size).join(' '));
  return shingles;
}

/** murmur3's 32-bit finaliser: every input bit reaches every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a over the UTF-16 code units, finalised (FNV's low bits alone mix poorly). */
function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return fmix32(h);
}

/** Rows per band: the largest that still proposes a pair at the threshold with RECALL_AT_THRESHOLD (fewest false candidates), 1 when none does. */
export function bandRows(threshold: number, size = MINHASH_SIZE): number {
  let best = 1;
  for (let rows = 1; rows <= size; rows++) {
    const bands = Math.floor(size / rows);
    if (1 - (1 - threshold ** rows) ** bands >= RECALL_AT_THRESHOLD) best = rows;
  }
  return best;
}

function jaccard(x: Set<string>, y: Set<string>): number {
  const [small, large] = x.size <= y.size ? [x, y] : [y, x];
  let shared = 0;
  for (const shingle of small) if (large.has(shingle)) shared++;
  return shared / (x.size + y.size - shared);
}

function compareRef(x: { personaId: number; field: string }, y: { personaId: number; field: string }): number {
  if (x.personaId !== y.personaId) return x.personaId - y.personaId;
  return x.field < y.field ? -1 : x.field > y.field ? 1 : 0;
}

/**
 * Pairs of texts of two different personas whose word-shingle Jaccard similarity is at least the
 * threshold (one persona's own texts never pair), sorted by similarity descending, then ids.
 *
 * Each text's shingles get a 128-value MinHash signature (hash functions `fmix32(h ^ seed_i)`,
 * seeds from `createRandom('quality.text', seed)`); the signature is cut into bands of
 * `bandRows(threshold)` rows (32 bands of 4 at 0.7), texts sharing one band's values are
 * candidates, and a candidate is kept when the exact Jaccard of the two shingle sets reaches the
 * threshold. A pair at the threshold is proposed with probability >= 0.995 (at 0.7: 0.9998; at
 * 0.8: 1 - 1e-7); below a threshold of 0.05 that cannot be had from 128 values, and recall drops.
 */
export function nearDuplicateTexts(items: TextItem[], options: NearDuplicateOptions = {}): NearDuplicatePair[] {
  const threshold = options.threshold ?? 0.7;
  const size = options.shingle ?? 3;
  if (!(threshold > 0 && threshold <= 1)) throw new RangeError(`threshold must be in (0, 1], not ${threshold}`);
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`shingle must be a positive integer, not ${size}`);

  const random = createRandom('quality.text', options.seed ?? '');
  const seeds = new Uint32Array(MINHASH_SIZE);
  for (let i = 0; i < MINHASH_SIZE; i++) seeds[i] = Math.floor(random.next() * 4294967296);

  const texts: Array<{ item: TextItem; shingles: Set<string> }> = [];
  for (const item of items) {
    const shingles = wordShingles(item.text, size);
    if (shingles.size > 0) texts.push({ item, shingles });
  }

  // signatures[t * MINHASH_SIZE + i]: the least of hash function i over text t's shingles
  const signatures = new Uint32Array(texts.length * MINHASH_SIZE).fill(0xffffffff);
  texts.forEach(({ shingles }, t) => {
    const base = t * MINHASH_SIZE;
    for (const shingle of shingles) {
      const h = hashString(shingle);
      for (let i = 0; i < MINHASH_SIZE; i++) {
        const v = fmix32(h ^ (seeds[i] as number));
        if (v < (signatures[base + i] as number)) signatures[base + i] = v;
      }
    }
  });

  const rows = bandRows(threshold);
  const bands = Math.floor(MINHASH_SIZE / rows);
  const candidates = new Set<number>();
  for (let band = 0; band < bands; band++) {
    // A band's rows hashed to one number: a collision only adds a candidate, which the exact Jaccard then weighs.
    const buckets = new Map<number, number[]>();
    for (let t = 0; t < texts.length; t++) {
      let h = band;
      const start = t * MINHASH_SIZE + band * rows;
      for (let r = 0; r < rows; r++) h = fmix32(Math.imul(h, 0x9e3779b1) ^ (signatures[start + r] as number));
      const bucket = buckets.get(h);
      if (bucket === undefined) {
        buckets.set(h, [t]);
        continue;
      }
      for (const other of bucket) candidates.add(other * texts.length + t);
      bucket.push(t);
    }
  }

  const pairs: NearDuplicatePair[] = [];
  for (const key of candidates) {
    const first = texts[Math.floor(key / texts.length)]!;
    const second = texts[key % texts.length]!;
    if (first.item.personaId === second.item.personaId) continue;
    const similarity = jaccard(first.shingles, second.shingles);
    if (similarity < threshold) continue;
    const x = { personaId: first.item.personaId, field: first.item.field };
    const y = { personaId: second.item.personaId, field: second.item.field };
    const [a, b] = compareRef(x, y) <= 0 ? [x, y] : [y, x];
    pairs.push({ a, b, similarity: Math.round(similarity * 1000) / 1000 });
  }
  return pairs.sort((p, q) => q.similarity - p.similarity || compareRef(p.a, q.a) || compareRef(p.b, q.b));
}

/** A name or place as compared: NFKD without combining marks (accents), lower case, trimmed, single spaces. */
export function foldName(text: string): string {
  return text
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/\s+/gu, ' ')
    .trim();
}

/** A full name's key (see foldName). */
export function fullNameKey(firstName: string, lastName: string): string {
  return foldName(`${firstName} ${lastName}`);
}

/** Groups of two or more personas sharing one full name (case and accents aside), most personas first, then by lowest id. */
export function duplicateNames(personas: Array<{ personaId: number; firstName: string; lastName: string }>): NameDuplicate[] {
  const groups = new Map<string, Array<{ personaId: number; fullName: string }>>();
  for (const persona of personas) {
    const key = fullNameKey(persona.firstName, persona.lastName);
    if (key === '') continue;
    const fullName = `${persona.firstName} ${persona.lastName}`.replace(/\s+/gu, ' ').trim();
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [{ personaId: persona.personaId, fullName }]);
    else group.push({ personaId: persona.personaId, fullName });
  }
  const duplicates: NameDuplicate[] = [];
  for (const members of groups.values()) {
    members.sort((x, y) => x.personaId - y.personaId);
    const personaIds = [...new Set(members.map((member) => member.personaId))];
    if (personaIds.length < 2) continue;
    duplicates.push({ fullName: members[0]!.fullName, personaIds });
  }
  return duplicates.sort((x, y) => y.personaIds.length - x.personaIds.length || x.personaIds[0]! - y.personaIds[0]!);
}
