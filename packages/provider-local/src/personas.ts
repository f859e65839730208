import { setImmediate as yieldToLoop } from 'node:timers/promises';
import {
  type Gender,
  matchesEthnicity,
  matchesLocation,
  normalizePersona,
  PERSONA_LIMITS,
  type PersonaBatch,
  type PersonaData,
  type PersonaProvider,
  type PersonaQuota,
  type PersonaRequest,
  type Platform,
  ProviderError,
  type RejectedPersona,
  throwIfAborted,
} from '@avatargen/core';
import type { Faker } from '@faker-js/faker';
import { type BioRules, composeBio, readBioInstructions } from './bio-rules.js';
import { type DescriptionCues, MAX_AGE, MIN_AGE, readCues } from './cues.js';
import {
  ethnicityWeights,
  type FakerLocaleName,
  fakerFor,
  fakerLocaleFor,
  localeData,
  pickWeighted,
  type SexedNames,
  sexedNames,
  type Weighted,
} from './locales.js';
import { OCCUPATIONS, OCCUPATION_INFO, type Occupation } from './occupations.js';
import {
  type City,
  type Country,
  countryForLocale,
  countryName,
  type LocationTarget,
  levelOfName,
  type PlaceLevel,
  pickHome,
  placeName,
  readPlace,
  resolveLocation,
} from './places.js';
import { fill, HOBBY_EMOJI, PORTUGUESE_COMPANIES, type Phrasebook, phrasebookFor, resolveGendered } from './phrasebook.js';
import { createRandom, type Random, seedWords } from '@avatargen/core';
import { clip, tidy } from './text.js';

/** Platform bio limits in characters (code points), as the platforms enforce them. */
export const BIO_LIMITS: Record<Platform, number> = { x: 160, instagram: 150, tiktok: 80, facebook: 255 };

/** More than this in one call is refused: the pipeline asks for batches of 10. */
export const MAX_PERSONAS_PER_CALL = 1000;

const SOURCE = 'local';

type Status = 'working' | 'student' | 'retired';

interface LocaleContext {
  locale: FakerLocaleName;
  faker: Faker;
  book: Phrasebook;
  cues: DescriptionCues;
  /** The locale has states/regions of its own (otherwise faker would fall back to US states). */
  hasStates: boolean;
  /** Company name patterns to use instead of faker's (undefined: faker's are fine). */
  companies: readonly string[] | undefined;
  languageCode: string;
  firstNames: SexedNames | undefined;
  lastNames: SexedNames | undefined;
  /** What the request's bio instructions ask for, per platform (see bio-rules.ts). */
  bioRules: Record<Platform, BioRules>;
  /** Where personas live: the country of the place named in the description, else the locale's (if the gazetteer has it). */
  country: Country | undefined;
}

async function localeContext(
  languageCode: string,
  description: string,
  instructions: Partial<Record<Platform, string>> | undefined,
): Promise<LocaleContext> {
  // People of a place named in the description get that country's names (faker locale) when the bio
  // language is of another gazetteer country: "people in Lisbon" with English bios are Portuguese,
  // not American. Only between Latin-script countries: English bios get no kanji names.
  const languageLocale = fakerLocaleFor(languageCode);
  const own = countryForLocale(languageLocale);
  const named = readPlace(description)?.country;
  const switchNames = own && named && own !== named && own.lang !== 'ja' && named.lang !== 'ja';
  const locale = switchNames ? (named.locales[0] ?? languageLocale) : languageLocale;
  const [faker, data, firstNames, lastNames] = await Promise.all([
    fakerFor(locale),
    localeData(locale),
    sexedNames(locale, 'first_name'),
    sexedNames(locale, 'last_name'),
  ]);
  const book = phrasebookFor(languageCode);
  const cues = readCues(description, data.states);
  return {
    locale,
    faker,
    book,
    cues,
    bioRules: {
      facebook: readBioInstructions(instructions?.facebook),
      instagram: readBioInstructions(instructions?.instagram),
      x: readBioInstructions(instructions?.x),
      tiktok: readBioInstructions(instructions?.tiktok),
    },
    country: cues.place?.country ?? countryForLocale(locale),
    hasStates: data.states.length > 0,
    companies: book.ownCompanies
      ? book.companies
      : locale === 'pt_PT'
        ? PORTUGUESE_COMPANIES
        : data.hasCompanies
          ? undefined
          : book.companies,
    languageCode,
    firstNames,
    lastNames,
  };
}

