import { normalizePersona, type PersonaData } from '../domain/persona.js';
import type { RejectedPersona } from '../ports.js';
import { scanJsonItems, scanJsonValues } from './scanner.js';

/**
 * The tolerant reader of language-model answers, shared by every text provider (Flowise flows,
 * OpenAI-compatible chat models): JSON objects one after another, a JSON array, an object that
 * wraps the list (`{"personas": [...]}`, what a strict JSON schema asks for), objects inside ```
 * fences, with any prose between them.
 */

export interface ParsedPersonas {
  personas: PersonaData[];
  rejected: RejectedPersona[];
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The old system's field names first (what its Flowise flow returns), then core's own names (what
 * the JSON schema of personaJsonSchema asks for), then spellings models commonly drift to. The
 * first present key wins.
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
  currentCountry: ['current_country', 'currentCountry', 'country'],
  prevCity: ['prev_city', 'prevCity'],
  prevState: ['prev_state', 'prevState'],
  about: ['about'],
} as const;

/** Keys under which a model wraps its list of personas in one object. */
const LIST_KEYS = ['personas', 'people', 'profiles', 'items', 'data'] as const;

function pick(sources: readonly Json[], names: readonly string[]): unknown {
  for (const source of sources) {
    for (const name of names) {
      if (Object.hasOwn(source, name) && source[name] !== undefined) return source[name];
    }
  }
  return undefined;
}

/**
 * Maps one object in any of the accepted shapes to core's PersonaData field names (not yet
 * validated). `bios` may be a string of JSON (the Flowise flow's shape) or an object.
 */
export function personaCandidate(value: unknown): { ok: true; candidate: unknown } | { ok: false; reason: string } {
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

/** An object that only wraps the list: `{"personas": [...]}` and nothing that names a person. */
function wrappedList(value: unknown): unknown[] | null {
  if (!isObject(value)) return null;
  if (pick([value], TOP_FIELDS.firstName) !== undefined) return null;
  for (const key of LIST_KEYS) if (Array.isArray(value[key])) return value[key] as unknown[];
  return null;
}

/**
 * Reads the personas out of a model's answer (see the top of this file). Every object goes through
 * core's normalizePersona; one that fails is listed in `rejected` with its position in the answer
 * and the reason.
 */
export function readPersonas(text: string): ParsedPersonas {
  const personas: PersonaData[] = [];
  const rejected: RejectedPersona[] = [];
  const items: Array<{ ok: true; value: unknown } | { ok: false; reason: string }> = [];
  for (const item of scanJsonItems(text)) {
    const list = item.ok ? wrappedList(item.value) : null;
    if (list) for (const value of list) items.push({ ok: true, value });
    else items.push(item);
  }
  items.forEach((item, index) => {
    if (!item.ok) {
      rejected.push({ index, reason: `object ${index + 1}: ${item.reason}` });
      return;
    }
    const mapped = personaCandidate(item.value);
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

/** The longest image prompt accepted from a model (the ImagePromptProvider contract). */
export const MAX_PROMPT_LENGTH = 4000;

/**
 * Reads the image prompt from a model's answer: the first JSON object with `final_prompt` (the old
 * flow's key), possibly inside ``` fences or after some prose. Returns the trimmed prompt, or the
 * reason there is none.
 */
export function readPrompt(text: string): { ok: true; prompt: string } | { ok: false; reason: string } {
  let lastReason = 'the text holds no JSON object';
  for (const scanned of scanJsonValues(text)) {
    if (!scanned.ok) {
      lastReason = scanned.reason;
      continue;
    }
    const value = scanned.value;
    if (!isObject(value)) continue;
    const prompt = value.final_prompt;
    if (prompt === undefined) {
      lastReason = 'the JSON object has no final_prompt';
      continue;
    }
    if (typeof prompt !== 'string') return { ok: false, reason: 'final_prompt is not text' };
    const trimmed = prompt.trim();
    if (trimmed === '') return { ok: false, reason: 'final_prompt is empty' };
    if (trimmed.length > MAX_PROMPT_LENGTH) {
      return { ok: false, reason: `final_prompt is longer than ${MAX_PROMPT_LENGTH} characters (${trimmed.length})` };
    }
    return { ok: true, prompt: trimmed };
  }
  return { ok: false, reason: lastReason };
}
