import { readFileSync } from 'node:fs';
import { samplePersona } from '@avatargen/core/testing';
import { describe, expect, it } from 'vitest';
import { parsePersonaText, parsePromptText, personDataJson, scanJsonValues } from '../src/index.js';
import { int, LAYOUTS, layoutText, oneOf, randomPersona, seeded, toFlowiseObject } from './generate.js';

const fixtureText = (name: string) =>
  (JSON.parse(readFileSync(new URL(`./fixtures/${name}.response.json`, import.meta.url), 'utf8')) as { body: { text: string } }).body.text;

describe('scanJsonValues', () => {
  it('keeps braces, brackets and quotes inside strings out of the nesting', () => {
    const text = '{"a":"}{ ][ \\" \\\\"}{"b":["x}",{"c":"{"}]}';
    const values = scanJsonValues(text);
    expect(values.map((v) => v.ok && v.value)).toEqual([{ a: '}{ ][ " \\' }, { b: ['x}', { c: '{' }] }]);
  });

  it('skips prose and fences between values, including prose with brackets', () => {
    const text = 'Sure! {placeholder} and [1] first:\n```json\n{"a": 1}\n```\nthen [ {"b": 2} ] done.';
    expect(scanJsonValues(text).map((v) => v.ok && v.value)).toEqual([{ a: 1 }, [{ b: 2 }]]);
  });

  it('reports an object cut off at the end of the text and a malformed one, and keeps going after the latter', () => {
    const values = scanJsonValues('{"a": 1,}\n{"b": 2}\n{"c": "never closed');
    expect(values.map((v) => v.ok)).toEqual([false, true, false]);
    expect(values[0]?.ok === false && values[0].reason).toMatch(/not valid JSON/);
    expect(values[2]?.ok === false && values[2].reason).toMatch(/truncated/);
  });

  it('finds nothing in text without JSON', () => {
    expect(scanJsonValues('I am sorry, I cannot help with that.')).toEqual([]);
  });
});

describe('parsePersonaText on the real answers', () => {
  it('reads the 10 compact objects of persona-10 with every field mapped', () => {
    const { personas, rejected } = parsePersonaText(fixtureText('persona-10'));
    expect(rejected).toEqual([]);
    expect(personas).toHaveLength(10);
    expect(personas[0]).toEqual({
      firstName: 'Sofia',
      lastName: 'Kowalski',
      gender: 'f',
      ethnicity: 'Polish',
      age: 39,
      bios: {
        facebook: 'I\'m the "urban gardening" person 🎧\nSecond line: café talks & weekend trips.',
        instagram: '🎧 urban gardening | Austin, TX',
        x: 'Physical Therapist. Opinions are my own. 🎧',
        tiktok: 'Day in the life of a physical therapist 🎧',
      },
      jobTitle: 'Physical Therapist',
      workplace: 'MoveWell Clinic',
      eduEstablishment: 'University of Florida',
      eduStudy: 'Kinesiology',
      currentCity: 'Austin',
      currentState: 'TX',
      // the old flow's answers name no country
      currentCountry: '',
      prevCity: 'Atlanta',
      prevState: 'GA',
      about: 'Sofia is a 39-year-old physical therapist who moved from Atlanta to Austin. Bio language: English.',
    });
    // Each line of the fixture is one object: the names come back in order.
    const names = fixtureText('persona-10')
      .split('\n')
      .map((line) => (JSON.parse(line) as { firstname: string }).firstname);
    expect(personas.map((p) => p.firstName)).toEqual(names);
  });

  it('reads pretty-printed objects one after another (persona-3-pretty) and a single object (persona-1)', () => {
    const pretty = parsePersonaText(fixtureText('persona-3-pretty'));
    expect(pretty.rejected).toEqual([]);
    expect(pretty.personas.map((p) => `${p.firstName} ${p.lastName} ${p.age}`)).toEqual([
      'Amélie Fischer 28',
      'Mateo Nakamura 41',
      'Priya Rossi 54',
    ]);
    expect(pretty.personas[1]?.workplace).toBe("St. Mary's Hospital");
    const single = parsePersonaText(fixtureText('persona-1'));
    expect(single.personas.map((p) => p.firstName)).toEqual(['Ingrid']);
    expect(single.personas[0]?.about).toContain('Tagalog (Filipino)');
  });
});