function pickAge(r: Random, range: [number, number] | undefined): number {
  if (range) return r.int(range[0], range[1]);
  // Two dice: more people in their 30s-50s than at the ends of the range.
  return Math.round((r.int(MIN_AGE, MAX_AGE) + r.int(MIN_AGE, MAX_AGE)) / 2);
}

function chooseStatusAndAge(r: Random, cues: DescriptionCues): { status: Status; age: number; asked: boolean } {
  // A named job refines students ("nursing students": the field) and the retired (their former job).
  const asked: Status[] = [];
  if (cues.student) asked.push('student');
  if (cues.retired) asked.push('retired');
  if (asked.length === 0 && cues.occupations.length > 0) asked.push('working');
  if (asked.length > 0) {
    const status = r.pick(asked);
    const fallback: [number, number] = status === 'student' ? [18, 26] : status === 'retired' ? [62, 75] : [22, 67];
    return { status, age: pickAge(r, cues.ageRange ?? fallback), asked: true };
  }
  const age = pickAge(r, cues.ageRange);
  let status: Status = 'working';
  if (age <= 21 && r.chance(0.7)) status = 'student';
  else if (age <= 24 && r.chance(0.25)) status = 'student';
  else if (age >= 67 && r.chance(0.75)) status = 'retired';
  else if (age >= 62 && r.chance(0.3)) status = 'retired';
  return { status, age, asked: false };
}

const overlap = (a: readonly [number, number], b: readonly [number, number]): [number, number] | undefined =>
  Math.max(a[0], b[0]) <= Math.min(a[1], b[1]) ? [Math.max(a[0], b[0]), Math.min(a[1], b[1])] : undefined;

/**
 * An age in a quota's band: within the description's range where the two overlap, else within
 * the usual 18-75 where the band reaches it ("65+" gives 65-75), else anywhere in the band (80-90).
 */
function quotaAge(q: Random, band: { min: number; max: number }, cueRange: [number, number] | undefined): number {
  const wanted: [number, number] = [band.min, band.max];
  const range = (cueRange && overlap(wanted, cueRange)) ?? overlap(wanted, [MIN_AGE, MAX_AGE]) ?? wanted;
  return q.int(range[0], range[1]);
}

/** Whether a status the description asked for still suits a quota's age. */
function statusFits(status: Status, age: number): boolean {
  if (status === 'student') return age <= 30;
  if (status === 'retired') return age >= 55;
  return age <= 67;
}

/** The status of a quota's age, with chooseStatusAndAge's odds; under 18 in school, over 75 retired. */
function statusForAge(q: Random, age: number, asked: Status | undefined): Status {
  if (age < MIN_AGE) return 'student';
  if (age > MAX_AGE) return 'retired';
  if (asked && statusFits(asked, age)) return asked;
  if (age <= 21 && q.chance(0.7)) return 'student';
  if (age <= 24 && q.chance(0.25)) return 'student';
  if (age >= 67 && q.chance(0.75)) return 'retired';
  if (age >= 62 && q.chance(0.3)) return 'retired';
  return 'working';
}

/**
 * A quota's ethnicity in the locale's spelling where it has a matching entry ("korean" → "East
 * Asian (Korean)"; among several, by weight), else the quota's text as given.
 */
function quotaEthnicity(q: Random, wanted: string, weights: Weighted): string {
  const fold = (t: string) =>
    t
      .normalize('NFKD')
      .replace(/\p{M}+/gu, '')
      .toLowerCase()
      .trim();
  const same = weights.find(([name]) => fold(name) === fold(wanted));
  if (same) return same[0];
  const matching = weights.filter(([name]) => matchesEthnicity({ ethnicity: name }, wanted));
  return matching.length > 0 ? pickWeighted(matching, q.next()) : wanted.trim();
}

/** "in Atlantis City, ." → "in Atlantis City.": a comma (Latin or Arabic) with nothing after it before punctuation. */
function dropEmptyPlace(text: string): string {
  return text.replace(/[ \t]*[,،][ \t]*(?=[.,،!?)]|$)/gmu, '');
}

/** The persona's current place as the three fields core matches a location against. */
interface Where {
  currentCity: string;
  currentState: string;
  currentCountry: string;
}

const FIELD: Record<PlaceLevel, keyof Where> = { city: 'currentCity', region: 'currentState', country: 'currentCountry' };

