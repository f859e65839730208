import { z } from 'zod';
import { ValidationError } from '../errors.js';
import { closeLanguages, findLanguage, type Language } from './languages.js';
import { hasControlCharacters } from './persona.js';
import { type DemographicTargets, validateTargets } from './targets.js';

export const COUNT_MIN = 10;
export const COUNT_MAX = 300;
export const DESCRIPTION_MAX = 4000;
export const IMAGES_PER_PERSONA = [4, 8, 12, 16, 20] as const;
export type ImagesPerPersona = (typeof IMAGES_PER_PERSONA)[number];

/** A validated request to generate a dataset. */
export interface GenerationRequest {
  description: string;
  language: Language;
  count: number;
  imagesPerPersona: ImagesPerPersona;
  /** Optional demographic targets (domain/targets.ts); null or absent: whatever the provider gives. */
  targets?: DemographicTargets | null;
}

const toInt = (v: unknown) => (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v);

const requestSchema = z.object({
  description: z
    .string({ error: 'Describe the people to generate.' })
    .transform((s) => s.trim())
    .pipe(
      z
        .string()
        .min(1, { error: 'Describe the people to generate.' })
        .max(DESCRIPTION_MAX, { error: `Keep the description under ${DESCRIPTION_MAX} characters.` })
        .refine((s) => !hasControlCharacters(s), { error: 'Remove control characters (such as NUL) from the description.' }),
    ),
  language: z.string({ error: 'Choose a bio language.' }).superRefine((query, context) => {
    if (findLanguage(query) !== undefined) return;
    // A near miss names what was probably meant (the form, the API and the CLI all say it).
    const close = closeLanguages(query).map((l) => `${l.name} (${l.code})`);
    context.addIssue({
      code: 'custom',
      message: `Choose a bio language from the list${close.length ? `. Did you mean ${close.join(', ')}?` : '.'}`,
    });
  }),
  count: z.preprocess(
    toInt,
    z
      .number({ error: `Enter a number of personas from ${COUNT_MIN} to ${COUNT_MAX}.` })
      .int({ error: 'The number of personas must be a whole number.' })
      .min(COUNT_MIN, { error: `Generate at least ${COUNT_MIN} personas.` })
      .max(COUNT_MAX, { error: `Generate at most ${COUNT_MAX} personas.` }),
  ),
  imagesPerPersona: z.preprocess(
    toInt,
    z.number({ error: 'Choose how many images each persona gets.' }).refine((n) => (IMAGES_PER_PERSONA as readonly number[]).includes(n), {
      error: `Images per persona must be one of ${IMAGES_PER_PERSONA.join(', ')}.`,
    }),
  ),
});

/** JSON schema-able zod schema for the request body (used by the host's API and its OpenAPI document). */
export const generationRequestSchema = requestSchema;

export type RequestValidation = { ok: true; value: GenerationRequest } | { ok: false; errors: Record<string, string> };

/** Validates a generation request; every message is written for the person who filled the form. */
export function validateGenerationRequest(input: unknown): RequestValidation {
  const parsed = requestSchema.safeParse(input ?? {});
  // Targets are checked beside the other fields, so a form shows every wrong field at once.
  const targets = validateTargets((input as { targets?: unknown } | null | undefined)?.targets);
  if (!parsed.success || !targets.ok) {
    const errors: Record<string, string> = targets.ok ? {} : { ...targets.errors };
    for (const issue of parsed.success ? [] : parsed.error.issues) {
      const field = String(issue.path[0] ?? 'request');
      errors[field] ??= issue.message;
    }
    return { ok: false, errors };
  }
  const { description, language, count, imagesPerPersona } = parsed.data;
  return {
    ok: true,
    value: {
      description,
      language: findLanguage(language) as Language,
      count,
      imagesPerPersona: imagesPerPersona as ImagesPerPersona,
      targets: targets.value,
    },
  };
}

/** Like validateGenerationRequest, but throws a ValidationError. */
export function parseGenerationRequest(input: unknown): GenerationRequest {
  const result = validateGenerationRequest(input);
  if (!result.ok) throw new ValidationError(result.errors);
  return result.value;
}
