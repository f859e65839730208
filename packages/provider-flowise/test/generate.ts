/**
 * A small seeded generator of personas with hostile strings, and the ways a persona flow may
 * serialise them, for the parser's property test. No dependency: mulberry32 for randomness.
 */
import type { PersonaData } from '@avatargen/core';

export type Random = () => number;

export function seeded(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const int = (random: Random, min: number, max: number) => min + Math.floor(random() * (max - min + 1));
export const oneOf = <T>(random: Random, list: readonly T[]): T => list[int(random, 0, list.length - 1)] as T;

/** Pieces that break naive parsers: JSON syntax inside strings, escapes, fences, emoji, RTL, newlines. */
const HOSTILE = [
  '"',
  "'",
  '{',
  '}',
  '}{',
  '"}{"',
  '[',
  ']',
  '],[',
  '\\',
  '\\"',
  '\\\\',
  '\\n',
  '\\u0041',
  '\n',
  '\r\n',
  '\t',
  '```',
  '```json',
  ':',
  ',',
  '"bios": "{}"',
  '{"firstname": "Eve"}',
  '👩🏽‍💻',
  '🎧',
  '🏳️‍🌈',
  '😀😀',
  'مرحبا بالعالم',
  'שלום עולם',
  '\u202eevil\u202c',
  '\u200f',
  '日本語',
  'Zoë',
  'café',
  '\u0000',
  '\u2028',
  '&amp;',
  '<b>',
];
const WORDS = ['Maria', 'nurse', 'loves', 'hiking', 'in', 'Austin', 'coffee', 'and', 'jazz', "O'Brien", 'São Paulo'];

/**
 * A string with hostile pieces, already in the form normalizePersona keeps: control characters
 * other than tab and line breaks dropped (the NUL among them), NFC, trimmed, within limits. With
 * `oneLine` (names and the other one-line fields), tab and line breaks (U+2028 among them) become
 * spaces and every other control or format character goes too (bidi marks, zero-width joiners).
 */
export function hostileString(random: Random, maxParts = 8, nonEmpty = false, oneLine = false): string {
  const parts: string[] = [];
  const n = int(random, nonEmpty ? 1 : 0, maxParts);
  for (let i = 0; i < n; i++) parts.push(random() < 0.55 ? oneOf(random, HOSTILE) : oneOf(random, WORDS));
  let text = parts.join(random() < 0.5 ? ' ' : '');
  text = oneLine
    ? text.replace(/[\t\n\v\f\r\u0085\u2028\u2029]/g, ' ').replace(/[\p{Cc}\p{Cf}]/gu, '')
    : text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, '');
  text = text.normalize('NFC').trim();
  if (nonEmpty && text === '') text = oneOf(random, WORDS);
  return text;
}

export function randomPersona(random: Random): PersonaData {
  return {
    firstName: hostileString(random, 4, true, true),
    lastName: hostileString(random, 4, true, true),
    gender: random() < 0.5 ? 'f' : 'm',
    ethnicity: hostileString(random, 3, false, true),
    age: random() < 0.1 ? null : int(random, 0, 120),
    bios: {
      facebook: hostileString(random, 12),
      instagram: hostileString(random, 8),
      x: hostileString(random, 8),
      tiktok: hostileString(random, 5),
    },
    jobTitle: hostileString(random, 4, false, true),
    workplace: hostileString(random, 4, false, true),
    eduEstablishment: hostileString(random, 4, false, true),
    eduStudy: hostileString(random, 3, false, true),
    currentCity: hostileString(random, 3, false, true),
    currentState: hostileString(random, 2, false, true),
    currentCountry: hostileString(random, 2, false, true),
    prevCity: hostileString(random, 3, false, true),
    prevState: hostileString(random, 2, false, true),
    about: hostileString(random, 16),
  };
}

/** The persona in the persona flow's object shape; `bios` as a string of JSON (the flow's way) or an object. */
export function toFlowiseObject(persona: PersonaData, random: Random): Record<string, unknown> {
  const bios: Record<string, unknown> = {
    facebook_bio: persona.bios.facebook,
    instagram_bio: persona.bios.instagram,
    x_bio: persona.bios.x,
    tiktok_bio: persona.bios.tiktok,
    // The flow may give the age as a number or as a numeric string.
    age: persona.age !== null && random() < 0.3 ? String(persona.age) : persona.age,
    job_title: persona.jobTitle,
    workplace: persona.workplace,
    edu_establishment: persona.eduEstablishment,
    edu_study: persona.eduStudy,
    current_city: persona.currentCity,
    current_state: persona.currentState,
    current_country: persona.currentCountry,
    prev_city: persona.prevCity,
    prev_state: persona.prevState,
    about: persona.about,
  };
  const gender = oneOf(random, persona.gender === 'f' ? ['f', 'female', 'Female', ' F '] : ['m', 'male', 'Male', 'M']);
  return {
    firstname: persona.firstName,
    lastname: persona.lastName,
    gender,
    ethnicity: persona.ethnicity,
    bios: random() < 0.75 ? JSON.stringify(bios) : bios,
  };
}

const JUNK = ['', '\n', '\n\n', ' ', 'Persona:', '---', 'Here is the next one {note} [1]:', '* * *', '// done'];

export type Layout = 'lines' | 'pretty' | 'array' | 'fenced' | 'junk';
export const LAYOUTS: readonly Layout[] = ['lines', 'pretty', 'array', 'fenced', 'junk'];

/** Serialises the objects as a flow's `text` in one of the layouts LLM flows produce. */
export function layoutText(objects: readonly unknown[], layout: Layout, random: Random): string {
  switch (layout) {
    case 'lines':
      return objects.map((o) => JSON.stringify(o)).join('\n');
    case 'pretty':
      return objects.map((o) => JSON.stringify(o, null, 2)).join('\n');
    case 'array':
      return JSON.stringify(objects, null, random() < 0.5 ? 2 : undefined);
    case 'fenced':
      return `Here are your personas:\n\`\`\`json\n${objects.map((o) => JSON.stringify(o, null, 2)).join('\n')}\n\`\`\`\nHope this helps!`;
    case 'junk':
      return objects.map((o) => `${oneOf(random, JUNK)}${JSON.stringify(o)}`).join(oneOf(random, JUNK)) + oneOf(random, JUNK);
  }
}
