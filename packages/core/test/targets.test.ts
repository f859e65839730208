import { describe, expect, it } from 'vitest';
import {
  allocate,
  assignQuotas,
  describeQuota,
  matchesLocation,
  type PersonaData,
  quotaMiss,
  targetsAsText,
  targetsReport,
  taskQuotas,
  validateGenerationRequest,
  validateTargets,
} from '../src/index.js';

function person(overrides: Partial<PersonaData> = {}): PersonaData {
  return {
    firstName: 'Ana',
    lastName: 'Silva',
    gender: 'f',
    ethnicity: 'Portuguese',
    age: 30,
    bios: { facebook: '', instagram: '', x: '', tiktok: '' },
    jobTitle: '',
    workplace: '',
    eduEstablishment: '',
    eduStudy: '',
    currentCity: 'Lisboa',
    currentState: 'Lisboa',
    currentCountry: 'Portugal',
    prevCity: '',
    prevState: '',
    about: '',
    ...overrides,
  };
}

const ok = (input: unknown) => {
  const result = validateTargets(input);
  if (!result.ok) throw new Error(JSON.stringify(result.errors));
  return result.value;
};

describe('demographic targets', () => {
  it('reads the text forms the form and the CLI take', () => {
    expect(ok({ genders: '50/50' })?.genders).toEqual([
      { gender: 'f', share: 50 },
      { gender: 'm', share: 50 },
    ]);
    expect(ok({ genders: 'female 60%, male 40%' })?.genders).toEqual([
      { gender: 'f', share: 60 },
      { gender: 'm', share: 40 },
    ]);
    expect(ok({ genders: 'f: 7; m: 3' })?.genders).toEqual([
      { gender: 'f', share: 7 },
      { gender: 'm', share: 3 },
    ]);
    expect(ok({ genders: 'women' })?.genders).toEqual([{ gender: 'f', share: 1 }]);
    expect(ok({ ages: '25-40' })?.ages).toEqual([{ min: 25, max: 40, share: 1 }]);
    expect(ok({ ages: '18-29 40%, 30-49 40%, 50+ 20%' })?.ages).toEqual([
      { min: 18, max: 29, share: 40 },
      { min: 30, max: 49, share: 40 },
      { min: 50, max: 120, share: 20 },
    ]);
    expect(ok({ ethnicities: 'Portuguese 70%, Cape Verdean 30%' })?.ethnicities).toEqual([
      { name: 'Portuguese', share: 70 },
      { name: 'Cape Verdean', share: 30 },
    ]);
    // with ";" the commas belong to the places
    expect(ok({ locations: 'Lisbon, Portugal; Porto, Portugal' })?.locations).toEqual([
      { name: 'Lisbon, Portugal', share: 1 },
      { name: 'Porto, Portugal', share: 1 },
    ]);
    expect(ok({ genders: [{ gender: 'female', share: 2 }], ages: [{ min: 20, max: 30, share: 1 }] })).toEqual({
      genders: [{ gender: 'f', share: 2 }],
      ages: [{ min: 20, max: 30, share: 1 }],
    });
    expect(ok({ genders: '', ages: '  ' })).toBeNull();
    expect(ok(undefined)).toBeNull();
  });

  it('names what is wrong, per dimension', () => {
    const result = validateTargets({
      genders: 'female 60%, male 30%',
      ages: '18-30, 30-49',
      ethnicities: 'Portuguese 2, Brazilian',
      locations: '',
      extra: 'x',
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual({
      'targets.genders': 'The gender shares add up to 90%, not 100%.',
      'targets.ages': 'Age bands must not overlap (18-29, 30-49, not 18-30, 30-49).',
      'targets.ethnicities': 'Give a share to every ethnicity, or to none (equal shares).',
      'targets.extra': 'Unknown target; use genders, ages, ethnicities, locations.',
    });
    const more = validateTargets({ genders: 'aliens', ages: '40-25' });
    expect(more.ok ? {} : more.errors).toEqual({
      'targets.genders': '"aliens" is not a gender: write female or male (or f, m), or a split such as 50/50.',
      'targets.ages': 'An age band starts at or below its end (25-40, not 40-25).',
    });
    expect(validateTargets('50/50')).toEqual({ ok: false, errors: { targets: expect.stringContaining('Must be an object') } });
    // the request reports targets beside its other fields
    const request = validateGenerationRequest({
      description: '',
      language: 'en',
      count: 10,
      imagesPerPersona: 4,
      targets: { ages: 'old' },
    });
    expect(request.ok ? {} : request.errors).toEqual({
      description: 'Describe the people to generate.',
      'targets.ages': '"old" is not an age band: write it as 25-40 or 65+.',
    });
  });

  it('allocates exact counts by largest remainder, and counts that add up come back unchanged', () => {
    expect(allocate([1, 1], 5)).toEqual([3, 2]);
    expect(allocate([60, 40], 37)).toEqual([22, 15]);
    expect(allocate([7, 3], 10)).toEqual([7, 3]);
    expect(allocate([1, 1, 1], 10)).toEqual([4, 3, 3]);
    for (const total of [10, 37, 300]) expect(allocate([3, 5, 11, 2], total).reduce((a, b) => a + b)).toBe(total);
  });

  it('gives each persona a quota, exactly per dimension, the same for the same task', () => {
    const targets = ok({ genders: 'f 7, m 3', ages: '20-29, 30-39', locations: 'Lisbon 1, Porto 1' });
    const quotas = taskQuotas(targets, 10, 'task-a');
    expect(quotas).toHaveLength(10);
    expect(quotas.filter((q) => q.gender === 'f')).toHaveLength(7);
    expect(quotas.filter((q) => q.age?.min === 20)).toHaveLength(5);
    expect(quotas.filter((q) => q.location === 'Porto')).toHaveLength(5);
    expect(taskQuotas(targets, 10, 'task-a')).toEqual(quotas);
    // another task mixes the dimensions differently
    expect(taskQuotas(targets, 10, 'task-b')).not.toEqual(quotas);
    expect(taskQuotas(null, 3, 'x')).toEqual([{}, {}, {}]);
    expect(describeQuota(quotas[0] ?? {})).toMatch(/^(female|male), aged (20-29|30-39), living in (Lisbon|Porto)$/);
  });

  it('checks a persona against its quota, case and accents aside, and says how it misses', () => {
    expect(
      quotaMiss(person(), { gender: 'f', age: { min: 25, max: 35 }, ethnicity: 'portuguese', location: 'Lisboa, Portugal' }),
    ).toBeNull();
    expect(quotaMiss(person(), { gender: 'm' })).toBe('is female, not male');
    expect(quotaMiss(person({ age: null }), { age: { min: 20, max: 29 } })).toBe('is of no given age, not 20-29');
    expect(quotaMiss(person({ age: 41 }), { age: { min: 20, max: 29 } })).toBe('is 41, not 20-29');
    expect(quotaMiss(person({ ethnicity: 'White Portuguese' }), { ethnicity: 'Portuguese' })).toBeNull();
    expect(quotaMiss(person(), { ethnicity: 'Brazilian' })).toBe('is Portuguese, not Brazilian');
    expect(matchesLocation(person({ currentCity: 'São Paulo', currentState: 'SP', currentCountry: 'Brasil' }), 'Sao Paulo')).toBe(true);
    // a word is a word: "Porto" is not "Porto Alegre", nor part of "Portugal"
    expect(matchesLocation(person({ currentCity: 'Porto Alegre', currentCountry: 'Brasil' }), 'Porto, Portugal')).toBe(false);
    expect(matchesLocation(person({ currentCity: 'Lisboa', currentState: '', currentCountry: '' }), 'Portugal')).toBe(false);
    expect(quotaMiss(person(), { location: 'Porto' })).toBe('lives in Lisboa, Lisboa, Portugal, not Porto');
  });

  it('matches personas to open quotas, and reports requested next to achieved', () => {
    const quotas = [{ gender: 'm' as const }, { gender: 'f' as const }, { gender: 'f' as const }];
    const { taken, open } = assignQuotas([person(), person({ gender: 'f' }), person()], quotas);
    expect(taken).toEqual([1, 2, -1]);
    expect(open).toEqual([0]);

    const targets = ok({ genders: '50/50', ages: '20-29, 30-39', ethnicities: 'Portuguese' });
    const report = targetsReport(targets as NonNullable<typeof targets>, 4, [
      person({ age: 25 }),
      person({ age: 35, gender: 'm' }),
      person({ age: 50, ethnicity: 'Angolan' }),
      person({ age: 31 }),
    ]);
    expect(report).toEqual({
      personas: 4,
      dimensions: [
        {
          dimension: 'genders',
          rows: [
            { label: 'female', requested: 2, achieved: 3 },
            { label: 'male', requested: 2, achieved: 1 },
          ],
          other: 0,
        },
        {
          dimension: 'ages',
          rows: [
            { label: '20-29', requested: 2, achieved: 1 },
            { label: '30-39', requested: 2, achieved: 2 },
          ],
          other: 1,
        },
        { dimension: 'ethnicities', rows: [{ label: 'Portuguese', requested: 4, achieved: 3 }], other: 1 },
      ],
    });
    expect(targetsAsText(ok({ genders: '50/50', ages: '65+', locations: 'Lisbon, Portugal; Porto' }))).toEqual({
      genders: 'female 50, male 50',
      ages: '65+ 1',
      ethnicities: '',
      locations: 'Lisbon, Portugal 1; Porto 1',
    });
  });
});
