import {
  CancelledError,
  DEFAULT_BIO_PROMPTS,
  normalizePersona,
  PERSONA_LIMITS,
  type PersonaData,
  type PersonaRequest,
  PLATFORMS,
  ProviderError,
} from '@avatargen/core';
import { allLocales } from '@faker-js/faker';
import { beforeAll, describe, expect, it } from 'vitest';
import { BIO_LIMITS, createLocalPersonaProvider, fakerLocaleFor, readAgeRange, sexedFirstNames } from '../src/index.js';

const provider = createLocalPersonaProvider();
const LOCALES = ['en', 'de', 'ja', 'pt-BR', 'ar'] as const;

function request(code: string, overrides: Partial<PersonaRequest> = {}): PersonaRequest {
  return {
    count: 100,
    description: 'People living in the city',
    language: { code, name: code },
    bioInstructions: DEFAULT_BIO_PROMPTS,
    seed: `task-${code}`,
    ...overrides,
  };
}

const graphemes = (s: string) => [...new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(s)].length;

describe('500 personas over en, de, ja, pt-BR and ar', () => {
  const batches = new Map<string, PersonaData[]>();
  beforeAll(async () => {
    for (const code of LOCALES) {
      const batch = await provider.generate(request(code));
      expect(batch.rejected).toEqual([]);
      batches.set(code, batch.personas);
    }
  });

  it('makes exactly the requested number, every one unchanged by normalizePersona', () => {
    let total = 0;
    for (const code of LOCALES) {
      const personas = batches.get(code) ?? [];
      expect(personas).toHaveLength(100);
      total += personas.length;
      for (const persona of personas) {
        const normalized = normalizePersona(persona);
        expect(normalized.ok, normalized.ok ? '' : `${code}: ${normalized.reason}`).toBe(true);
        if (normalized.ok) expect(normalized.persona).toEqual(persona);
      }
    }
    expect(total).toBe(500);
  });

  it('fills every field with plausible values', () => {
    for (const code of LOCALES) {
      for (const p of batches.get(code) ?? []) {
        for (const field of [
          'firstName',
          'lastName',
          'ethnicity',
          'jobTitle',
          'workplace',
          'eduEstablishment',
          'eduStudy',
          'currentCity',
          'prevCity',
          'about',
        ] as const) {
          expect(p[field].length, `${code} ${field}`).toBeGreaterThan(0);
          expect(p[field]).not.toMatch(/\{\w+\}|undefined|null|NaN/);
        }
        // every locale tested here has states or regions of its own
        expect(p.currentState.length, `${code} currentState`).toBeGreaterThan(0);
        expect(p.prevState.length, `${code} prevState`).toBeGreaterThan(0);
        expect(p.prevCity).not.toBe(p.currentCity);
        expect(p.age).toBeGreaterThanOrEqual(18);
        expect(p.age).toBeLessThanOrEqual(75);
        expect(Number.isInteger(p.age)).toBe(true);
        expect(['f', 'm']).toContain(p.gender);
        for (const field of [
          'jobTitle',
          'workplace',
          'eduEstablishment',
          'eduStudy',
          'currentCity',
          'currentState',
          'ethnicity',
        ] as const) {
          expect([...p[field]].length).toBeLessThanOrEqual(PERSONA_LIMITS.short);
        }
      }
    }
  });

  it('uses first names of the persona’s gender where faker knows sexed names', async () => {
    let checked = 0;
    for (const code of LOCALES) {
      const names = await sexedFirstNames(fakerLocaleFor(code));
      expect(names, `${code} has sexed first names in faker`).toBeDefined();
      if (!names) continue;
      for (const p of batches.get(code) ?? []) {
        expect(names[p.gender], `${code}: ${p.firstName} (${p.gender})`).toContain(p.firstName);
        checked++;
      }
    }
    expect(checked).toBe(500);
  });

  it('writes in the bio language, from the locale’s names', () => {
    const sample = (code: string) => (batches.get(code) ?? []).map((p) => p.about).join(' ');
    expect(sample('ja')).toMatch(/[\u3040-\u30ff\u4e00-\u9fff]/);
    expect(sample('ar')).toMatch(/[\u0600-\u06ff]/);
    expect(sample('de')).toMatch(/\b(und|seit|Jahren|Arbeitet|Studiert)\b/);
    expect(sample('pt-BR')).toMatch(/\b(em|há|anos|Trabalha|Estuda)\b/);
    expect(sample('en')).toMatch(/\b(and|years|Works|Studies)\b/);
    // no English glue words in the Arabic text (faker falls back to English company patterns)
    expect(sample('ar')).not.toMatch(/\band\b/);
    const ethnicities = new Set((batches.get('ja') ?? []).map((p) => p.ethnicity));
    expect([...ethnicities].every((e) => /Japanese|Mixed/.test(e))).toBe(true);
  });

  it('keeps every bio within its platform’s limit (and the database’s), in four distinct voices', () => {
    for (const code of LOCALES) {
      for (const p of batches.get(code) ?? []) {
        for (const platform of PLATFORMS) {
          const bio = p.bios[platform];
          expect(bio.length, `${code} ${platform} empty`).toBeGreaterThan(0);
          expect([...bio].length, `${code} ${platform}: ${bio}`).toBeLessThanOrEqual(BIO_LIMITS[platform]);
          expect(graphemes(bio)).toBeLessThanOrEqual(BIO_LIMITS[platform]);
          expect(bio.length).toBeLessThanOrEqual(PERSONA_LIMITS.bio);
        }
        expect(new Set(PLATFORMS.map((platform) => p.bios[platform])).size, `${code}: ${JSON.stringify(p.bios)}`).toBe(4);
      }
    }
    expect(BIO_LIMITS).toEqual({ x: 160, instagram: 150, tiktok: 80, facebook: 255 });
  });

  it('gives the same personas for the same seed, and different ones for another seed', async () => {
    for (const code of LOCALES) {
      const again = await provider.generate(request(code));
      expect(again.personas).toEqual(batches.get(code));
    }
    const other = await provider.generate(request('de', { seed: 'another-task' }));
    const names = (list: PersonaData[]) => list.map((p) => `${p.firstName} ${p.lastName}`);
    expect(names(other.personas)).not.toEqual(names(batches.get('de') ?? []));
    // a smaller batch with the same seed is the start of the bigger one
    const few = await provider.generate(request('en', { count: 7 }));
    expect(few.personas).toEqual((batches.get('en') ?? []).slice(0, 7));
  });

  it('varies people: names, jobs, ages and cities differ across a batch', () => {
    for (const code of LOCALES) {
      const personas = batches.get(code) ?? [];
      expect(new Set(personas.map((p) => `${p.firstName} ${p.lastName}`)).size).toBeGreaterThan(90);
      expect(new Set(personas.map((p) => p.jobTitle)).size).toBeGreaterThan(10);
      expect(new Set(personas.map((p) => p.age)).size).toBeGreaterThan(25);
      const women = personas.filter((p) => p.gender === 'f').length;
      expect(women).toBeGreaterThan(30);
      expect(women).toBeLessThan(70);
    }
  });
});

