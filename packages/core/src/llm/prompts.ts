import { z } from 'zod';
import { type PersonaData, PLATFORMS, type Platform, personaSchema } from '../domain/persona.js';
import { describeQuota, hasQuota, type PersonaQuota } from '../domain/targets.js';
import type { PersonaRequest, PromptRequest } from '../ports.js';

/**
 * One prompt builder for every language-model provider (an OpenAI-compatible chat model today;
 * Anthropic or Gemini tomorrow), so they all ask for the same thing. The texts follow what the old
 * system's Flowise flows asked for; Flowise itself keeps its own flows and gets only the data.
 */

export interface ChatMessage {
  role: 'system' | 'user';
  content: string;
}

/** A JSON Schema document, as plain data. */
export type JsonSchema = { [key: string]: unknown };

const PLATFORM_NAMES: Record<Platform, string> = { facebook: 'Facebook', instagram: 'Instagram', x: 'X (Twitter)', tiktok: 'TikTok' };

/** Field names and what each holds, in the order the answer should give them. */
const PERSONA_FIELDS: ReadonlyArray<readonly [keyof PersonaData, string]> = [
  ['firstName', 'first name'],
  ['lastName', 'last name'],
  ['gender', '"f" or "m"'],
  ['ethnicity', 'ethnicity, e.g. "Filipino"'],
  ['age', 'age in whole years'],
  ['bios', 'an object with one bio per platform: facebook, instagram, x, tiktok'],
  ['jobTitle', 'job title'],
  ['workplace', 'name of the employer or workplace'],
  ['eduEstablishment', 'school, college or university'],
  ['eduStudy', 'what they studied there'],
  ['currentCity', 'city they live in now'],
  ['currentState', 'state, region or province of the current city'],
  ['prevCity', 'city they lived in before'],
  ['prevState', 'state, region or province of the previous city'],
  ['currentCountry', 'country of the current city'],
  ['about', 'a short paragraph about their life, in the bio language'],
];

/**
 * One line per persona asked for, "Persona 1 must be: female, aged 25-40", or "Persona 3: any" for
 * an empty quota; none when no quota asks for anything (the prompt stays as it was without targets).
 */
export function quotaLines(quotas: readonly PersonaQuota[] | undefined, count: number): string[] {
  if (!quotas?.some(hasQuota)) return [];
  return Array.from({ length: count }, (_, i) => {
    const quota = quotas[i];
    return quota && hasQuota(quota) ? `Persona ${i + 1} must be: ${describeQuota(quota)}` : `Persona ${i + 1}: any`;
  });
}

/**
 * The persona stage's request to a model: count, description, bio language, per-platform bio
 * instructions (settings), names to avoid, and the personas' quotas when the task has targets.
 */
export function personaMessages(
  request: Pick<PersonaRequest, 'count' | 'description' | 'language' | 'bioInstructions' | 'avoidNames' | 'quotas'>,
): ChatMessage[] {
  const count = request.count;
  const quotas = quotaLines(request.quotas, count);
  const lines = [
    `Write exactly ${count} persona${count === 1 ? '' : 's'} that match this description: ${request.description.trim()}`,
    '',
    'Each persona is a different, believable, fictional person (never a real, identifiable one): vary names, ages, looks, backgrounds and life stories within the description. Names, places, jobs and education fit the person and the description.',
    `Write the bios and "about" in ${request.language.name}.`,
    ...PLATFORMS.map((platform) => {
      const instructions = request.bioInstructions[platform]?.trim();
      return `${PLATFORM_NAMES[platform]} bio: ${instructions || 'written as the person would write it on that platform.'}`;
    }),
    ...(request.avoidNames?.length
      ? ['', `These names are taken by other personas of the dataset; use none of them: ${request.avoidNames.join('; ')}.`]
      : []),
    ...(quotas.length > 0
      ? [
          '',
          'Each persona must meet its own constraints below, strictly: gender, age band, ethnicity and place of residence exactly as given (the current city, region or country names the place). Give the personas in the answer in the order of these lines.',
          ...quotas,
        ]
      : []),
    '',
    'Fields of each persona:',
    ...PERSONA_FIELDS.map(([field, meaning]) => `- ${field}: ${meaning}`),
    '',
    `Answer with one JSON object and nothing else: {"personas": [ ...${count} persona object${count === 1 ? '' : 's'}... ]}.`,
  ];
  return [
    {
      role: 'system',
      content: 'You write realistic, fictional personas for a synthetic dataset used to test software. You answer with JSON only.',
    },
    { role: 'user', content: lines.join('\n') },
  ];
}

