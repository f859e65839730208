import { z } from 'zod';
import { ValidationError } from '../errors.js';
import { hasControlCharacters, type Platform } from './persona.js';
import { currencySchema, pricesSchema } from './prices.js';

/** Default bio instructions per platform, sent to the persona provider. */
export const DEFAULT_BIO_PROMPTS: Record<Platform, string> = {
  facebook: 'Write a Facebook "Intro" bio of at most 255 characters: friendly, first person, mentions work or studies and one hobby.',
  instagram: 'Write an Instagram bio of at most 150 characters: short lines, a few emoji allowed, a personal motto or interests.',
  x: 'Write an X (Twitter) bio of at most 160 characters: witty, interests separated by " | " or commas, no hashtags spam.',
  tiktok: 'Write a TikTok bio of at most 80 characters: playful and very short, emoji allowed.',
};

const bioPrompt = z
  .string()
  .trim()
  .min(1, { error: 'Enter instructions for this platform.' })
  .max(4000, { error: 'Keep the instructions under 4000 characters.' })
  .refine((s) => !hasControlCharacters(s), { error: 'Remove control characters (such as NUL) from the instructions.' });

const flag = z.preprocess(
  (v) => {
    if (v === 'true' || v === 'on' || v === '1' || v === 1) return true;
    if (v === 'false' || v === 'off' || v === '0' || v === 0 || v === '') return false;
    return v;
  },
  z.boolean({ error: 'Must be on or off.' }),
);

/** The Images API's output options (`quality`, `size`, `output_format`, `background`); see docs/images.md. */
export const IMAGE_QUALITIES = ['auto', 'low', 'medium', 'high'] as const;
export const IMAGE_SIZES = ['auto', '1024x1024', '1536x1024', '1024x1536'] as const;
export const IMAGE_OUTPUT_FORMATS = ['png', 'jpeg', 'webp'] as const;
export const IMAGE_BACKGROUNDS = ['auto', 'opaque', 'transparent'] as const;
export type ImageQuality = (typeof IMAGE_QUALITIES)[number];
export type ImageSize = (typeof IMAGE_SIZES)[number];
export type ImageOutputFormat = (typeof IMAGE_OUTPUT_FORMATS)[number];
export type ImageBackground = (typeof IMAGE_BACKGROUNDS)[number];

const choice = <T extends readonly [string, ...string[]]>(values: T) => z.enum(values, { error: `Choose one of ${values.join(', ')}.` });

const compression = z.preprocess(
  (v) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
  z
    .number({ error: 'Enter a whole number from 0 to 100.' })
    .int({ error: 'Enter a whole number from 0 to 100.' })
    .min(0, { error: 'Enter a whole number from 0 to 100.' })
    .max(100, { error: 'Enter a whole number from 0 to 100.' }),
);

/**
 * The output options one task uses. The defaults are what the service does when nothing is
 * sent, so a site that never sets them gets the pictures it got before these settings existed.
 */
const imageOutputFields = {
  image_quality: choice(IMAGE_QUALITIES),
  image_size: choice(IMAGE_SIZES),
  image_output_format: choice(IMAGE_OUTPUT_FORMATS),
  /** 0-100, for jpeg and webp only (png is lossless). */
  image_output_compression: compression,
  image_background: choice(IMAGE_BACKGROUNDS),
};
export const IMAGE_OUTPUT_DEFAULTS = {
  image_quality: 'auto',
  image_size: 'auto',
  image_output_format: 'png',
  image_output_compression: 100,
  image_background: 'auto',
} as const;
export const IMAGE_OUTPUT_KEYS = Object.keys(imageOutputFields) as Array<keyof typeof imageOutputFields>;

/** JPEG has no alpha channel: a transparent background needs png or webp. */
const TRANSPARENT_NEEDS_ALPHA = 'A transparent background needs the png or webp output format.';

const perMinute = (what: string) =>
  z
    .number({ error: `${what} must be a number.` })
    .int({ error: `${what} must be a whole number.` })
    .min(1, { error: `${what} must be at least 1.` })
    .max(1_000_000_000, { error: `${what} is too large.` })
    .optional();

/**
 * One fleet-wide provider limit (limits/fleet.ts): every worker of the site shares it. `provider`
 * is the plugin's short name (`openai`, `flowise`, `local`, or a third-party plugin's name);
 * `model` what the provider reports (e.g. `gpt-image-1`); without a model the rule covers all of
 * the provider's models together.
 */
