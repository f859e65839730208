import { DEFAULT_BIO_PROMPTS, type PersonaData } from '@avatargen/core';
import { describe, expect, it } from 'vitest';
import {
  COUNTRIES,
  countryForLocale,
  countryName,
  createLocalPersonaProvider,
  sexedFirstNames,
  readAgeRange,
  readCues,
  readGenders,
  readPlace,
} from '../src/index.js';

const provider = createLocalPersonaProvider();

async function generate(description: string, code: string, count = 40): Promise<PersonaData[]> {
  const batch = await provider.generate({
    count,
    description,
    language: { code, name: code },
    bioInstructions: DEFAULT_BIO_PROMPTS,
    seed: `cues-${code}-${description}`,
  });
  expect(batch.rejected).toEqual([]);
  return batch.personas;
}

/** Every real (city, region) pair of a country, in native and English spelling. */
function realPairs(countryId: string): Set<string> {
  const country = COUNTRIES.find((c) => c.id === countryId);
  if (!country) throw new Error(countryId);
  return new Set(
    country.cities.flatMap((c) => [
      `${c.name}|${c.region.name}`,
      `${c.en}|${c.region.en}`,
      `${c.name}|${c.region.en}`,
      `${c.en}|${c.region.name}`,
    ]),
  );
}

describe('ages from the description', () => {
  const table: Array<[string, [number, number] | undefined]> = [
    ['young people who love festivals', [18, 30]],
    ['young professionals in tech', [23, 35]],
    ['young urban professionals in Lisbon', [18, 30]],
    ['young adults', [18, 29]],
    ['retired people who garden', [62, 75]],
    ['people in their 40s', [40, 49]],
    ['in their early 30s', [30, 33]],
    ['late twenties', [27, 29]],
    ['25 to 35', [25, 35]],
    ['people 25 to 35 in Lisbon', [25, 35]],
    ['aged 25-40', [25, 40]],
    ['between 30 and 45', [30, 45]],
    ['pessoas de 25 a 35 anos', [25, 35]],
    ['Menschen in den 50ern', [50, 59]],
    ['Mitte 30', [33, 36]],
    ['30代の会社員', [30, 39]],
    ['over 60 and active', [60, 75]],
    ['under 25', [18, 24]],
    ['teenagers who game', [18, 19]],
    ['middle-aged runners', [40, 60]],
    ['seniors', [65, 75]],
    ['young retirees', [62, 75]],
    ['kids aged 5-10', undefined],
    ['people in their 80s', undefined],
    ['the 1990s generation', undefined],
    ['working 9-5 in 2020-2024', undefined],
    ['people who like cats', undefined],
  ];
  it.each(table)('%s → %j', (text, range) => {
    expect(readAgeRange(text)).toEqual(range);
  });
});

describe('gender from the description', () => {
  const table: Array<[string, Array<'f' | 'm'> | undefined]> = [
    ['young women who run marathons', ['f']],
    ['Männer, die Fußball spielen', ['m']],
    ['mulheres empreendedoras', ['f']],
    ['men and women', undefined],
    ['people in Lisbon', undefined],
  ];
  it.each(table)('%s → %j', (text, genders) => {
    expect(readGenders(text)).toEqual(genders);
  });
});