/**
 * Gives a quota's part its own spelling where the gazetteer's differs in the bio language (quota
 * "Lisbon", Portuguese bios "Lisboa"; "Bavaria" and "Bayern"), so core's word match holds.
 */
function spellAsQuota(where: Where, target: LocationTarget, location: string): Where {
  const fixed = { ...where };
  for (const part of target.parts) if (!matchesLocation(fixed, part.text)) fixed[FIELD[part.level]] = part.text;
  // never expected, but a quota must be met: the whole text as the city meets every part
  if (!matchesLocation(fixed, location)) fixed.currentCity = location.trim();
  return fixed;
}

/**
 * A place the gazetteer does not know ("Atlantis City", "Springfield, Texas"): the first part is the
 * city; a later one the gazetteer knows as a country is the country, the others the region, then the country.
 */
function unknownPlace(location: string): Where {
  const [city = location.trim(), ...rest] = location
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  const where: Where = { currentCity: city, currentState: '', currentCountry: '' };
  const more: string[] = [];
  for (const part of rest) {
    if (levelOfName(part) === 'country' && !where.currentCountry) where.currentCountry = part;
    else if (!where.currentState) where.currentState = part;
    else more.push(part);
  }
  if (more.length > 0) where.currentCountry = [...more, where.currentCountry].filter(Boolean).join(', ');
  return where;
}

function shortText(text: string): string {
  return clip(tidy(text), PERSONA_LIMITS.short);
}

/**
 * One persona, fully determined by (seed, index), the request's language and description, and its
 * quota. Every draw of the persona without a quota is made either way (the same stream of `r` and
 * faker), and a quota only replaces what misses it, each dimension from a stream of its own: a
 * quota changes nothing it does not ask for, and no quota gives the personas of before quotas.
 */