describe('cues in the description', () => {
  const generate = async (description: string, code = 'en', count = 40) =>
    (await provider.generate(request(code, { description, count, seed: `cue-${description}` }))).personas;

  it('honours ages: decades, teenagers, students, retired, explicit ranges', async () => {
    const inRange = (personas: PersonaData[], min: number, max: number) =>
      personas.every((p) => p.age !== null && p.age >= min && p.age <= max);
    expect(inRange(await generate('Nurses and teachers in their 30s'), 30, 39)).toBe(true);
    expect(inRange(await generate('teenagers who love gaming'), 18, 19)).toBe(true);
    expect(inRange(await generate('university students'), 18, 26)).toBe(true);
    expect(inRange(await generate('retired people who garden'), 62, 75)).toBe(true);
    expect(inRange(await generate('people aged 25-40'), 25, 40)).toBe(true);
    expect(inRange(await generate('people in their early 40s'), 40, 43)).toBe(true);
    expect(inRange(await generate('over 60 and active'), 60, 75)).toBe(true);
    expect(inRange(await generate('Menschen in den 50ern', 'de'), 50, 59)).toBe(true);
    expect(inRange(await generate('30代の会社員', 'ja'), 30, 39)).toBe(true);
    expect(readAgeRange('kids aged 5-10')).toBeUndefined();
    expect(readAgeRange('people in their 80s')).toBeUndefined();
    expect(readAgeRange('the 1990s generation')).toBeUndefined();
  });

  it('honours jobs, students, retirement, gender and a named state', async () => {
    const nurses = await generate('Nurses and teachers in their 30s living in Texas');
    expect(nurses.every((p) => /Nurse|Teacher/.test(p.jobTitle))).toBe(true);
    expect(nurses.some((p) => /Nurse/.test(p.jobTitle)) && nurses.some((p) => /Teacher/.test(p.jobTitle))).toBe(true);
    expect(nurses.every((p) => p.currentState === 'Texas')).toBe(true);
    const students = await generate('college students');
    expect(students.every((p) => p.jobTitle === 'Student' && p.workplace === p.eduEstablishment)).toBe(true);
    const retired = await generate('retired teachers');
    expect(retired.every((p) => p.jobTitle === 'Retired teacher')).toBe(true);
    const women = await generate('young women who run marathons');
    expect(women.every((p) => p.gender === 'f')).toBe(true);
    const men = await generate('Männer, die Fußball spielen', 'de');
    expect(men.every((p) => p.gender === 'm')).toBe(true);
    const lehrerinnen = await generate('Frauen, die als Lehrerin arbeiten', 'de');
    expect(lehrerinnen.every((p) => p.jobTitle === 'Lehrerin')).toBe(true);
  });
});