describe('places from the description', () => {
  // description → country, region (native), city (native); undefined where none is named
  const table: Array<[string, string | undefined, string | undefined, string | undefined]> = [
    ['young people in Lisbon', 'PT', 'Lisboa', 'Lisboa'],
    ['young urban professionals in Lisbon', 'PT', 'Lisboa', 'Lisboa'],
    ['pessoas em Lisboa', 'PT', 'Lisboa', 'Lisboa'],
    ['IN LISBON', 'PT', 'Lisboa', 'Lisboa'],
    ['designers from Porto', 'PT', 'Porto', 'Porto'],
    ['nurses in Portugal', 'PT', undefined, undefined],
    ['students in Berlin', 'DE', 'Berlin', 'Berlin'],
    ['Leute aus München', 'DE', 'Bayern', 'München'],
    ['engineers based in Munich', 'DE', 'Bayern', 'München'],
    ['families in Bavaria', 'DE', 'Bayern', undefined],
    ['people living in Germany', 'DE', undefined, undefined],
    ['pessoas em Porto Alegre', 'BR', 'Rio Grande do Sul', 'Porto Alegre'],
    ['gente no Rio de Janeiro', 'BR', 'Rio de Janeiro', 'Rio de Janeiro'],
    ['Nurses and teachers in their 30s living in Texas', 'US', 'Texas', undefined],
    ['baristas in New York City', 'US', 'New York', 'New York City'],
    ['artists in Paris', 'FR', 'Île-de-France', 'Paris'],
    ['people in Nice', 'FR', "Provence-Alpes-Côte d'Azur", 'Nice'],
    ['people in nice clothes', undefined, undefined, undefined],
    ['gente en Sevilla', 'ES', 'Andalucía', 'Sevilla'],
    ['people in Milan', 'IT', 'Lombardia', 'Milano'],
    ['people in Edinburgh', 'GB', 'Scotland', 'Edinburgh'],
    ['mensen uit Amsterdam', 'NL', 'Noord-Holland', 'Amsterdam'],
    ['ludzie w Krakowie', undefined, undefined, undefined],
    ['people in Kraków', 'PL', 'małopolskie', 'Kraków'],
    ['東京在住の会社員', 'JP', '東京都', undefined],
    ['大阪の学生', 'JP', '大阪府', '大阪市'],
    ['people who like berlin wool', undefined, undefined, undefined],
    ['people in the city', undefined, undefined, undefined],
  ];
  it.each(table)('%s → %s / %s / %s', (text, country, region, city) => {
    const place = readPlace(text);
    expect(place?.country.id).toBe(country);
    expect(place?.region?.name).toBe(region);
    expect(place?.city?.name).toBe(city);
    expect(readCues(text).place?.country.id).toBe(country);
  });
});

describe('origin next to home', () => {
  // description → home city, origin city (or region) named after "from" / "aus"
  const table: Array<[string, string | undefined, string | undefined]> = [
    ['people from Porto, living in Berlin', 'Berlin', 'Porto'],
    ['originally from Bavaria, now based in Hamburg', 'Hamburg', 'Bayern'],
    ['Leute aus Köln in München', 'München', 'Köln'],
    ['designers from Porto', 'Porto', undefined],
    ['people in Lisbon', 'Lisboa', undefined],
  ];
  it.each(table)('%s → home %s, origin %s', (text, home, origin) => {
    const place = readPlace(text);
    expect(place?.city?.name).toBe(home);
    expect(place?.origin?.city?.name ?? place?.origin?.region?.name).toBe(origin);
  });

  it('makes the origin the previous city, named for its own country', async () => {
    for (const p of await generate('people from Porto, living in Berlin', 'en')) {
      expect([p.currentCity, p.currentState, p.prevCity, p.prevState]).toEqual(['Berlin', 'Berlin', 'Porto', 'Porto']);
    }
    for (const p of await generate('originally from Bavaria, now based in Hamburg', 'de')) {
      expect([p.currentCity, p.prevState]).toEqual(['Hamburg', 'Bayern']);
      expect(realPairs('DE')).toContain(`${p.prevCity}|${p.prevState}`);
    }
  });
});

