import type { PersonaData } from '@avatargen/core';
import { scanJsonValues } from './scanner.js';

/** The longest prompt accepted from the flow (the ImagePromptProvider contract). */
export const MAX_PROMPT_LENGTH = 4000;

/**
 * JSON of a flat object with the separators of Python's json.dumps (", " and ": ") and non-ASCII
 * kept as is: byte for byte what the old system sent as `person_data`, so existing flows whose
 * prompts quote it see the same text.
 */
function pythonStyleJson(entries: ReadonlyArray<readonly [string, unknown]>): string {
  return `{${entries.map(([key, value]) => `${JSON.stringify(key)}: ${JSON.stringify(value ?? null)}`).join(', ')}}`;
}

/** The `person_data` start-state value of the prompt flow: the old system's flat snake_case keys. */
export function personDataJson(persona: PersonaData): string {
  return pythonStyleJson([
    ['firstname', persona.firstName],
    ['lastname', persona.lastName],
    ['gender', persona.gender],
    ['bio_facebook', persona.bios.facebook],
    ['bio_instagram', persona.bios.instagram],
    ['bio_x', persona.bios.x],
    ['bio_tiktok', persona.bios.tiktok],
    ['ethnicity', persona.ethnicity],
    ['age', persona.age],
  ]);
}

/** The `prompts_history` start-state value, sent once the persona has at least one prompt. */
export function promptsHistory(previousPrompts: readonly string[]): string {
  return `Ideas already used, to avoid: ${previousPrompts.join(', ')}`;
}

/**
 * Reads `final_prompt` from a prompt flow's `text`: a JSON object, possibly inside ``` fences or
 * after some prose. Returns the trimmed prompt, or the reason there is none.
 */
export function parsePromptText(text: string): { ok: true; prompt: string } | { ok: false; reason: string } {
  let lastReason = 'the text holds no JSON object';
  for (const scanned of scanJsonValues(text)) {
    if (!scanned.ok) {
      lastReason = scanned.reason;
      continue;
    }
    const value = scanned.value;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) continue;
    const prompt = (value as Record<string, unknown>).final_prompt;
    if (prompt === undefined) {
      lastReason = 'the JSON object has no final_prompt';
      continue;
    }
    if (typeof prompt !== 'string') return { ok: false, reason: 'final_prompt is not text' };
    const trimmed = prompt.trim();
    if (trimmed === '') return { ok: false, reason: 'final_prompt is empty' };
    if (trimmed.length > MAX_PROMPT_LENGTH) {
      return { ok: false, reason: `final_prompt is longer than ${MAX_PROMPT_LENGTH} characters (${trimmed.length})` };
    }
    return { ok: true, prompt: trimmed };
  }
  return { ok: false, reason: lastReason };
}