/**
 * What the image-prompt request tells about the persona, as ordered [key, value] pairs: the old
 * system's keys (names, gender, bios, ethnicity, age), then job, workplace and the current city,
 * so the pictures happen where the person lives now, not "in their home town". Flowise's
 * `person_data` is these pairs as JSON.
 */
export function personDataEntries(persona: PersonaData): Array<readonly [string, string | number | null]> {
  return [
    ['firstname', persona.firstName],
    ['lastname', persona.lastName],
    ['gender', persona.gender],
    ['bio_facebook', persona.bios.facebook],
    ['bio_instagram', persona.bios.instagram],
    ['bio_x', persona.bios.x],
    ['bio_tiktok', persona.bios.tiktok],
    ['ethnicity', persona.ethnicity],
    ['age', persona.age],
    ['job_title', persona.jobTitle],
    ['workplace', persona.workplace],
    ['current_city', persona.currentCity],
    ['current_state', persona.currentState],
  ];
}

/** The image-prompt stage's request: the persona, the prompts already used, "each differs from the last". */
export function imagePromptMessages(request: Pick<PromptRequest, 'persona' | 'previousPrompts'>): ChatMessage[] {
  const persona = request.persona;
  const where = [persona.currentCity, persona.currentState]
    .map((s) => s.trim())
    .filter(Boolean)
    .join(', ');
  const lines = [
    `The person: ${JSON.stringify(Object.fromEntries(personDataEntries(persona)))}`,
    '',
    'Write one prompt for an image model that makes four different photos of this person: ordinary, amateur phone photos of moments of their everyday life, not professional shots.',
    `Set them in the person's life now: their work${persona.jobTitle.trim() ? ` as ${persona.jobTitle.trim()}` : ''}${
      persona.workplace.trim() ? ` at ${persona.workplace.trim()}` : ''
    }, their free time${where ? `, and the city they live in now (${where})` : ''}. Vary the place, activity, clothing, time of day and camera angle.`,
  ];
  if (request.previousPrompts.length > 0) {
    lines.push('', 'Ideas already used, to avoid:', ...request.previousPrompts.map((p, i) => `${i + 1}. ${p}`));
    lines.push('', 'Each prompt differs from the last: choose new scenes, unlike every idea above.');
  }
  lines.push('', 'Answer with one JSON object and nothing else: {"final_prompt": "<the prompt>"}.');
  return [
    {
      role: 'system',
      content: 'You write prompts for an image model that makes photos of people for a synthetic dataset. You answer with JSON only.',
    },
    { role: 'user', content: lines.join('\n') },
  ];
}

/** Keywords a strict schema keeps; OpenAI's strict mode refuses others (minLength, maxLength...). */
const STRICT_KEYWORDS = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'enum',
  'anyOf',
  'const',
  'description',
]);

/**
 * The strict variant of a JSON schema (OpenAI structured outputs, `strict: true`): every object
 * lists all its properties as required and allows no others, and keywords strict mode does not
 * take are dropped. The reader still validates every value with core's rules afterwards.
 */
export function strictJsonSchema(schema: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (!STRICT_KEYWORDS.has(key)) continue;
    if (key === 'properties' && value && typeof value === 'object') {
      out.properties = Object.fromEntries(Object.entries(value).map(([name, sub]) => [name, strictJsonSchema(sub as JsonSchema)]));
    } else if (key === 'items' && value && typeof value === 'object' && !Array.isArray(value)) {
      out.items = strictJsonSchema(value as JsonSchema);
    } else if (key === 'anyOf' && Array.isArray(value)) {
      out.anyOf = value.map((sub) => strictJsonSchema(sub as JsonSchema));
    } else {
      out[key] = value;
    }
  }
  if (out.type === 'object') {
    const properties = (out.properties ?? {}) as JsonSchema;
    out.properties = properties;
    out.required = Object.keys(properties);
    out.additionalProperties = false;
  }
  return out;
}

let personaList: JsonSchema | undefined;

/**
 * The schema of a persona answer, `{"personas": [persona, ...]}` (strict mode wants an object at
 * the top), generated from core's persona schema: one source of truth.
 */
export function personaListJsonSchema(): JsonSchema {
  personaList ??= strictJsonSchema({
    type: 'object',
    properties: {
      personas: { type: 'array', items: z.toJSONSchema(personaSchema, { io: 'output', unrepresentable: 'any' }) as JsonSchema },
    },
  });
  return structuredClone(personaList);
}

/** The schema of an image-prompt answer: `{"final_prompt": "..."}`. */
export function imagePromptJsonSchema(): JsonSchema {
  return strictJsonSchema(z.toJSONSchema(z.object({ final_prompt: z.string() })) as JsonSchema);
}