const providerLimitSchema = z
  .object({
    provider: z
      .string({ error: 'Name the provider (openai, flowise...).' })
      .trim()
      .min(1, { error: 'Name the provider (openai, flowise...).' })
      .max(200),
    model: z.string().trim().max(200).optional(),
    requests_per_minute: perMinute('Requests per minute'),
    images_per_minute: perMinute('Images per minute'),
    tokens_per_minute: perMinute('Tokens per minute'),
    in_flight: perMinute('Calls in flight'),
  })
  .strict()
  .refine((r) => r.requests_per_minute || r.images_per_minute || r.tokens_per_minute || r.in_flight, {
    error: 'Give a limit: requests_per_minute, images_per_minute, tokens_per_minute or in_flight.',
  });
export type ProviderLimitRule = z.output<typeof providerLimitSchema>;

const LIMIT_FIELDS = ['requests_per_minute', 'images_per_minute', 'tokens_per_minute', 'in_flight'] as const;

/**
 * The limits as the settings page writes them, one rule a line: `provider [model] name=value...`,
 * e.g. `openai gpt-image-1 images_per_minute=120 in_flight=8`. Anything else is left for the
 * schema to name.
 */
export function readProviderLimits(text: string): unknown[] {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [provider, ...rest] = line.split(/\s+/);
      const rule: Record<string, unknown> = { provider };
      for (const part of rest) {
        const match = /^([a-z_]+)=(.*)$/.exec(part);
        if (!match) {
          if (rule.model === undefined && Object.keys(rule).length === 1) rule.model = part;
          else rule[part] = true; // refused by the schema as an unknown key, with its name
          continue;
        }
        rule[match[1] as string] = /^\d+$/.test(match[2] as string) ? Number(match[2]) : match[2];
      }
      return rule;
    });
}

/** The rules as readProviderLimits reads them back. */
export function formatProviderLimits(rules: readonly ProviderLimitRule[]): string {
  return rules
    .map((r) =>
      [r.provider, r.model ?? '', ...LIMIT_FIELDS.filter((f) => r[f] !== undefined).map((f) => `${f}=${r[f]}`)].filter(Boolean).join(' '),
    )
    .join('\n');
}

const providerLimits = z.preprocess(
  (v) => (typeof v === 'string' ? readProviderLimits(v) : v),
  z
    .array(providerLimitSchema)
    .max(50, { error: 'At most 50 provider limits.' })
    .refine((rules) => new Set(rules.map((r) => `${r.provider}/${r.model ?? ''}`)).size === rules.length, {
      error: 'Give each provider and model one rule.',
    }),
);

/**
 * Every setting with its type, its default and the message shown when a value is refused; without
 * the check across fields (settingsSchema has it), so it can be made partial or picked from.
 */
export const settingsObjectSchema = z.object({
  bio_prompt_facebook: bioPrompt.default(DEFAULT_BIO_PROMPTS.facebook),
  bio_prompt_instagram: bioPrompt.default(DEFAULT_BIO_PROMPTS.instagram),
  bio_prompt_x: bioPrompt.default(DEFAULT_BIO_PROMPTS.x),
  bio_prompt_tiktok: bioPrompt.default(DEFAULT_BIO_PROMPTS.tiktok),
  /** Start the base selfie from a random reference face (image-to-image). */
  randomize_face_base: flag.default(false),
  /** With a reference face: pick a face of the persona's gender only. */
  randomize_face_gender_lock: flag.default(true),
  crop_white_borders: flag.default(true),
  randomize_image_style: flag.default(true),
  /** Provenance marks: XMP with IPTC DigitalSourceType and the dataset and persona in every stored picture (docs/provenance.md). */
  provenance_marks: flag.default(true),
  /**
   * How many times a persona that misses its demographic quota is asked for again (0-2); after
   * that it is stored as it came and counted off target.
   */
  target_retries: z.preprocess(
    (v) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
    z
      .number({ error: 'Enter 0, 1 or 2.' })
      .int({ error: 'Enter 0, 1 or 2.' })
      .min(0, { error: 'Enter 0, 1 or 2.' })
      .max(2, { error: 'Enter 0, 1 or 2.' })
      .default(2),
  ),
  max_concurrent_tasks: z.preprocess(
    (v) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
    z
      .number({ error: 'Enter a whole number from 1 to 20.' })
      .int({ error: 'Enter a whole number from 1 to 20.' })
      .min(1, { error: 'At least 1 task must be able to run.' })
      .max(20, { error: 'At most 20 tasks can run at once.' })
      .default(2),
  ),
  image_quality: imageOutputFields.image_quality.default(IMAGE_OUTPUT_DEFAULTS.image_quality),
  image_size: imageOutputFields.image_size.default(IMAGE_OUTPUT_DEFAULTS.image_size),
  image_output_format: imageOutputFields.image_output_format.default(IMAGE_OUTPUT_DEFAULTS.image_output_format),
  image_output_compression: imageOutputFields.image_output_compression.default(IMAGE_OUTPUT_DEFAULTS.image_output_compression),
  image_background: imageOutputFields.image_background.default(IMAGE_OUTPUT_DEFAULTS.image_background),
  /** Fleet-wide provider limits (see providerLimitSchema and docs/operations.md); empty: none. */
  provider_limits: providerLimits.default([]),
  /** The price table: provider, model, unit and price (see domain/prices.ts); empty means no cost shown. */
  prices: pricesSchema.default([]),
  /** ISO 4217 code of the prices and the costs shown. */
  currency: currencySchema.default('USD'),
});