export function makePersona(ctx: LocaleContext, seed: string, index: number, quota?: PersonaQuota): PersonaData {
  const { faker, book, cues } = ctx;
  faker.seed(seedWords('persona', seed, index));
  const r = createRandom('persona-choices', seed, index);
  const quotaRandom = (dimension: string) => createRandom('persona-quota', dimension, seed, index);

  const drawnGender: Gender = r.pick(cues.genders ?? (['f', 'm'] as const));
  const gender: Gender = quota?.gender ?? drawnGender;
  const sex = gender === 'f' ? 'female' : 'male';
  const drawn = chooseStatusAndAge(r, cues);
  let { status, age } = drawn;
  if (quota?.age && (age < quota.age.min || age > quota.age.max)) {
    const q = quotaRandom('age');
    age = quotaAge(q, quota.age, cues.ageRange);
    status = statusForAge(q, age, drawn.asked ? drawn.status : undefined);
  }
  const occupation: Occupation = r.pick(cues.occupations.length > 0 ? cues.occupations : OCCUPATIONS);
  const info = OCCUPATION_INFO[occupation];

  // faker's firstName(sex) sometimes draws from the unisex list; draw from the sexed one ourselves.
  const { firstNames, lastNames } = ctx;
  const firstName = tidy(firstNames ? faker.helpers.arrayElement(firstNames[gender]) : faker.person.firstName(sex));
  const lastName = tidy(lastNames ? faker.helpers.arrayElement(lastNames[gender]) : faker.person.lastName(sex));
  const weights = ethnicityWeights(ctx.locale);
  const drawnEthnicity = pickWeighted(weights, r.next());
  const ethnicity =
    quota?.ethnicity && !matchesEthnicity({ ethnicity: drawnEthnicity }, quota.ethnicity)
      ? quotaEthnicity(quotaRandom('ethnicity'), quota.ethnicity, weights)
      : drawnEthnicity;

  let currentCity: string;
  let currentState: string;
  let currentCountry = '';
  let prevCity: string;
  let prevState: string;
  // each city is named for its own country (the previous one may be abroad: "from Porto, living in Berlin")
  const name = (place: { name: string; en: string }, of: Country) => placeName(place, of, ctx.languageCode);
  // Where a location quota sends the persona: the drawn home when it already lies there, else a city of the place.
  const resolved = quota?.location ? resolveLocation(quota.location, ctx.country) : undefined;
  let target = resolved;
  const inTarget = (city: City) =>
    !!target &&
    city.country === target.country &&
    (!target.region || city.region === target.region) &&
    (!target.city || city === target.city);
  let homeCountry = ctx.country;
  if (ctx.country) {
    // Real cities with their own region, from the gazetteer (faker invents towns and mixes regions).
    const home = pickHome(r, cues.place, ctx.country);
    currentCity = name(home.city, home.city.country);
    currentState = name(home.city.region, home.city.country);
    currentCountry = countryName(home.city.country, ctx.languageCode);
    prevCity = name(home.prev, home.prev.country);
    prevState = name(home.prev.region, home.prev.country);
    if (target && inTarget(home.city)) target = undefined; // already there: nothing to move
  } else {
    // Locales the gazetteer lacks keep faker's places (its city names may be invented).
    const state = () => (ctx.hasStates ? faker.location.state() : '');
    currentState = cues.state ?? state();
    currentCity = faker.location.city();
    prevState = r.chance(0.55) ? currentState : state();
    prevCity = faker.location.city();
    for (let i = 0; i < 5 && prevCity === currentCity; i++) prevCity = faker.location.city();
  }
  if (target) {
    // drawn from a stream of its own, after the drawn home, so the rest of the persona stays as it was
    const place = { country: target.country, region: target.region, city: target.city, matched: quota?.location ?? '' };
    const home = pickHome(quotaRandom('location'), { ...place, origin: cues.place?.origin }, target.country);
    homeCountry = home.city.country;
    currentCity = name(home.city, home.city.country);
    currentState = name(home.city.region, home.city.country);
    currentCountry = countryName(home.city.country, ctx.languageCode);
    prevCity = name(home.prev, home.prev.country);
    prevState = name(home.prev.region, home.prev.country);
  }
  if (quota?.location) {
    const where = { currentCity, currentState, currentCountry };
    ({ currentCity, currentState, currentCountry } = resolved
      ? spellAsQuota(where, resolved, quota.location)
      : unknownPlace(quota.location));
  }

  const education = status === 'student' ? 'university' : info.education;
  const schoolCity = status === 'student' || r.chance(0.4) ? currentCity : prevCity;
  const schoolState = schoolCity === currentCity ? currentState : prevState;
  // "{state} State University" is an American pattern: elsewhere it would name a university that does not exist.
  const universities =
    homeCountry && homeCountry.id !== 'US' ? book.universities.filter((u) => !u.includes('State University')) : book.universities;
  const school = fill(r.pick(education === 'university' ? universities : book.vocational), {
    city: schoolCity,
    state: schoolState || schoolCity,
    name: faker.person.lastName(),
  });
  const study = book.studies[occupation];

  const employer =
    info.place === 'company'
      ? ctx.companies
        ? fill(r.pick(ctx.companies), { city: currentCity, name: faker.person.lastName() })
        : faker.company.name()
      : fill(r.pick(book.places[info.place]), { city: currentCity, name: faker.person.lastName() });
  const workplace = status === 'student' ? school : employer;

  const baseJob = resolveGendered(book.occupations[occupation], gender);
  const lower = (s: string) => (book.id === 'en' || book.id === 'pt' ? s.toLocaleLowerCase(book.id) : s);
  let jobTitle = baseJob;
  if (status === 'student') jobTitle = resolveGendered(book.student, gender);
  if (status === 'retired') jobTitle = fill(resolveGendered(book.retired, gender), { job: baseJob, jobLower: lower(baseJob) });

  const hobbyIndexes = r.shuffle(book.hobbies.map((_, i) => i)).slice(0, 3) as [number, number, number];
  const [h1, h2, h3] = hobbyIndexes.map((i) => book.hobbies[i] as string) as [string, string, string];
  const years = Math.max(2, Math.min(age - 16, r.int(2, 20)));

  const role =
    status === 'working'
      ? fill(resolveGendered(book.roleAt, gender), { job: jobTitle, workplace })
      : status === 'student'
        ? fill(resolveGendered(book.studentAt, gender), { job: jobTitle, school })
        : jobTitle;
  const vars: Record<string, string> = {
    first: firstName,
    job: jobTitle,
    jobLower: lower(jobTitle),
    aJob: `${/^[aeiou]/i.test(baseJob) ? 'an' : 'a'} ${lower(baseJob)}`,
    role,
    workplace,
    school,
    study,
    city: currentCity,
    state: currentState,
    prevCity,
    prevState: prevState || prevCity,
    years: String(years),
    yearsAr: years <= 10 ? `${years} سنوات` : `${years} سنة`,
    h1,
    h2,
    h3,
    e1: HOBBY_EMOJI[hobbyIndexes[0]] as string,
    e2: HOBBY_EMOJI[hobbyIndexes[1]] as string,
    motto: r.pick(book.mottos),
  };
  vars.studied = fill(resolveGendered(status === 'student' ? book.studying : book.studied, gender), vars);
  vars.studiedAbout = fill(resolveGendered(book.studiedAbout, gender), vars);

  // Each platform has its own voice; templates are tried from a seeded start until one fits the
  // limit, with what the platform's bio instruction asks for applied (length, emoji, hashtags, tone).
  // A quota's place without a region ("Atlantis City") leaves "{city}, {state}" with nothing after
  // the comma; only then is it dropped, so personas without quotas keep their text as it was.
  const text = (t: string) => (quota?.location && !currentState ? dropEmptyPlace(t) : t);
  const bio = (platform: Platform) => {
    const candidates = book.bios[platform].map((t) => tidy(text(fill(resolveGendered(t, gender), vars))));
    const context = {
      book,
      gender,
      hobbies: [h1, h2, h3],
      emoji: vars.e1 as string,
      platformLimit: BIO_LIMITS[platform],
      multiline: platform === 'instagram',
    };
    return composeBio(candidates, ctx.bioRules[platform], context, r.int(0, Math.max(0, candidates.length - 2)));
  };
  const bios = { facebook: bio('facebook'), instagram: bio('instagram'), x: bio('x'), tiktok: bio('tiktok') };

  const sentence = (list: readonly (typeof book.about.origin)[number][]) => fill(resolveGendered(r.pick(list), gender), vars);
  const aboutParts = [sentence(book.about.origin)];
  if (status === 'working') aboutParts.push(sentence(book.about.work), vars.studiedAbout);
  if (status === 'student') aboutParts.push(sentence(book.about.student));
  if (status === 'retired') aboutParts.push(sentence(book.about.retired), vars.studiedAbout);
  aboutParts.push(sentence(book.about.hobbies), sentence(book.about.trait));
  const about = clip(tidy(text(aboutParts.join(book.id === 'ja' ? '' : ' '))), PERSONA_LIMITS.about);

  return {
    firstName: clip(firstName, PERSONA_LIMITS.name),
    lastName: clip(lastName, PERSONA_LIMITS.name),
    gender,
    ethnicity: shortText(ethnicity),
    age,
    bios,
    jobTitle: shortText(jobTitle),
    workplace: shortText(workplace),
    eduEstablishment: shortText(school),
    eduStudy: shortText(study),
    currentCity: shortText(currentCity),
    currentState: shortText(currentState),
    currentCountry: shortText(currentCountry),
    prevCity: shortText(prevCity),
    prevState: shortText(prevState),
    about,
  };
}