describe('parsePersonaText on other shapes', () => {
  const flowObject = (overrides: Record<string, unknown> = {}, bios: Record<string, unknown> = {}) => ({
    firstname: 'Ana',
    lastname: 'Silva',
    gender: 'female',
    ethnicity: 'Portuguese',
    bios: JSON.stringify({
      facebook_bio: 'fb',
      instagram_bio: 'ig',
      x_bio: 'x',
      tiktok_bio: 'tt',
      age: 30,
      job_title: 'Designer',
      workplace: 'Studio',
      edu_establishment: 'ULisboa',
      edu_study: 'Design',
      current_city: 'Lisbon',
      current_state: 'Lisbon',
      prev_city: 'Porto',
      prev_state: 'Porto',
      about: 'About Ana',
      ...bios,
    }),
    ...overrides,
  });

  it('accepts bios as an object, age as a numeric string and gender words', () => {
    const object = { ...flowObject({ gender: ' Male ' }), bios: { facebook_bio: 'fb', age: ' 42 ', job_title: 'Chef' } };
    const { personas, rejected } = parsePersonaText(JSON.stringify(object));
    expect(rejected).toEqual([]);
    expect(personas[0]).toMatchObject({ gender: 'm', age: 42, jobTitle: 'Chef', bios: { facebook: 'fb', x: '' } });
  });

  it('turns an unusable age into null rather than rejecting the persona', () => {
    const { personas } = parsePersonaText(JSON.stringify(flowObject({}, { age: 'thirty-ish' })));
    expect(personas[0]?.age).toBeNull();
  });

  it('skips invalid objects and says which and why, keeping the others', () => {
    const text = [
      JSON.stringify(flowObject()),
      JSON.stringify(flowObject({ lastname: '   ' })),
      JSON.stringify(flowObject({ gender: 'unknown' })),
      JSON.stringify({ ...flowObject(), bios: '{"facebook_bio": "unterminated' }),
      '{"firstname": "Broken",}',
      JSON.stringify(flowObject({ firstname: 'Bea' })),
      '["not an object"]',
      '{"firstname": "Cut off", "bios": "{',
    ].join('\n');
    const { personas, rejected } = parsePersonaText(text);
    expect(personas.map((p) => p.firstName)).toEqual(['Ana', 'Bea']);
    expect(rejected.map((r) => r.index)).toEqual([1, 2, 3, 4, 6, 7]);
    expect(rejected[0]?.reason).toMatch(/lastName is empty/);
    expect(rejected[1]?.reason).toMatch(/gender must be f or m/);
    expect(rejected[2]?.reason).toMatch(/bios is not valid JSON/);
    expect(rejected[3]?.reason).toMatch(/not valid JSON/);
    expect(rejected[4]?.reason).toMatch(/not an object/);
    expect(rejected[5]?.reason).toMatch(/truncated/);
  });

  it('enforces core limits', () => {
    const { rejected } = parsePersonaText(JSON.stringify(flowObject({ firstname: 'A'.repeat(101) })));
    expect(rejected[0]?.reason).toMatch(/firstName is longer than 100/);
  });
});

describe('parsePersonaText property: hostile personas serialised in the Flowise shape come back equal', () => {
  it('round-trips 400 random batches across every layout', () => {
    for (let seed = 1; seed <= 400; seed++) {
      const random = seeded(seed);
      const personas = Array.from({ length: int(random, 1, 6) }, () => randomPersona(random));
      const layout = oneOf(random, LAYOUTS);
      const objects: unknown[] = personas.map((p) => toFlowiseObject(p, random));
      // Sometimes one broken object among them: it must be rejected at its position, the rest kept.
      const brokenAt = random() < 0.3 ? int(random, 0, objects.length) : -1;
      if (brokenAt >= 0) objects.splice(brokenAt, 0, { ...(toFlowiseObject(personas[0] as never, random) as object), gender: 'x' });
      const text = layoutText(objects, layout, random);
      const parsed = parsePersonaText(text);
      const context = `seed ${seed}, layout ${layout}:\n${text}`;
      expect(parsed.personas, context).toEqual(personas);
      expect(
        parsed.rejected.map((r) => r.index),
        context,
      ).toEqual(brokenAt >= 0 ? [brokenAt] : []);
    }
  });
});

describe('prompt flow text', () => {
  it('reads final_prompt from the real answer, from fences and after prose', () => {
    const expected = (JSON.parse(fixtureText('prompt-first')) as { final_prompt: string }).final_prompt;
    expect(parsePromptText(fixtureText('prompt-first'))).toEqual({ ok: true, prompt: expected });
    expect(parsePromptText('Sure:\n```json\n{"final_prompt": "  a {curly} \\"quoted\\" prompt  "}\n```')).toEqual({
      ok: true,
      prompt: 'a {curly} "quoted" prompt',
    });
  });

  it('refuses a missing, empty, non-text or overlong final_prompt', () => {
    expect(parsePromptText('{"prompt": "x"}')).toMatchObject({ ok: false, reason: expect.stringMatching(/no final_prompt/) });
    expect(parsePromptText('{"final_prompt": "   "}')).toMatchObject({ ok: false, reason: 'final_prompt is empty' });
    expect(parsePromptText('{"final_prompt": 3}')).toMatchObject({ ok: false, reason: 'final_prompt is not text' });
    expect(parsePromptText(JSON.stringify({ final_prompt: 'x'.repeat(4001) }))).toMatchObject({ ok: false });
    expect(parsePromptText('just prose')).toMatchObject({ ok: false, reason: 'the text holds no JSON object' });
  });

  it('serialises person_data with the old keys, byte for byte as the old system did', () => {
    const body = JSON.parse(readFileSync(new URL('./fixtures/prompt-request.body.json', import.meta.url), 'utf8')) as {
      overrideConfig: { startState: { startAgentflow_0: Array<{ key: string; value: string }> } };
    };
    const sent = body.overrideConfig.startState.startAgentflow_0.find((e) => e.key === 'person_data')?.value;
    const sofia = parsePersonaText(fixtureText('persona-10')).personas[0];
    expect(sofia).toBeDefined();
    // The old keys byte for byte, then core's extra keys at the end (a flow that ignores them is unaffected).
    expect(sent).toBeDefined();
    expect(personDataJson(sofia as never)).toBe(
      `${(sent as string).slice(0, -1)}, "job_title": "Physical Therapist", "workplace": "MoveWell Clinic", "current_city": "Austin", "current_state": "TX"}`,
    );
    expect(JSON.parse(personDataJson(samplePersona({ age: null })))).toMatchObject({ firstname: 'Maria', age: null });
  });
});
