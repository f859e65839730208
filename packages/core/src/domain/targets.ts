import { z } from 'zod';
import { foldName } from '../quality/text.js';
import type { Gender, PersonaData } from './persona.js';
import { createRandom } from './random.js';

/**
 * Demographic targets of a dataset (issue 19): an optional gender split, age bands, ethnicity mix
 * and locations, each as weights. The pipeline turns them into one exact quota per persona,
 * deterministically per task; every batch carries its personas' quotas to the provider, and core
 * checks every persona against its quota.
 *
 * On the form, the CLI and the API each dimension may be written as text:
 * - genders: `50/50` (female/male), `female 60%, male 40%`, `f 20, m 10` (counts), `women`;
 * - ages: `25-40`, `18-29 40%, 30-49 40%, 50-75 20%`, `65+`;
 * - ethnicities and locations: `Portuguese 70%, Brazilian 30%`, or `Lisbon; Porto` (equal shares).
 *   Items are split on `;` or new lines when there are any, else on commas, so `Lisbon, Portugal;
 *   Porto, Portugal` names two places.
 * Shares are weights: `60, 40`, `3, 2` and `60%, 40%` give the same split; percentages must add up
 * to 100. Counts that add up to the dataset's size give exactly those counts.
 */
export interface DemographicTargets {
  genders?: Array<{ gender: Gender; share: number }>;
  ages?: Array<{ min: number; max: number; share: number }>;
  ethnicities?: Array<{ name: string; share: number }>;
  locations?: Array<{ name: string; share: number }>;
}

export const TARGET_DIMENSIONS = ['genders', 'ages', 'ethnicities', 'locations'] as const;
export type TargetDimension = (typeof TARGET_DIMENSIONS)[number];

/** What one persona must be; a field is set when the task has a target for it. */
export interface PersonaQuota {
  gender?: Gender;
  /** Inclusive age band. */
  age?: { min: number; max: number };
  ethnicity?: string;
  /** A city, region or country, or a comma-separated place such as `Lisbon, Portugal`. */
  location?: string;
}

export const AGE_TARGET_MIN = 0;
export const AGE_TARGET_MAX = 120;
const ITEMS_MAX = 20;
const NAME_MAX = 100;

const GENDER_NAMES: Record<string, Gender> = {
  f: 'f',
  female: 'f',
  females: 'f',
  woman: 'f',
  women: 'f',
  m: 'm',
  male: 'm',
  males: 'm',
  man: 'm',
  men: 'm',
};

interface TextItem {
  label: string;
  share: number | null;
  percent: boolean;
}

/** Splits `a 60%, b 40%` (or `a: 3; b: 2`) into labels and shares. */
function splitItems(text: string): TextItem[] {
  const parts = /[;\n]/.test(text) ? text.split(/[;\n]/) : text.split(',');
  return parts
    .map((p) => p.trim())
    .filter(Boolean)
    .map((part) => {
      const m = /^(.*?)(?:\s*[:=]\s*|\s+)(\d+(?:[.,]\d+)?)\s*(%?)$/.exec(part);
      if (!m || m[1] === undefined || m[1].trim() === '' || /[-–]\s*$/.test(m[1])) return { label: part, share: null, percent: false };
      return { label: m[1].trim(), share: Number((m[2] as string).replace(',', '.')), percent: m[3] === '%' };
    });
}

/** Shares of text items: all given, or none (equal shares). Percentages must add up to 100. */
function sharesOf(items: TextItem[], what: string): number[] {
  const given = items.filter((i) => i.share !== null).length;
  if (given === 0) return items.map(() => 1);
  if (given !== items.length) throw new TargetError(`Give a share to every ${what}, or to none (equal shares).`);
  const percent = items.some((i) => i.percent);
  const shares = items.map((i) => i.share as number);
  if (percent) {
    const sum = shares.reduce((a, b) => a + b, 0);
    if (Math.abs(sum - 100) > 0.01) throw new TargetError(`The ${what} shares add up to ${round(sum)}%, not 100%.`);
  }
  return shares;
}

