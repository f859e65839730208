import { z } from 'zod';

export type Gender = 'f' | 'm';
export const PLATFORMS = ['facebook', 'instagram', 'x', 'tiktok'] as const;
export type Platform = (typeof PLATFORMS)[number];
export type Bios = Record<Platform, string>;

/** A fictional person as providers return it and the database stores it. */
export interface PersonaData {
  firstName: string;
  lastName: string;
  gender: Gender;
  ethnicity: string;
  /** Whole years, or null when the provider did not give a usable age. */
  age: number | null;
  bios: Bios;
  jobTitle: string;
  workplace: string;
  eduEstablishment: string;
  eduStudy: string;
  currentCity: string;
  currentState: string;
  prevCity: string;
  prevState: string;
  /** Country of the current city; '' when the provider gave none (older providers and flows). */
  currentCountry?: string;
  about: string;
}

/** Length limits, in characters, applied when a persona is normalised. */
export const PERSONA_LIMITS = {
  name: 100,
  short: 200,
  bio: 2000,
  about: 4000,
} as const;

const GENDER_WORDS: Record<string, Gender> = {
  f: 'f',
  female: 'f',
  woman: 'f',
  w: 'f',
  m: 'm',
  male: 'm',
  man: 'm',
};

/** C0 controls other than tab and line breaks, and DEL: PostgreSQL cannot store NUL at all. */
const CONTROL_CHARACTERS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g;

/** Whether text holds a control character that is neither a tab nor a line break. */
export function hasControlCharacters(text: string): boolean {
  CONTROL_CHARACTERS.lastIndex = 0;
  return CONTROL_CHARACTERS.test(text);
}

/**
 * Trims text; a missing value becomes ''. Anything that is not a string or number is rejected.
 * A provider's stray control characters are dropped (a NUL would fail the whole batch's insert).
 */
const text = (max: number) =>
  z.preprocess(
    (v) => (v === null || v === undefined ? '' : typeof v === 'number' ? String(v) : v),
    z
      .string({ error: 'must be text' })
      .transform((s) => s.replace(CONTROL_CHARACTERS, '').normalize('NFC').trim())
      .pipe(z.string().max(max, { error: `is longer than ${max} characters` })),
  );

/**
 * In names and the other one-line fields: tab and line breaks (NEL and U+2028/9 among them)
 * become a space; every other control character (Cc: C0, DEL and C1) and format character (Cf:
 * bidi overrides, zero-width characters, BOM, soft hyphen) is dropped. They are invisible in a
 * name and end up in file names, CSV cells and page titles (see the ZIP export's folder names).
 * Bios and `about` keep line breaks and format characters (emoji need the zero-width joiner).
 */
const LINE_BREAKS = /[\t\n\v\f\r\u0085\u2028\u2029]/g;
const INVISIBLE = /[\p{Cc}\p{Cf}]/gu;

/** A one-line field as normalizePersona keeps it (see above); may be empty. */
function cleanLine(value: string): string {
  return value.replace(LINE_BREAKS, ' ').replace(INVISIBLE, '').normalize('NFC').trim();
}

/** Like text(), for one-line fields: see cleanLine. */
const line = (max: number) =>
  z.preprocess(
    (v) => (v === null || v === undefined ? '' : typeof v === 'number' ? String(v) : v),
    z
      .string({ error: 'must be text' })
      .transform(cleanLine)
      .pipe(z.string().max(max, { error: `is longer than ${max} characters` })),
  );

/** A name: a one-line field that must not be empty once cleaned (U+0085 alone is refused). */
const name = (max: number) => line(max).pipe(z.string().min(1, { error: 'is empty' }));

const gender = z.preprocess(
  (v) => (typeof v === 'string' ? (GENDER_WORDS[v.trim().toLowerCase()] ?? v) : v),
  z.enum(['f', 'm'], { error: 'must be f or m (female or male)' }),
);

/** Age: an integer 0-120, from a number or a numeric string; anything else becomes null. */
const age = z.preprocess((v) => {
  const n = typeof v === 'string' && /^\s*\d{1,3}(\.0+)?\s*$/.test(v) ? Number(v) : v;
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 120 ? n : null;
}, z.number().int().nullable());

export const personaSchema = z.object({
  firstName: name(PERSONA_LIMITS.name),
  lastName: name(PERSONA_LIMITS.name),
  gender,
  ethnicity: line(PERSONA_LIMITS.short),
  age,
  bios: z.object({
    facebook: text(PERSONA_LIMITS.bio),
    instagram: text(PERSONA_LIMITS.bio),
    x: text(PERSONA_LIMITS.bio),
    tiktok: text(PERSONA_LIMITS.bio),
  }),
  jobTitle: line(PERSONA_LIMITS.short),
  workplace: line(PERSONA_LIMITS.short),
  eduEstablishment: line(PERSONA_LIMITS.short),
  eduStudy: line(PERSONA_LIMITS.short),
  currentCity: line(PERSONA_LIMITS.short),
  currentState: line(PERSONA_LIMITS.short),
  prevCity: line(PERSONA_LIMITS.short),
  prevState: line(PERSONA_LIMITS.short),
  currentCountry: line(PERSONA_LIMITS.short),
  about: text(PERSONA_LIMITS.about),
});

export type NormalizeResult = { ok: true; persona: PersonaData } | { ok: false; reason: string };

/**
 * Validates and normalises a persona from any source: trims text, drops control characters (and,
 * in names and other one-line fields, format characters; see cleanLine), maps gender words to
 * f/m, turns the age into an integer or null and enforces length limits. The reason names the
 * field.
 */
export function normalizePersona(input: unknown): NormalizeResult {
  const parsed = personaSchema.safeParse(input);
  if (parsed.success) return { ok: true, persona: parsed.data as PersonaData };
  const issue = parsed.error.issues[0];
  const path = issue?.path.join('.') || 'persona';
  return { ok: false, reason: `${path} ${issue?.message ?? 'is invalid'}` };
}

export function fullName(p: Pick<PersonaData, 'firstName' | 'lastName'>): string {
  return `${p.firstName} ${p.lastName}`.trim();
}

export function genderWord(g: Gender): 'female' | 'male' {
  return g === 'f' ? 'female' : 'male';
}