/**
 * Personas from faker in the locale of the bio language, with no network. The same seed,
 * language and description always give the same personas (persona i depends only on the seed
 * and i, so a bigger count extends a batch without changing its start).
 */
export function createLocalPersonaProvider(): PersonaProvider {
  return {
    // Named in every picture's provenance mark: the personas are faker's, not a model's.
    describe: () => ({ model: 'faker' }),
    async generate(request: PersonaRequest): Promise<PersonaBatch> {
      throwIfAborted(request.signal);
      const { count } = request;
      if (!Number.isInteger(count) || count < 1 || count > MAX_PERSONAS_PER_CALL) {
        throw ProviderError.badRequest(SOURCE, `count must be a whole number from 1 to ${MAX_PERSONAS_PER_CALL}, got ${count}`);
      }
      const ctx = await localeContext(request.language?.code || 'en', request.description ?? '', request.bioInstructions);
      const seed = String(request.seed ?? '');
      const personas: PersonaData[] = [];
      const rejected: RejectedPersona[] = [];
      for (let index = 0; index < count; index++) {
        if (index > 0 && index % 25 === 0) await yieldToLoop(); // keep the event loop (and abort) responsive
        throwIfAborted(request.signal);
        const normalized = normalizePersona(makePersona(ctx, seed, index, request.quotas?.[index]));
        if (normalized.ok) personas.push(normalized.persona);
        else rejected.push({ index, reason: normalized.reason });
      }
      return { personas, rejected };
    },
  };
}