describe('personas live where the description says, in real cities with their own region', () => {
  const table: Array<[string, string, string, (p: PersonaData) => boolean]> = [
    ['young people in Lisbon', 'pt', 'PT', (p) => p.currentCity === 'Lisboa' && p.currentState === 'Lisboa'],
    ['young people in Lisbon', 'en', 'PT', (p) => p.currentCity === 'Lisbon' && p.currentState === 'Lisbon'],
    [
      'young urban professionals in Lisbon',
      'en',
      'PT',
      (p) => p.currentCity === 'Lisbon' && p.currentCountry === 'Portugal' && p.age !== null && p.age >= 18 && p.age <= 35,
    ],
    ['young urban professionals in Lisbon', 'pt', 'PT', (p) => p.currentCity === 'Lisboa' && p.currentCountry === 'Portugal'],
    ['Leute in Berlin', 'de', 'DE', (p) => p.currentCity === 'Berlin' && p.currentState === 'Berlin'],
    ['students in Berlin', 'en', 'DE', (p) => p.currentCity === 'Berlin' && p.currentState === 'Berlin'],
    ['families in Bavaria', 'en', 'DE', (p) => p.currentState === 'Bavaria'],
    ['nurses in Portugal', 'pt', 'PT', () => true],
    ['people in Texas', 'en', 'US', (p) => p.currentState === 'Texas'],
    ['大阪の学生', 'ja', 'JP', (p) => p.currentCity === '大阪市' && p.currentState === '大阪府'],
  ];
  it.each(table)('%s (%s)', async (description, code, countryId, where) => {
    const pairs = realPairs(countryId);
    for (const p of await generate(description, code)) {
      expect(where(p), `${p.currentCity}, ${p.currentState}`).toBe(true);
      expect(pairs, `${p.currentCity}, ${p.currentState}`).toContain(`${p.currentCity}|${p.currentState}`);
      expect(pairs, `${p.prevCity}, ${p.prevState}`).toContain(`${p.prevCity}|${p.prevState}`);
      expect(p.prevCity).not.toBe(p.currentCity);
      if (countryId !== 'US') expect(p.eduEstablishment).not.toMatch(/State University/);
    }
  });

  it('without a place cue, personas of a gazetteer locale live in its real cities (no invented towns)', async () => {
    for (const [code, countryId] of [
      ['pt', 'PT'],
      ['pt-BR', 'BR'],
      ['de', 'DE'],
      ['en', 'US'],
      ['en-GB', 'GB'],
      ['fr', 'FR'],
      ['es', 'ES'],
      ['it', 'IT'],
      ['nl', 'NL'],
      ['pl', 'PL'],
      ['ja', 'JP'],
    ] as const) {
      const pairs = realPairs(countryId);
      const personas = await generate('people who like music', code, 150);
      const country = COUNTRIES.find((c) => c.id === countryId);
      for (const p of personas) {
        expect(p.currentCountry, code).toBe(country && countryName(country, code));
        expect(pairs, `${code}: ${p.currentCity}, ${p.currentState}`).toContain(`${p.currentCity}|${p.currentState}`);
        expect(pairs, `${code}: ${p.prevCity}, ${p.prevState}`).toContain(`${p.prevCity}|${p.prevState}`);
        expect(p.prevCity, code).not.toBe(p.currentCity);
      }
      expect(new Set(personas.map((p) => p.currentCity)).size, code).toBeGreaterThan(5);
    }
    expect(countryForLocale('ar')).toBeUndefined();
  });
});

describe('people of a named place', () => {
  it('have that country’s names when the bio language is of another Latin-script country', async () => {
    const portuguese = await sexedFirstNames('pt_PT');
    const personas = await generate('young people in Lisbon', 'en');
    for (const p of personas) {
      expect(portuguese?.[p.gender], p.firstName).toContain(p.firstName);
      expect(p.workplace).not.toMatch(/ULTDA/);
    }
    expect(personas.map((p) => p.about).join(' ')).toMatch(/\b(Works|Studies|years)\b/); // still English text
    const german = await sexedFirstNames('de');
    for (const p of await generate('nurses in Munich', 'fr')) expect(german?.[p.gender], p.firstName).toContain(p.firstName);
  });

  it('keep the bio language’s names across scripts and within their own country', async () => {
    const english = await sexedFirstNames('en_US');
    for (const p of await generate('people in Tokyo', 'en')) expect(english?.[p.gender], p.firstName).toContain(p.firstName);
    const japanese = await sexedFirstNames('ja');
    for (const p of await generate('ベルリン在住 in Berlin', 'ja')) expect(japanese?.[p.gender], p.firstName).toContain(p.firstName);
    for (const p of await generate('people in Texas', 'en')) expect(english?.[p.gender], p.firstName).toContain(p.firstName);
  });
});
