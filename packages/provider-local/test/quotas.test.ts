import { createHash } from 'node:crypto';
import { DEFAULT_BIO_PROMPTS, type PersonaData, type PersonaQuota, quotaMiss } from '@avatargen/core';
import { describe, expect, it } from 'vitest';
import { COUNTRIES, countryName, createLocalPersonaProvider, resolveLocation } from '../src/index.js';

const provider = createLocalPersonaProvider();

async function generate(code: string, options: { count?: number; description?: string; quotas?: PersonaQuota[]; seed?: string } = {}) {
  const batch = await provider.generate({
    count: options.count ?? options.quotas?.length ?? 20,
    description: options.description ?? 'people who like music',
    language: { code, name: code },
    bioInstructions: DEFAULT_BIO_PROMPTS,
    seed: options.seed ?? `quotas-${code}`,
    ...(options.quotas ? { quotas: options.quotas } : {}),
  });
  expect(batch.rejected).toEqual([]);
  return batch.personas;
}

const GENDERS = ['f', 'm'] as const;
const BANDS = [
  { min: 18, max: 24 },
  { min: 25, max: 40 },
  { min: 65, max: 120 },
  { min: 80, max: 90 },
  { min: 16, max: 17 },
];
const ETHNICITIES = ['Portuguese', 'Cape Verdean', 'Korean'];
const LOCATIONS = ['Lisbon', 'Porto, Portugal', 'Portugal', 'Bavaria', 'Texas', 'Atlantis City'];

/** Every combination of the four dimensions, then each dimension alone. */
const GRID: PersonaQuota[] = [
  ...GENDERS.flatMap((gender) =>
    BANDS.flatMap((age) => ETHNICITIES.flatMap((ethnicity) => LOCATIONS.map((location) => ({ gender, age, ethnicity, location })))),
  ),
  ...GENDERS.map((gender) => ({ gender })),
  ...BANDS.map((age) => ({ age })),
  ...ETHNICITIES.map((ethnicity) => ({ ethnicity })),
  ...LOCATIONS.map((location) => ({ location })),
];

const cities = (countryId: string, region?: string) =>
  (COUNTRIES.find((c) => c.id === countryId)?.cities ?? []).filter((c) => !region || c.region.en === region).flatMap((c) => [c.name, c.en]);

describe('demographic quotas', () => {
  it.each(['en', 'pt', 'de', 'pt-BR', 'ja', 'ko'])('every persona meets its quota exactly (%s)', async (code) => {
    const personas = await generate(code, { quotas: GRID });
    expect(personas).toHaveLength(GRID.length);
    for (const [i, p] of personas.entries()) {
      const quota = GRID[i] as PersonaQuota;
      expect(
        quotaMiss(p, quota),
        `${JSON.stringify(quota)}: ${p.gender} ${p.age} ${p.ethnicity} ${p.currentCity}, ${p.currentState}`,
      ).toBeNull();
    }
  });

  it('lives where the location says, with a status that suits the age', async () => {
    const personas = await generate('en', { quotas: GRID });
    for (const [i, p] of personas.entries()) {
      const quota = GRID[i] as PersonaQuota;
      const where = `${p.currentCity}, ${p.currentState}, ${p.currentCountry}`;
      if (quota.location === 'Lisbon')
        expect([p.currentCity, p.currentState, p.currentCountry], where).toEqual(['Lisbon', 'Lisbon', 'Portugal']);
      if (quota.location === 'Porto, Portugal') expect([p.currentCity, p.currentCountry], where).toEqual(['Porto', 'Portugal']);
      if (quota.location === 'Portugal') expect(cities('PT'), where).toContain(p.currentCity);
      if (quota.location === 'Bavaria') expect(cities('DE', 'Bavaria'), where).toContain(p.currentCity);
      if (quota.location === 'Texas')
        expect([cities('US', 'Texas').includes(p.currentCity), p.currentCountry], where).toEqual([true, 'United States']);
      if (quota.location === 'Atlantis City')
        expect([p.currentCity, p.currentState, p.currentCountry], where).toEqual(['Atlantis City', '', '']);
      if (quota.age && quota.age.min >= 80) expect(p.jobTitle).toMatch(/^Retired /);
      if (quota.age && quota.age.max < 18) expect(p.jobTitle).toBe('Student');
      // a band that reaches the usual 18-75 stays in it: "65+" gives no 110-year-olds
      if (quota.age?.min === 65) expect(p.age).toBeLessThanOrEqual(75);
    }
  });

  it('spells a place as the quota does where the bio language names it otherwise', async () => {
    const quotas: PersonaQuota[] = [
      { location: 'Lisbon' },
      { location: 'Bavaria' },
      { location: 'Germany' },
      { location: 'Porto, Portugal' },
    ];
    const [lisbon, bavaria, germany, porto] = await generate('de', { quotas, description: 'Leute in Hamburg' });
    expect([lisbon?.currentCity, lisbon?.currentState, lisbon?.currentCountry]).toEqual(['Lisbon', 'Lisboa', 'Portugal']);
    expect([bavaria?.currentState, bavaria?.currentCountry]).toEqual(['Bavaria', 'Deutschland']);
    expect(cities('DE', 'Bavaria')).toContain(bavaria?.currentCity);
    expect(germany?.currentCountry).toBe('Germany');
    expect([porto?.currentCity, porto?.currentState, porto?.currentCountry]).toEqual(['Porto', 'Porto', 'Portugal']);
  });

  it('takes the locale’s spelling of an ethnicity where it has one, else the quota’s text', async () => {
    const quotas: PersonaQuota[] = [{ ethnicity: 'korean' }, { ethnicity: 'Cape Verdean' }];
    const [korean, capeVerdean] = await generate('ko', { quotas });
    expect(korean?.ethnicity).toBe('East Asian (Korean)');
    expect(capeVerdean?.ethnicity).toBe('Cape Verdean');
  });

  it('keeps following the description where the quota says nothing', async () => {
    const quotas: PersonaQuota[] = Array.from({ length: 30 }, (_, i) => ({ gender: i % 2 ? 'f' : 'm', location: 'Lisbon' }));
    const personas = await generate('en', { quotas, description: 'nurses in their 30s living in Porto' });
    for (const [i, p] of personas.entries()) {
      expect(p.gender).toBe(i % 2 ? 'f' : 'm');
      expect(p.age).toBeGreaterThanOrEqual(30);
      expect(p.age).toBeLessThanOrEqual(39);
      expect(p.jobTitle).toMatch(/\bNurse$/);
      expect(p.currentCity).toBe('Lisbon');
    }
    // the band and the description's range overlap: the age is in both
    for (const p of await generate('en', { quotas: Array(20).fill({ age: { min: 35, max: 60 } }), description: 'people in their 30s' })) {
      expect(p.age).toBeGreaterThanOrEqual(35);
      expect(p.age).toBeLessThanOrEqual(39);
    }
  });
});

