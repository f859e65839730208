import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  imagePromptJsonSchema,
  imagePromptMessages,
  personaListJsonSchema,
  personaMessages,
  personaSchema,
  personDataEntries,
  quotaLines,
  readPersonas,
  readPrompt,
  strictJsonSchema,
} from '../src/index.js';
import { samplePersona } from '../src/testing.js';

/** Core's shared reader and prompt builder for language-model providers. */

const persona = (over: Record<string, unknown> = {}) => ({
  firstName: 'Ana',
  lastName: 'Reyes',
  gender: 'female',
  ethnicity: 'Filipino',
  age: 31,
  bios: { facebook: 'fb', instagram: 'ig', x: 'x', tiktok: 'tt' },
  jobTitle: 'Nurse',
  workplace: 'St. Luke',
  eduEstablishment: 'UP Manila',
  eduStudy: 'Nursing',
  currentCity: 'Manila',
  currentState: 'NCR',
  prevCity: 'Cebu',
  prevState: 'Central Visayas',
  about: 'About Ana.',
  ...over,
});

describe('readPersonas', () => {
  it("reads the strict schema's wrapper object in core's field names", () => {
    const { personas, rejected } = readPersonas(JSON.stringify({ personas: [persona(), persona({ firstName: 'Ben', gender: 'm' })] }));
    expect(rejected).toEqual([]);
    expect(personas.map((p) => [p.firstName, p.gender, p.currentCity, p.bios.tiktok])).toEqual([
      ['Ana', 'f', 'Manila', 'tt'],
      ['Ben', 'm', 'Manila', 'tt'],
    ]);
  });

  it('reads the wrapper inside fences after prose, a bare array, and lists what it had to skip', () => {
    const text = `Here you go:\n\`\`\`json\n${JSON.stringify({ personas: [persona(), persona({ firstName: '' })] })}\n\`\`\`\nEnjoy!`;
    const read = readPersonas(text);
    expect(read.personas.map((p) => p.firstName)).toEqual(['Ana']);
    expect(read.rejected).toEqual([{ index: 1, reason: 'object 2: firstName is empty' }]);
    expect(readPersonas(`[${JSON.stringify(persona())}]`).personas).toHaveLength(1);
  });

  it('reports a cut-off answer as truncated, with no persona', () => {
    const whole = JSON.stringify({ personas: [persona(), persona()] });
    const read = readPersonas(whole.slice(0, whole.length - 40));
    expect(read.personas).toEqual([]);
    expect(read.rejected[0]?.reason).toMatch(/truncated/);
  });
});

describe('readPrompt', () => {
  it('reads final_prompt in fences and refuses answers without one', () => {
    expect(readPrompt('Sure:\n```json\n{"final_prompt": "  at the market  "}\n```')).toEqual({ ok: true, prompt: 'at the market' });
    expect(readPrompt('{"prompt": "x"}')).toEqual({ ok: false, reason: 'the JSON object has no final_prompt' });
    expect(readPrompt('no json here')).toEqual({ ok: false, reason: 'the text holds no JSON object' });
  });
});

describe('personaMessages', () => {
  it('asks for the count, the description, the bio language and each platform’s instructions from the settings', () => {
    const [system, user] = personaMessages({
      count: 7,
      description: 'Nurses in Manila',
      language: { code: 'tl', name: 'Tagalog (Filipino)' },
      bioInstructions: { facebook: 'Warm, 2 sentences.', instagram: '', x: 'Under 160 characters.', tiktok: 'Playful.' },
    });
    expect(system?.role).toBe('system');
    expect(user?.content).toContain('Write exactly 7 personas that match this description: Nurses in Manila');
    expect(user?.content).toContain('Write the bios and "about" in Tagalog (Filipino).');
    expect(user?.content).toContain('Facebook bio: Warm, 2 sentences.');
    expect(user?.content).toContain('Instagram bio: written as the person would write it on that platform.');
    expect(user?.content).toContain('X (Twitter) bio: Under 160 characters.');
    expect(user?.content).toContain('TikTok bio: Playful.');
    // every field of core's schema is named
    for (const field of Object.keys(personaSchema.shape)) expect(user?.content).toContain(`- ${field}:`);
  });
});

