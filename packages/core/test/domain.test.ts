import { describe, expect, it } from 'vitest';
import {
  allowedTransitions,
  assertTransition,
  canTransition,
  computeProgress,
  ConflictError,
  findLanguage,
  LANGUAGES,
  listLanguages,
  normalizePersona,
  parseGenerationRequest,
  readImageInfo,
  settingsSchema,
  TASK_STATUSES,
  validateGenerationRequest,
  ValidationError,
} from '../src/index.js';
import { encodePng, samplePersona } from '../src/testing.js';

describe('task status machine', () => {
  it('allows exactly the designed transitions', () => {
    const allowed = TASK_STATUSES.flatMap((from) => allowedTransitions(from).map((to) => `${from}>${to}`));
    expect(allowed.sort()).toEqual(
      [
        'pending>generating-data',
        'pending>cancelled',
        'generating-data>data-generated',
        'generating-data>failed',
        'generating-data>cancelled',
        'data-generated>generating-images',
        'data-generated>failed',
        'data-generated>cancelled',
        'generating-images>completed',
        'generating-images>partial',
        'generating-images>failed',
        'generating-images>cancelled',
        // every ended task can be retried (a complete one is refused by the service: nothing to make)
        'completed>pending',
        'partial>pending',
        'failed>pending',
        'cancelled>pending',
      ].sort(),
    );
  });

  it('refuses the rest with a ConflictError', () => {
    expect(canTransition('completed', 'partial')).toBe(false);
    expect(canTransition('pending', 'completed')).toBe(false);
    expect(canTransition('generating-data', 'partial')).toBe(false);
    expect(() => assertTransition('completed', 'generating-data')).toThrow(ConflictError);
    expect(() => assertTransition('pending', 'generating-images')).toThrow('A task cannot go from pending to generating-images');
  });
});

describe('progress', () => {
  it('counts personas and images over count + count * imagesPerPersona', () => {
    expect(computeProgress({ count: 10, imagesPerPersona: 4, personasStored: 10, imagesStored: 20 })).toEqual({
      personasStored: 10,
      imagesStored: 20,
      personasTotal: 10,
      imagesTotal: 40,
      percent: 60,
    });
    expect(computeProgress({ count: 10, imagesPerPersona: 8, personasStored: 0, imagesStored: 0 }).percent).toBe(0);
    expect(computeProgress({ count: 3, imagesPerPersona: 4, personasStored: 1, imagesStored: 0 }).percent).toBe(6.7);
  });
});

describe('generation request validation', () => {
  it('accepts a valid request and resolves the language name', () => {
    const request = parseGenerationRequest({ description: '  Nurses in Ohio ', language: 'de', count: '25', imagesPerPersona: 8 });
    expect(request).toEqual({
      description: 'Nurses in Ohio',
      language: { code: 'de', name: 'German' },
      count: 25,
      imagesPerPersona: 8,
      targets: null,
    });
  });

  it('gives a readable message per field', () => {
    const result = validateGenerationRequest({ description: '   ', language: 'klingon', count: 5, imagesPerPersona: 6 });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual({
      description: 'Describe the people to generate.',
      language: 'Choose a bio language from the list.',
      count: 'Generate at least 10 personas.',
      imagesPerPersona: 'Images per persona must be one of 4, 8, 12, 16, 20.',
    });
    const more = validateGenerationRequest({ description: 'x'.repeat(4001), language: 'en', count: 301, imagesPerPersona: 4 });
    expect(more.ok ? {} : more.errors).toEqual({
      description: 'Keep the description under 4000 characters.',
      count: 'Generate at most 300 personas.',
    });
    const nul = validateGenerationRequest({ description: 'nurses\u0000 in Leeds', language: 'en', count: 10, imagesPerPersona: 4 });
    expect(nul.ok ? {} : nul.errors).toEqual({ description: 'Remove control characters (such as NUL) from the description.' });
    expect(validateGenerationRequest({ description: 'nurses\n\tin Leeds', language: 'en', count: 10, imagesPerPersona: 4 }).ok).toBe(true);
    const prompt = settingsSchema.shape.bio_prompt_x.safeParse('short\u0007bio');
    expect(prompt.success ? '' : prompt.error.issues[0]?.message).toBe('Remove control characters (such as NUL) from the instructions.');
    const fraction = validateGenerationRequest({ description: 'x', language: 'en', count: 10.5, imagesPerPersona: 4 });
    expect(fraction.ok ? {} : fraction.errors).toEqual({ count: 'The number of personas must be a whole number.' });
    expect(() => parseGenerationRequest({})).toThrow(ValidationError);
  });

  it('offers a catalogue of about 100 languages, code -> name', () => {
    expect(Object.keys(LANGUAGES).length).toBeGreaterThanOrEqual(95);
    expect(findLanguage('pt-BR')).toEqual({ code: 'pt-BR', name: 'Portuguese (Brazil)' });
    expect(findLanguage('toString')).toBeUndefined();
    const names = listLanguages().map((l) => l.name);
    expect(names).toEqual([...names].sort((a, b) => a.localeCompare(b)));
  });
});

describe('persona normalisation', () => {
  it('trims text, maps gender words and parses ages', () => {
    const result = normalizePersona({
      ...samplePersona(),
      firstName: '  Ana ',
      gender: 'Female',
      age: '42',
      bios: { facebook: ' hi ', instagram: null, x: 'x', tiktok: 't' },
    });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.persona.firstName).toBe('Ana');
    expect(result.persona.gender).toBe('f');
    expect(result.persona.age).toBe(42);
    expect(result.persona.bios).toEqual({ facebook: 'hi', instagram: '', x: 'x', tiktok: 't' });
    // a provider's stray control characters are dropped (PostgreSQL cannot store NUL); line breaks stay
    const noisy = normalizePersona({ ...samplePersona(), lastName: 'Ber\u0000nal\u0007', about: 'line one\nline two' });
    expect(noisy.ok && noisy.persona.lastName).toBe('Bernal');
    expect(noisy.ok && noisy.persona.about).toBe('line one\nline two');
  });

  it('turns an unusable age into null and refuses bad names, genders and over-long text', () => {
    for (const age of ['forty', -3, 300, 41.5, '']) {
      const r = normalizePersona({ ...samplePersona(), age });
      expect(r.ok && r.persona.age).toBe(null);
    }
    expect(normalizePersona({ ...samplePersona(), firstName: ' ' })).toEqual({ ok: false, reason: 'firstName is empty' });
    expect(normalizePersona({ ...samplePersona(), gender: 'x' })).toEqual({
      ok: false,
      reason: 'gender must be f or m (female or male)',
    });
    const long = normalizePersona({ ...samplePersona(), bios: { ...samplePersona().bios, x: 'y'.repeat(2001) } });
    expect(long).toEqual({ ok: false, reason: 'bios.x is longer than 2000 characters' });
    expect(normalizePersona(null).ok).toBe(false);
  });
});

describe('image header sniffing', () => {
  it('reads PNG sizes and refuses what is not an image', () => {
    expect(readImageInfo(encodePng(7, 5, () => [1, 2, 3]))).toEqual({ format: 'png', contentType: 'image/png', width: 7, height: 5 });
    expect(() => readImageInfo(Buffer.from('<html>not an image</html>'))).toThrow('Not an image: unknown format');
    expect(() => readImageInfo(new Uint8Array(3))).toThrow('only 3 bytes');
    expect(() => readImageInfo(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0]))).toThrow(/JPEG/);
  });
});
