import { z } from 'zod';
import { hasControlCharacters, type Platform } from './persona.js';

/** Default bio instructions per platform, sent to the persona provider. */
export const DEFAULT_BIO_PROMPTS: Record<Platform, string> = {
  facebook:
    'Write a Facebook "Intro" bio of at most 255 characters: friendly, first person, mentions work or studies and one hobby.',
  instagram:
    'Write an Instagram bio of at most 150 characters: short lines, a few emoji allowed, a personal motto or interests.',
  x: 'Write an X (Twitter) bio of at most 160 characters: witty, interests separated by " | " or commas, no hashtags spam.',
  tiktok: 'Write a TikTok bio of at most 80 characters: playful and very short, emoji allowed.',
};

const bioPrompt = z
  .string()
  .trim()
  .min(1, { error: 'Enter instructions for this platform.' })
  .max(4000, { error: 'Keep the instructions under 4000 characters.' })
  .refine((s) => !hasControlCharacters(s), { error: 'Remove control characters (such as NUL) from the instructions.' });

const flag = z.preprocess((v) => {
  if (v === 'true' || v === 'on' || v === '1' || v === 1) return true;
  if (v === 'false' || v === 'off' || v === '0' || v === 0 || v === '') return false;
  return v;
}, z.boolean({ error: 'Must be on or off.' }));

/** Every setting with its type, its default and the message shown when a value is refused. */
export const settingsSchema = z.object({
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
  max_concurrent_tasks: z.preprocess(
    (v) => (typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : v),
    z
      .number({ error: 'Enter a whole number from 1 to 20.' })
      .int({ error: 'Enter a whole number from 1 to 20.' })
      .min(1, { error: 'At least 1 task must be able to run.' })
      .max(20, { error: 'At most 20 tasks can run at once.' })
      .default(2),
  ),
});

export type Settings = z.output<typeof settingsSchema>;
export type SettingKey = keyof Settings;
export const SETTING_KEYS = Object.keys(settingsSchema.shape) as SettingKey[];

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