const round = (n: number) => Math.round(n * 100) / 100;

class TargetError extends Error {}

function parseGenders(text: string): DemographicTargets['genders'] {
  const split = /^\s*(\d+(?:\.\d+)?)\s*%?\s*\/\s*(\d+(?:\.\d+)?)\s*%?\s*$/.exec(text);
  if (split)
    return [
      { gender: 'f', share: Number(split[1]) },
      { gender: 'm', share: Number(split[2]) },
    ];
  const items = splitItems(text);
  const shares = sharesOf(items, 'gender');
  return items.map((item, i) => {
    const gender = GENDER_NAMES[item.label.toLowerCase()];
    if (!gender) throw new TargetError(`"${item.label}" is not a gender: write female or male (or f, m), or a split such as 50/50.`);
    return { gender, share: shares[i] as number };
  });
}

function parseAges(text: string): DemographicTargets['ages'] {
  const items = splitItems(text);
  const shares = sharesOf(items, 'age band');
  return items.map((item, i) => {
    const band = /^(\d{1,3})\s*(?:-|–|to)\s*(\d{1,3})$/.exec(item.label) ?? /^(\d{1,3})\s*(\+)$/.exec(item.label);
    if (!band) throw new TargetError(`"${item.label}" is not an age band: write it as 25-40 or 65+.`);
    const min = Number(band[1]);
    const max = band[2] === '+' ? AGE_TARGET_MAX : Number(band[2]);
    return { min, max, share: shares[i] as number };
  });
}

function parseNames(text: string, what: string): Array<{ name: string; share: number }> {
  const items = splitItems(text);
  const shares = sharesOf(items, what);
  return items.map((item, i) => ({ name: item.label, share: shares[i] as number }));
}

const share = z.preprocess(
  (v) => (typeof v === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v),
  z.number({ error: 'A share must be a number.' }).positive({ error: 'A share must be more than 0.' }).finite(),
);
const name = z
  .string({ error: 'Must be text.' })
  .trim()
  .min(1, { error: 'Must not be empty.' })
  .max(NAME_MAX, { error: `Keep each name under ${NAME_MAX} characters.` });

/** Accepts the text form (see DemographicTargets) or the structured one; empty means no target. */
const dimension = <T extends z.ZodType>(item: T, parse: (text: string) => unknown) =>
  z.preprocess(
    (v, ctx) => {
      if (v === undefined || v === null || (typeof v === 'string' && v.trim() === '')) return undefined;
      if (typeof v !== 'string') return v;
      try {
        return parse(v.trim());
      } catch (error) {
        if (!(error instanceof TargetError)) throw error;
        ctx.addIssue({ code: 'custom', message: error.message });
        return z.NEVER;
      }
    },
    z
      .array(item)
      .min(1, { error: 'Give at least one value, or leave it empty.' })
      .max(ITEMS_MAX, { error: `Give at most ${ITEMS_MAX} values.` })
      .optional(),
  );

const ageBand = z
  .object({
    min: z.number().int().min(AGE_TARGET_MIN).max(AGE_TARGET_MAX),
    max: z.number().int().min(AGE_TARGET_MIN).max(AGE_TARGET_MAX),
    share,
  })
  .refine((b) => b.min <= b.max, { error: 'An age band starts at or below its end (25-40, not 40-25).' });

export const targetsSchema = z
  .object({
    genders: dimension(
      z.object({
        gender: z.preprocess(
          (v) => (typeof v === 'string' ? (GENDER_NAMES[v.trim().toLowerCase()] ?? v) : v),
          z.enum(['f', 'm'], { error: 'Write female or male (f or m).' }),
        ),
        share,
      }),
      parseGenders,
    ),
    ages: dimension(ageBand, parseAges).refine((bands) => !bands || !overlapping(bands), {
      error: 'Age bands must not overlap (18-29, 30-49, not 18-30, 30-49).',
    }),
    ethnicities: dimension(z.object({ name, share }), (t) => parseNames(t, 'ethnicity')),
    locations: dimension(z.object({ name, share }), (t) => parseNames(t, 'location')),
  })
  .strict();