describe('determinism with quotas', () => {
  it('gives byte-identical personas for the same request', async () => {
    const a = await generate('pt', { quotas: GRID, description: 'jovens em Lisboa' });
    const b = await generate('pt', { quotas: GRID, description: 'jovens em Lisboa' });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
  });

  it('changes only what a quota asks for', async () => {
    const plain = await generate('en', { count: 40 });
    const strip = (p: PersonaData, ...keys: Array<keyof PersonaData>) =>
      JSON.stringify(Object.fromEntries(Object.entries(p).filter(([k]) => !keys.includes(k as keyof PersonaData))));
    const byLocation = await generate('en', { quotas: Array(40).fill({ location: 'Bavaria' }) });
    const byEthnicity = await generate('en', { quotas: Array(40).fill({ ethnicity: 'Cape Verdean' }) });
    const byAge = await generate('en', { quotas: Array(40).fill({ age: { min: 80, max: 90 } }) });
    for (const [i, p] of plain.entries()) {
      const moved = byLocation[i] as PersonaData;
      expect([moved.firstName, moved.lastName, moved.gender, moved.age, moved.ethnicity]).toEqual([
        p.firstName,
        p.lastName,
        p.gender,
        p.age,
        p.ethnicity,
      ]);
      expect(strip(byEthnicity[i] as PersonaData, 'ethnicity')).toBe(strip(p, 'ethnicity'));
      const older = byAge[i] as PersonaData;
      expect([older.firstName, older.lastName, older.gender, older.ethnicity, older.currentCity]).toEqual([
        p.firstName,
        p.lastName,
        p.gender,
        p.ethnicity,
        p.currentCity,
      ]);
    }
  });

  it('leaves a persona that already meets its quota as it is', async () => {
    const plain = await generate('de', { count: 40 });
    const quotas = plain.map((p) => ({
      gender: p.gender,
      age: { min: (p.age ?? 0) - 2, max: (p.age ?? 0) + 2 },
      ethnicity: p.ethnicity,
      location: p.currentState,
    }));
    expect(await generate('de', { quotas })).toEqual(plain);
  });

  it('gives the personas of before quotas without them (or with empty ones)', async () => {
    // Hashes of these batches taken before quotas existed, without currentCountry (new then).
    const before: Record<string, string> = {
      'en|people who like music': '831a2ac22fde53a0',
      'pt|young urban professionals in Lisbon': '45b0d2ff2a5a882c',
      'de|Studenten und Rentner in Bayern': '064894b73b730cf2',
      'ko|people in their 30s': '4c382050f42da610',
      'ja|nurses from Porto, living in Berlin': 'a58911c050375bbb',
    };
    for (const [key, hash] of Object.entries(before)) {
      const [code, description] = key.split('|') as [string, string];
      for (const quotas of [undefined, Array.from({ length: 30 }, () => ({}))]) {
        const batch = await provider.generate({
          count: 30,
          description,
          language: { code, name: code },
          bioInstructions: DEFAULT_BIO_PROMPTS,
          seed: `baseline-${code}`,
          quotas,
        });
        const personas = batch.personas.map(({ currentCountry, ...rest }) => rest);
        expect(createHash('sha256').update(JSON.stringify(personas)).digest('hex').slice(0, 16), key).toBe(hash);
      }
    }
  });
});