describe('locales', () => {
  it('loads the faker locale of every bio language on demand', async () => {
    const { LANGUAGES } = await import('@avatargen/core');
    const { fakerFor } = await import('../src/locales.js');
    for (const code of Object.keys(LANGUAGES)) {
      const faker = await fakerFor(fakerLocaleFor(code));
      expect(typeof faker.person.firstName(), code).toBe('string');
    }
  });
});

describe('requests', () => {
  it('falls back to English words for languages without a phrasebook, with the locale’s names', async () => {
    const { personas } = await provider.generate(request('fr', { count: 20 }));
    const names = await sexedFirstNames(fakerLocaleFor('fr'));
    expect(fakerLocaleFor('fr')).toBe('fr');
    for (const p of personas) expect(names?.[p.gender]).toContain(p.firstName);
    expect(personas.map((p) => p.about).join(' ')).toMatch(/\b(Works|Studies|years)\b/);
    expect(fakerLocaleFor('xx-YY')).toBe('en_US');
    expect(fakerLocaleFor('zh-CN')).toBe('zh_CN');
    expect(Object.keys(allLocales)).toContain(fakerLocaleFor('pt-BR'));
  });

  it('refuses a bad count with a non-retryable ProviderError', async () => {
    for (const count of [0, -1, 1.5, 1001, Number.NaN]) {
      const error = await provider.generate(request('en', { count })).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ProviderError);
      expect((error as ProviderError).retryable).toBe(false);
      expect((error as Error).message).toContain('count');
    }
  });

  it('stops with CancelledError when the signal fires during a large batch', async () => {
    const controller = new AbortController();
    const pending = provider.generate(request('en', { count: 1000, signal: controller.signal }));
    setImmediate(() => controller.abort());
    await expect(pending).rejects.toBeInstanceOf(CancelledError);
  });
});

describe('Portuguese of Portugal and of Brazil', () => {
  const text = (p: PersonaData) =>
    [p.jobTitle, p.workplace, p.eduEstablishment, p.eduStudy, p.about, ...PLATFORMS.map((platform) => p.bios[platform])].join(' \n ');
  const BRAZILIAN =
    /\bOi\b|cachorro|Universidade Federal|\bU?LTDA\b|aposentad|Estudando|Drogaria|Escola Estadual|Padaria|Ciência da Computação|Ciências Contábeis|trilhas|\btopo\b/;

  it.each(['pt', 'pt-PT'])('%s reads as Portugal: faker pt_PT names, no Brazilian words, Lda. companies', async (code) => {
    expect(fakerLocaleFor(code)).toBe('pt_PT');
    const { personas } = await provider.generate(request(code, { count: 150, description: 'people of all ages' }));
    const names = await sexedFirstNames('pt_PT');
    const all = personas.map(text).join('\n');
    for (const p of personas) {
      expect(names?.[p.gender], p.firstName).toContain(p.firstName);
      expect(text(p), text(p)).not.toMatch(BRAZILIAN);
    }
    expect(all).toMatch(/Olá, sou (a|o) /);
    expect(all).toMatch(/Lda\.|S\.A\./);
    expect(all).toMatch(/reformad/);
    expect(all).not.toMatch(/(?<!\.)\.\.(?!\.)/);
  });

  it('pt-BR stays Brazilian', async () => {
    expect(fakerLocaleFor('pt-BR')).toBe('pt_BR');
    const { personas } = await provider.generate(request('pt-BR', { count: 150, description: 'people of all ages' }));
    const all = personas.map(text).join('\n');
    expect(all).toMatch(/\bOi\b/);
    expect(all).toMatch(/Universidade Federal|Formad/);
    expect(all).not.toMatch(/Olá, sou|Lda\./);
  });
});
