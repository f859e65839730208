import { normalizePersona, type PersonaData, type RejectedPersona } from '@avatargen/core';
import { scanJsonItems } from './scanner.js';

export interface ParsedPersonas {
  personas: PersonaData[];
  rejected: RejectedPersona[];
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The flow's field names first (what the old system's flow returns), then spellings LLMs
 * commonly drift to. The first present key wins.
 */
const TOP_FIELDS = {
  firstName: ['firstname', 'first_name', 'firstName'],
  lastName: ['lastname', 'last_name', 'lastName'],
  gender: ['gender', 'sex'],
  ethnicity: ['ethnicity'],
} as const;

const BIO_FIELDS = {
  facebook: ['facebook_bio', 'bio_facebook', 'facebook'],
  instagram: ['instagram_bio', 'bio_instagram', 'instagram'],
  x: ['x_bio', 'bio_x', 'x', 'twitter_bio', 'twitter'],
  tiktok: ['tiktok_bio', 'bio_tiktok', 'tiktok'],
} as const;

/** Inside `bios` in the flow's shape; also accepted at the top level of the object. */
const DETAIL_FIELDS = {
  age: ['age'],
  jobTitle: ['job_title', 'jobTitle'],
  workplace: ['workplace'],
  eduEstablishment: ['edu_establishment', 'eduEstablishment'],
  eduStudy: ['edu_study', 'eduStudy'],
  currentCity: ['current_city', 'currentCity'],
  currentState: ['current_state', 'currentState'],
  prevCity: ['prev_city', 'prevCity'],
  prevState: ['prev_state', 'prevState'],
  about: ['about'],
} as const;

function pick(sources: readonly Json[], names: readonly string[]): unknown {
  for (const source of sources) {
    for (const name of names) {
      if (Object.hasOwn(source, name) && source[name] !== undefined) return source[name];
    }
  }
  return undefined;
}

/**
 * Maps one object in the flow's shape to core's PersonaData field names (not yet validated).
 * `bios` may be a string of JSON (the flow's shape) or an object.
 */
export function personaFromFlowise(value: unknown): { ok: true; candidate: unknown } | { ok: false; reason: string } {
  if (!isObject(value)) return { ok: false, reason: `is ${Array.isArray(value) ? 'an array' : typeof value}, not an object` };
  let bios: Json = {};
  const rawBios = value.bios;
  if (typeof rawBios === 'string') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(rawBios);
    } catch (error) {
      return { ok: false, reason: `bios is not valid JSON (${(error as Error).message})` };
    }
    if (!isObject(parsed)) return { ok: false, reason: 'bios is not a JSON object' };
    bios = parsed;
  } else if (isObject(rawBios)) {
    bios = rawBios;
  } else if (rawBios !== undefined && rawBios !== null) {
    return { ok: false, reason: 'bios is neither an object nor a string of JSON' };
  }
  const candidate: Record<string, unknown> = {};
  for (const [field, names] of Object.entries(TOP_FIELDS)) candidate[field] = pick([value], names);
  candidate.bios = Object.fromEntries(Object.entries(BIO_FIELDS).map(([platform, names]) => [platform, pick([bios, value], names)]));
  for (const [field, names] of Object.entries(DETAIL_FIELDS)) candidate[field] = pick([bios, value], names);
  return { ok: true, candidate };
}

/**
 * Reads the personas out of a persona flow's `text`: JSON objects one after another (the flow's
 * shape), or a JSON array, or objects inside ``` fences, with any prose between them. Every
 * object goes through core's normalizePersona; one that fails is listed in `rejected` with its
 * position in the answer and the reason.
 */
export function parsePersonaText(text: string): ParsedPersonas {
  const personas: PersonaData[] = [];
  const rejected: RejectedPersona[] = [];
  scanJsonItems(text).forEach((item, index) => {
    if (!item.ok) {
      rejected.push({ index, reason: `object ${index + 1}: ${item.reason}` });
      return;
    }
    const mapped = personaFromFlowise(item.value);
    if (!mapped.ok) {
      rejected.push({ index, reason: `object ${index + 1}: ${mapped.reason}` });
      return;
    }
    const normalized = normalizePersona(mapped.candidate);
    if (normalized.ok) personas.push(normalized.persona);
    else rejected.push({ index, reason: `object ${index + 1}: ${normalized.reason}` });
  });
  return { personas, rejected };
}