function overlapping(bands: Array<{ min: number; max: number }>): boolean {
  const sorted = [...bands].sort((a, b) => a.min - b.min);
  return sorted.some((b, i) => i > 0 && b.min <= (sorted[i - 1] as { max: number }).max);
}

export type TargetsValidation = { ok: true; value: DemographicTargets | null } | { ok: false; errors: Record<string, string> };

/**
 * Validates targets from a form, the CLI or the API. Errors are keyed `targets.<dimension>`. A
 * request without any target gives null.
 */
export function validateTargets(input: unknown): TargetsValidation {
  if (input === undefined || input === null || input === '') return { ok: true, value: null };
  if (typeof input !== 'object' || Array.isArray(input)) {
    return { ok: false, errors: { targets: 'Must be an object such as {"genders": "50/50", "ages": "25-40"}.' } };
  }
  const parsed = targetsSchema.safeParse(input);
  if (!parsed.success) {
    const errors: Record<string, string> = {};
    for (const issue of parsed.error.issues) {
      const key = issue.code === 'unrecognized_keys' ? issue.keys[0] : issue.path[0];
      errors[`targets.${String(key ?? '')}`.replace(/\.$/, '')] ??=
        issue.code === 'unrecognized_keys' ? `Unknown target; use ${TARGET_DIMENSIONS.join(', ')}.` : issue.message;
    }
    return { ok: false, errors };
  }
  const value = Object.fromEntries(Object.entries(parsed.data).filter(([, v]) => v !== undefined)) as DemographicTargets;
  return { ok: true, value: Object.keys(value).length > 0 ? value : null };
}

/**
 * Exact counts for weights, by largest remainder (ties to the earlier item): [1, 1] of 5 -> [3, 2].
 * Deterministic, and counts that add up to `total` come back unchanged.
 */
export function allocate(weights: readonly number[], total: number): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  if (sum <= 0 || weights.length === 0) return weights.map(() => 0);
  const exact = weights.map((w) => (w / sum) * total);
  const counts = exact.map(Math.floor);
  let left = total - counts.reduce((a, b) => a + b, 0);
  const order = exact.map((e, i) => ({ i, rest: e - Math.floor(e) })).sort((a, b) => b.rest - a.rest || a.i - b.i);
  for (const { i } of order) {
    if (left <= 0) break;
    counts[i] = (counts[i] as number) + 1;
    left--;
  }
  return counts;
}

/**
 * One quota per persona of the task, in persona order (batch 0's first, then batch 1's...). Each
 * dimension is allocated exactly over the whole task and shuffled on its own, seeded by the task,
 * so the same task always gets the same quotas and the dimensions mix.
 */
export function taskQuotas(targets: DemographicTargets | null | undefined, count: number, seed: string): PersonaQuota[] {
  const quotas: PersonaQuota[] = Array.from({ length: count }, () => ({}));
  if (!targets) return quotas;
  const fill = <T>(dimension: TargetDimension, values: T[], weights: number[], set: (q: PersonaQuota, v: T) => void) => {
    const counts = allocate(weights, count);
    const list = values.flatMap((v, i) => Array.from({ length: counts[i] as number }, () => v));
    const random = createRandom('targets', seed, dimension);
    for (let i = list.length - 1; i > 0; i--) {
      const j = random.int(0, i);
      [list[i], list[j]] = [list[j] as T, list[i] as T];
    }
    for (const [i, v] of list.entries()) set(quotas[i] as PersonaQuota, v);
  };
  if (targets.genders)
    fill(
      'genders',
      targets.genders.map((g) => g.gender),
      targets.genders.map((g) => g.share),
      (q, v) => {
        q.gender = v;
      },
    );
  if (targets.ages)
    fill(
      'ages',
      targets.ages.map((a) => ({ min: a.min, max: a.max })),
      targets.ages.map((a) => a.share),
      (q, v) => {
        q.age = v;
      },
    );
  if (targets.ethnicities)
    fill(
      'ethnicities',
      targets.ethnicities.map((e) => e.name),
      targets.ethnicities.map((e) => e.share),
      (q, v) => {
        q.ethnicity = v;
      },
    );
  if (targets.locations)
    fill(
      'locations',
      targets.locations.map((l) => l.name),
      targets.locations.map((l) => l.share),
      (q, v) => {
        q.location = v;
      },
    );
  return quotas;
}