describe('current country', () => {
  it.each([
    ['en', '', 'United States'],
    ['pt', '', 'Portugal'],
    ['pt-BR', '', 'Brasil'],
    ['de', '', 'Deutschland'],
    ['ja', '', '日本'],
    ['pl', '', 'Polska'],
    ['en', 'people in Lisbon', 'Portugal'],
    ['de', 'Leute in Lissabon', 'Portugal'],
    ['pt', 'pessoas em Berlin', 'Alemanha'],
    ['en', 'people in Warsaw', 'Poland'],
    ['pt', 'pessoas em Varsóvia', 'Polónia'],
    ['pt-BR', 'pessoas em Varsóvia', 'Polônia'],
    ['ar', 'people in Lisbon', 'Portugal'],
    ['ko', '', ''],
    ['ar', '', ''],
  ])('%s "%s" → %s', async (code, description, country) => {
    for (const p of await generate(code, { description })) expect(p.currentCountry).toBe(country);
  });

  it('is named in the bio language, else in English', () => {
    const de = COUNTRIES.find((c) => c.id === 'DE');
    if (!de) throw new Error('DE');
    expect([
      countryName(de, 'de'),
      countryName(de, 'pt'),
      countryName(de, 'pt_BR'),
      countryName(de, 'ko'),
      countryName(de, 'en-GB'),
    ]).toEqual(['Deutschland', 'Alemanha', 'Alemanha', 'Germany', 'Germany']);
  });
});

describe('location targets in the gazetteer', () => {
  // text → country, region (native), city (native), what each part named; undefined where unknown
  const table: Array<[string, string | undefined, string | undefined, string | undefined, string[] | undefined]> = [
    ['Lisbon', 'PT', 'Lisboa', 'Lisboa', ['city']],
    ['lisboa', 'PT', 'Lisboa', 'Lisboa', ['city']],
    ['Porto, Portugal', 'PT', 'Porto', 'Porto', ['city', 'country']],
    ['Portugal', 'PT', undefined, undefined, ['country']],
    ['Bavaria', 'DE', 'Bayern', undefined, ['region']],
    ['München, Bayern, Deutschland', 'DE', 'Bayern', 'München', ['city', 'region', 'country']],
    ['Alemanha', 'DE', undefined, undefined, ['country']],
    ['Texas', 'US', 'Texas', undefined, ['region']],
    ['Portland, Maine', 'US', 'Maine', 'Portland', ['city', 'region']],
    ['Washington, D.C.', 'US', 'District of Columbia', 'Washington, D.C.', ['city']],
    ['Sao Paulo', 'BR', 'São Paulo', 'São Paulo', ['city']],
    ['Atlantis City', undefined, undefined, undefined, undefined],
    ['Porto, Germany', undefined, undefined, undefined, undefined],
    ['Springfield, Texas', undefined, undefined, undefined, undefined],
  ];
  it.each(table)('%s → %s / %s / %s', (text, country, region, city, levels) => {
    const target = resolveLocation(text);
    expect(target?.country.id).toBe(country);
    expect(target?.region?.name).toBe(region);
    expect(target?.city?.name).toBe(city);
    expect(target?.parts.map((p) => p.level)).toEqual(levels);
  });

  it('prefers the cities of the given country among names of several', () => {
    const us = COUNTRIES.find((c) => c.id === 'US');
    expect(resolveLocation('Birmingham')?.country.id).toBe('GB');
    expect(resolveLocation('Birmingham', us)?.region?.name).toBe('Alabama');
  });

  it('makes an unknown place the city, and its other parts the region and country', async () => {
    const quotas = [{ location: 'Springfield, Texas' }, { location: 'Atlantis City, Portugal' }, { location: 'Gotham, Nowhere, Far Away' }];
    const personas = await generate('en', { quotas });
    expect(personas.map((p) => [p.currentCity, p.currentState, p.currentCountry])).toEqual([
      ['Springfield', 'Texas', ''],
      ['Atlantis City', '', 'Portugal'],
      ['Gotham', 'Nowhere', 'Far Away'],
    ]);
    // no "in Atlantis City, ." where the region would be
    for (const code of ['en', 'pt', 'de', 'ar']) {
      for (const p of await generate(code, { quotas: Array(10).fill({ location: 'Atlantis City' }) })) {
        for (const text of [p.about, ...Object.values(p.bios)]) expect(text).not.toMatch(/[,،]\s*(?:[.,،!?]|$)/m);
      }
    }
  });
});
