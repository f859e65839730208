import type { Gender } from '@avatargen/core';
import { OCCUPATIONS, OCCUPATION_INFO, type Occupation, RETIRED_CUE, STUDENT_CUE } from './occupations.js';
import { type PlaceCue, readPlace } from './places.js';

export const MIN_AGE = 18;
export const MAX_AGE = 75;

/** What a free-text description asks for, as far as simple patterns can tell. */
export interface DescriptionCues {
  ageRange?: [number, number];
  genders?: Gender[];
  occupations: Occupation[];
  student: boolean;
  retired: boolean;
  /** A city, region or country of the gazetteer named in the description (see places.ts). */
  place?: PlaceCue;
  /** A state or region of the locale's faker data named in the description, when no gazetteer place is. */
  state?: string;
}

const DECADE_WORDS: Record<string, number> = {
  twenties: 20,
  thirties: 30,
  forties: 40,
  fifties: 50,
  sixties: 60,
  seventies: 70,
};

function clampRange(min: number, max: number): [number, number] | undefined {
  const lo = Math.max(MIN_AGE, Math.min(min, max));
  const hi = Math.min(MAX_AGE, Math.max(min, max));
  return lo <= hi ? [lo, hi] : undefined;
}

/** Age range asked for: "in their 30s", "early 40s", "aged 25-40", "over 50", "teenagers", "retired"... */
export function readAgeRange(text: string): [number, number] | undefined {
  const t = text.toLowerCase();
  const explicit =
    /\b(?:aged?|ages|between)\s*(\d{2})\s*(?:-|–|to|and)\s*(\d{2})\b/.exec(t) ??
    /\b(\d{2})\s*(?:-|–|to)\s*(\d{2})\s*(?:years?|y\/?o|yrs)\b/.exec(t) ??
    /(\d{2})\s*(?:-|–|〜|~|bis|a)\s*(\d{2})\s*(?:jahre|anos|歳|عام|سنة)/.exec(t) ??
    // a bare "25 to 35" / "25-35" (two-digit numbers only: "the 1990s" and "9-5" are no ages)
    /(?<![\d.,:/])(\d{2})\s*(?:-|–|to|bis|a|até|à)\s*(\d{2})(?![\d.,:/%])/.exec(t);
  if (explicit) return clampRange(Number(explicit[1]), Number(explicit[2]));
  const exact = /\b(\d{2})[- ]?(?:years?[- ]old|y\/?o)\b/.exec(t) ?? /(\d{2})\s*(?:歳|jährige|anos de idade)/.exec(t);
  if (exact) return clampRange(Number(exact[1]), Number(exact[1]));
  const over = /\b(?:over|older than|above|at least)\s*(\d{2})\b/.exec(t) ?? /\b(?:über|mais de|acima de)\s*(\d{2})\b/.exec(t);
  if (over) return clampRange(Number(over[1]), MAX_AGE);
  const under = /\b(?:under|younger than|below)\s*(\d{2})\b/.exec(t) ?? /\b(?:unter|menos de|abaixo de)\s*(\d{2})\b/.exec(t);
  if (under) return clampRange(MIN_AGE, Number(under[1]) - 1);

  // Decades: "20s", "30s and 40s", "early 30s", "late twenties", "30代", "Mitte 30", "in den 30ern", "casa dos 30"
  const decades: Array<[number, number]> = [];
  const add = (base: number, part?: string) => {
    if (part === 'early' || part === 'anfang' || part === '前半') decades.push([base, base + 3]);
    else if (part === 'mid' || part === 'mitte' || part === '半ば') decades.push([base + 3, base + 6]);
    else if (part === 'late' || part === 'ende' || part === '後半') decades.push([base + 7, base + 9]);
    else decades.push([base, base + 9]);
  };
  for (const m of t.matchAll(/\b(?:(early|mid|late)[- ])?(\d)0'?s\b/g)) add(Number(m[2]) * 10, m[1]);
  for (const m of t.matchAll(/\b(?:(early|mid|late)[- ])?(twenties|thirties|forties|fifties|sixties|seventies)\b/g)) {
    add(DECADE_WORDS[m[2] as string] as number, m[1]);
  }
  for (const m of t.matchAll(/(\d)0代(前半|半ば|後半)?/g)) add(Number(m[1]) * 10, m[2]);
  for (const m of t.matchAll(/\b(anfang|mitte|ende)\s*(\d)0\b/g)) add(Number(m[2]) * 10, m[1]);
  for (const m of t.matchAll(/\b(\d)0(?:ern|er jahren)\b|casa dos (\d)0/g)) add(Number(m[1] ?? m[2]) * 10);
  if (decades.length > 0) {
    return clampRange(Math.min(...decades.map((d) => d[0])), Math.max(...decades.map((d) => d[1])));
  }
  if (/\bteen(?:s|agers?)?\b|teenage|jugendliche|adolescentes|ティーン|十代|مراهق/.test(t)) return [18, 19];
  if (/young adults?|junge erwachsene|jovens adultos/.test(t)) return [18, 29];
  if (/young professionals?/.test(t)) return [23, 35];
  if (!RETIRED_CUE.test(t) && /\b(?:young|junge|jungen|jovens|jóvenes|jeunes)\b/.test(t)) return [18, 30];
  if (/middle[- ]aged|mittleren alters|meia[- ]idade|中年/.test(t)) return [40, 60];
  if (/grandparents?|grandmothers?|grandfathers?|großeltern|avós|祖父母/.test(t)) return [55, 75];
  if (/seniors?\b|elderly|senioren|idosos|高齢|كبار السن/.test(t)) return [65, 75];
  if (RETIRED_CUE.test(t)) return [62, 75];
  return undefined;
}

export function readGenders(text: string): Gender[] | undefined {
  const t = text.toLowerCase();
  const female =
    /\b(?:women|woman|female|females|girls?|ladies|mothers?|moms?|mums?|wives|sisters?|frauen|mütter|mulheres|mães|meninas)\b|女性|نساء|سيدات/.test(
      t,
    );
  const male = /\b(?:men|man|male|males|boys?|guys|fathers?|dads?|husbands?|brothers?|männer|väter|homens|pais|rapazes)\b|男性|رجال/.test(
    t,
  );
  if (female && !male) return ['f'];
  if (male && !female) return ['m'];
  return undefined;
}

export function readCues(description: string, states: readonly string[] = []): DescriptionCues {
  const t = description.toLowerCase();
  const occupations = OCCUPATIONS.filter((o) => OCCUPATION_INFO[o].cue.test(t));
  const place = readPlace(description);
  const state = place ? undefined : states.find((s) => s.length > 2 && t.includes(s.toLowerCase()));
  return {
    ageRange: readAgeRange(description),
    genders: readGenders(description),
    occupations,
    student: STUDENT_CUE.test(t),
    retired: RETIRED_CUE.test(t),
    place,
    state,
  };
}