/** Whether a quota asks for anything. */
export function hasQuota(quota: PersonaQuota | undefined): boolean {
  return !!quota && (quota.gender !== undefined || !!quota.age || !!quota.ethnicity || !!quota.location);
}

const words = (text: string) =>
  foldName(text)
    .split(/[^\p{L}\p{N}]+/u)
    .filter(Boolean);

/** Whether every word of `wanted` appears in `text`, in order, case and accents aside. */
function containsWords(text: string, wanted: string): boolean {
  const have = words(text).join(' ');
  const want = words(wanted).join(' ');
  return want !== '' && ` ${have} `.includes(` ${want} `);
}

/** Whether a persona's ethnicity is the target's (`Portuguese` is met by `White Portuguese`). */
export function matchesEthnicity(persona: Pick<PersonaData, 'ethnicity'>, ethnicity: string): boolean {
  return containsWords(persona.ethnicity, ethnicity);
}

/**
 * Whether a persona lives in the target place: every comma-separated part of it (`Lisbon,
 * Portugal`) names the current city, region or country.
 */
export function matchesLocation(persona: Pick<PersonaData, 'currentCity' | 'currentState' | 'currentCountry'>, location: string): boolean {
  const fields = [persona.currentCity, persona.currentState, persona.currentCountry ?? ''];
  const parts = location
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  return parts.length > 0 && parts.every((part) => fields.some((field) => containsWords(field, part)));
}

/** The first way in which a persona misses its quota, in words, or null when it meets it. */
export function quotaMiss(persona: PersonaData, quota: PersonaQuota | undefined): string | null {
  if (!quota) return null;
  if (quota.gender !== undefined && persona.gender !== quota.gender) {
    return `is ${persona.gender === 'f' ? 'female' : 'male'}, not ${quota.gender === 'f' ? 'female' : 'male'}`;
  }
  if (quota.age && (persona.age === null || persona.age < quota.age.min || persona.age > quota.age.max)) {
    return `is ${persona.age === null ? 'of no given age' : `${persona.age}`}, not ${quota.age.min}-${quota.age.max}`;
  }
  if (quota.ethnicity && !matchesEthnicity(persona, quota.ethnicity)) {
    return `is ${persona.ethnicity || 'of no given ethnicity'}, not ${quota.ethnicity}`;
  }
  if (quota.location && !matchesLocation(persona, quota.location)) {
    const where = [persona.currentCity, persona.currentState, persona.currentCountry].filter(Boolean).join(', ');
    return `lives in ${where || 'no given place'}, not ${quota.location}`;
  }
  return null;
}

/**
 * Gives each persona the first open quota it meets, in order. Returns the index of the quota each
 * persona took (or -1 when it meets none still open) and the quotas left open.
 */
export function assignQuotas(personas: readonly PersonaData[], quotas: readonly PersonaQuota[]): { taken: number[]; open: number[] } {
  const open = new Set(quotas.map((_, i) => i));
  const taken = personas.map((persona) => {
    for (const i of open) {
      if (quotaMiss(persona, quotas[i]) === null) {
        open.delete(i);
        return i;
      }
    }
    return -1;
  });
  return { taken, open: [...open] };
}