export const settingsSchema = settingsObjectSchema.superRefine((s, ctx) => {
  if (s.image_background === 'transparent' && s.image_output_format === 'jpeg') {
    ctx.addIssue({ code: 'custom', path: ['image_background'], message: TRANSPARENT_NEEDS_ALPHA });
  }
});

export type Settings = z.output<typeof settingsSchema>;
export type SettingKey = keyof Settings;
export const SETTING_KEYS = Object.keys(settingsObjectSchema.shape) as SettingKey[];

export function defaultSettings(): Settings {
  return settingsSchema.parse({});
}

export function bioInstructions(s: Settings): Record<Platform, string> {
  return {
    facebook: s.bio_prompt_facebook,
    instagram: s.bio_prompt_instagram,
    x: s.bio_prompt_x,
    tiktok: s.bio_prompt_tiktok,
  };
}

export type ImageOutputSettings = Pick<Settings, (typeof IMAGE_OUTPUT_KEYS)[number]>;

/**
 * A task's own output options (the generate form, `imageOutput` of POST /api/v1/tasks), over the
 * site's settings. Every key is optional; an empty string means "the site's setting".
 */
export const imageOutputOverrideSchema = z
  .object({
    quality: imageOutputFields.image_quality.optional(),
    size: imageOutputFields.image_size.optional(),
    format: imageOutputFields.image_output_format.optional(),
    compression: imageOutputFields.image_output_compression.optional(),
    background: imageOutputFields.image_background.optional(),
  })
  .strict();
export type ImageOutputOverride = z.output<typeof imageOutputOverrideSchema>;

/** The override's names as settings keys. */
export const IMAGE_OUTPUT_OVERRIDE_KEYS = {
  quality: 'image_quality',
  size: 'image_size',
  format: 'image_output_format',
  compression: 'image_output_compression',
  background: 'image_background',
} as const satisfies Record<keyof ImageOutputOverride, keyof ImageOutputSettings>;

/**
 * The output options of a task's settings snapshot. A snapshot taken before these settings existed
 * has none of the keys, and one that does not validate any more falls back per key: the defaults.
 */
export function imageOutputOf(snapshot: Partial<Record<string, unknown>>): ImageOutputSettings {
  const out: Record<string, unknown> = {};
  for (const key of IMAGE_OUTPUT_KEYS) {
    const parsed = imageOutputFields[key].safeParse(snapshot[key]);
    out[key] = parsed.success ? parsed.data : IMAGE_OUTPUT_DEFAULTS[key];
  }
  return out as ImageOutputSettings;
}

/**
 * The settings a task runs with: the site's, with the task's own output options over them.
 * `override` is the request's `imageOutput` (absent, or an object; empty strings and nulls mean
 * the site's value). Throws ValidationError naming `imageOutput.<key>`.
 */
export function withImageOutput(settings: Settings, override: unknown): Settings {
  if (override === undefined || override === null || override === '') return settings;
  if (typeof override !== 'object' || Array.isArray(override)) {
    throw new ValidationError({ imageOutput: 'Must be an object such as {"quality": "high"}.' });
  }
  const given = Object.fromEntries(Object.entries(override).filter(([, v]) => v !== '' && v !== null && v !== undefined));
  const parsed = imageOutputOverrideSchema.safeParse(given);
  if (!parsed.success) {
    const fields: Record<string, string> = {};
    for (const issue of parsed.error.issues) {
      const key = issue.code === 'unrecognized_keys' ? issue.keys[0] : issue.path[0];
      fields[`imageOutput.${String(key)}`] ??=
        issue.code === 'unrecognized_keys'
          ? `Unknown output option; use ${Object.keys(IMAGE_OUTPUT_OVERRIDE_KEYS).join(', ')}.`
          : issue.message;
    }
    throw new ValidationError(fields);
  }
  const merged: Settings = { ...settings };
  for (const [name, value] of Object.entries(parsed.data)) {
    (merged as Record<string, unknown>)[IMAGE_OUTPUT_OVERRIDE_KEYS[name as keyof ImageOutputOverride]] = value;
  }
  if (merged.image_background === 'transparent' && merged.image_output_format === 'jpeg') {
    throw new ValidationError({ [parsed.data.background ? 'imageOutput.background' : 'imageOutput.format']: TRANSPARENT_NEEDS_ALPHA });
  }
  return merged;
}