describe('personaMessages with quotas', () => {
  const base = {
    description: 'Commuters in Portugal',
    language: { code: 'en', name: 'English' },
    bioInstructions: { facebook: '', instagram: '', x: '', tiktok: '' },
  };

  it('names each persona’s quota on its own line, in order, strictly, with "any" for an empty one', () => {
    const user =
      personaMessages({
        ...base,
        count: 3,
        quotas: [
          { gender: 'f', age: { min: 25, max: 40 }, ethnicity: 'Portuguese', location: 'Lisbon' },
          { gender: 'm', age: { min: 65, max: 65 } },
          {},
        ],
      })[1]?.content ?? '';
    const lines = user.split('\n');
    const first = lines.indexOf('Persona 1 must be: female, aged 25-40, ethnicity Portuguese, living in Lisbon');
    expect(first).toBeGreaterThan(0);
    expect(lines.slice(first, first + 3)).toEqual([
      'Persona 1 must be: female, aged 25-40, ethnicity Portuguese, living in Lisbon',
      'Persona 2 must be: male, aged 65',
      'Persona 3: any',
    ]);
    // the line before says the order follows these lines and that the constraints are strict
    expect(lines[first - 1]).toMatch(/strictly/);
    expect(lines[first - 1]).toMatch(/in the order of these lines/);
    // the constraints come before the field list and the answer's shape
    expect(first).toBeLessThan(lines.indexOf('Fields of each persona:'));
  });

  it('leaves the messages as they were without quotas, or with quotas that ask for nothing', () => {
    const plain = personaMessages({ ...base, count: 2 });
    expect(personaMessages({ ...base, count: 2, quotas: [{}, {}] })).toEqual(plain);
    expect(personaMessages({ ...base, count: 2, quotas: [] })).toEqual(plain);
    expect(plain[1]?.content).not.toMatch(/Persona \d/);
  });

  it('writes one line per persona asked for, even when the quotas are fewer', () => {
    expect(quotaLines([{ location: 'Porto, Portugal' }], 2)).toEqual(['Persona 1 must be: living in Porto, Portugal', 'Persona 2: any']);
    expect(quotaLines([{ gender: 'f' }, { gender: 'm' }, { gender: 'f' }], 2)).toEqual([
      'Persona 1 must be: female',
      'Persona 2 must be: male',
    ]);
    expect(quotaLines(undefined, 3)).toEqual([]);
  });
});

describe('imagePromptMessages', () => {
  it("carries the persona's job, workplace and current city, and the previous prompts to avoid", () => {
    const p = samplePersona({ jobTitle: 'Tram driver', workplace: 'Carris', currentCity: 'Lisbon', currentState: 'Lisboa' });
    const first = imagePromptMessages({ persona: p, previousPrompts: [] })[1]?.content ?? '';
    expect(first).toContain('"job_title":"Tram driver"');
    expect(first).toContain('at Carris');
    expect(first).toContain('(Lisbon, Lisboa)');
    expect(first).not.toContain('Ideas already used');
    const next = imagePromptMessages({ persona: p, previousPrompts: ['at the depot', 'on the 28 tram'] })[1]?.content ?? '';
    expect(next).toContain('Ideas already used, to avoid:\n1. at the depot\n2. on the 28 tram');
    expect(next).toContain('Each prompt differs from the last');
  });

  it("sends the old system's person_data keys first, then the new ones", () => {
    expect(personDataEntries(samplePersona()).map(([k]) => k)).toEqual([
      'firstname',
      'lastname',
      'gender',
      'bio_facebook',
      'bio_instagram',
      'bio_x',
      'bio_tiktok',
      'ethnicity',
      'age',
      'job_title',
      'workplace',
      'current_city',
      'current_state',
    ]);
  });
});

type Schema = {
  type?: unknown;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: unknown;
  items?: Schema;
  anyOf?: Schema[];
};

/** Every object in the schema, depth first. */
function objects(schema: Schema): Schema[] {
  const found = schema.type === 'object' ? [schema] : [];
  for (const sub of [...Object.values(schema.properties ?? {}), ...(schema.items ? [schema.items] : []), ...(schema.anyOf ?? [])]) {
    found.push(...objects(sub));
  }
  return found;
}

describe('JSON schemas for structured output', () => {
  it("derives the persona list schema from core's persona schema, strict: all properties required, no others", () => {
    const schema = personaListJsonSchema() as Schema;
    const item = schema.properties?.personas?.items as Schema;
    expect(Object.keys(item.properties ?? {})).toEqual(Object.keys(personaSchema.shape));
    expect(item.properties?.gender).toEqual({ type: 'string', enum: ['f', 'm'] });
    for (const object of objects(schema)) {
      expect(object.required).toEqual(Object.keys(object.properties ?? {}));
      expect(object.additionalProperties).toBe(false);
    }
    expect(JSON.stringify(schema)).not.toMatch(/maxLength|minLength|\$schema/);
    // what the reader accepts: an answer shaped by the schema reads back whole
    expect(readPersonas(JSON.stringify({ personas: [persona()] })).personas).toHaveLength(1);
  });

  it('makes optional properties required and closes nested objects', () => {
    const loose = z.toJSONSchema(z.object({ a: z.string().optional(), b: z.object({ c: z.number().max(3) }).optional() })) as Schema;
    expect(loose.required ?? []).toEqual([]);
    const strict = strictJsonSchema(loose as never) as Schema;
    expect(strict.required).toEqual(['a', 'b']);
    expect(strict.properties?.b?.required).toEqual(['c']);
    expect(strict.properties?.b?.additionalProperties).toBe(false);
    expect(imagePromptJsonSchema()).toEqual({
      type: 'object',
      properties: { final_prompt: { type: 'string' } },
      required: ['final_prompt'],
      additionalProperties: false,
    });
  });
});