/** A target's row in the requested-vs-achieved view. */
export interface TargetRow {
  label: string;
  requested: number;
  achieved: number;
}

/** Requested vs achieved per dimension; `other` counts personas that meet no value of the target. */
export interface TargetsReport {
  personas: number;
  dimensions: Array<{ dimension: TargetDimension; rows: TargetRow[]; other: number }>;
}

const ageLabel = (b: { min: number; max: number }) => (b.max >= AGE_TARGET_MAX ? `${b.min}+` : `${b.min}-${b.max}`);

/**
 * What was asked (exact counts for `count` personas) next to what the stored personas are. Each
 * dimension is counted on its own: a persona can meet its gender and miss its age.
 */
export type TargetFields = Pick<PersonaData, 'gender' | 'age' | 'ethnicity' | 'currentCity' | 'currentState' | 'currentCountry'>;

export function targetsReport(targets: DemographicTargets, count: number, personas: readonly TargetFields[]): TargetsReport {
  const dimensions: TargetsReport['dimensions'] = [];
  const add = <T>(
    dimension: TargetDimension,
    items: Array<T & { share: number }>,
    label: (t: T) => string,
    meets: (p: TargetFields, t: T) => boolean,
  ) => {
    const requested = allocate(
      items.map((i) => i.share),
      count,
    );
    const achieved = items.map(() => 0);
    let other = 0;
    for (const persona of personas) {
      const i = items.findIndex((item) => meets(persona, item));
      if (i < 0) other++;
      else achieved[i] = (achieved[i] as number) + 1;
    }
    dimensions.push({
      dimension,
      rows: items.map((item, i) => ({ label: label(item), requested: requested[i] as number, achieved: achieved[i] as number })),
      other,
    });
  };
  if (targets.genders)
    add(
      'genders',
      targets.genders,
      (g) => (g.gender === 'f' ? 'female' : 'male'),
      (p, g) => p.gender === g.gender,
    );
  if (targets.ages) add('ages', targets.ages, ageLabel, (p, a) => p.age !== null && p.age >= a.min && p.age <= a.max);
  if (targets.ethnicities)
    add(
      'ethnicities',
      targets.ethnicities,
      (e) => e.name,
      (p, e) => matchesEthnicity(p, e.name),
    );
  if (targets.locations)
    add(
      'locations',
      targets.locations,
      (l) => l.name,
      (p, l) => matchesLocation(p, l.name),
    );
  return { personas: personas.length, dimensions };
}

/** The quota as one line for a prompt: "female, aged 25-40, Portuguese, living in Lisbon". */
export function describeQuota(quota: PersonaQuota): string {
  const parts: string[] = [];
  if (quota.gender) parts.push(quota.gender === 'f' ? 'female' : 'male');
  if (quota.age) parts.push(quota.age.min === quota.age.max ? `aged ${quota.age.min}` : `aged ${quota.age.min}-${quota.age.max}`);
  if (quota.ethnicity) parts.push(`ethnicity ${quota.ethnicity}`);
  if (quota.location) parts.push(`living in ${quota.location}`);
  return parts.join(', ');
}

/** The targets as the text the form and the CLI take (see DemographicTargets). */
export function targetsAsText(targets: DemographicTargets | null | undefined): Record<TargetDimension, string> {
  const list = <T extends { share: number }>(items: T[] | undefined, label: (t: T) => string) =>
    items ? items.map((i) => `${label(i)} ${round(i.share)}`).join(items.some((i) => label(i).includes(',')) ? '; ' : ', ') : '';
  return {
    genders: list(targets?.genders, (g) => (g.gender === 'f' ? 'female' : 'male')),
    ages: list(targets?.ages, ageLabel),
    ethnicities: list(targets?.ethnicities, (e) => e.name),
    locations: list(targets?.locations, (l) => l.name),
  };
}
