import { type PersonaData, personDataEntries } from '@avatargen/core';

/**
 * JSON of a flat object with the separators of Python's json.dumps (", " and ": ") and non-ASCII
 * kept as is: byte for byte what the old system sent as `person_data`, so existing flows whose
 * prompts quote it see the same text.
 */
function pythonStyleJson(entries: ReadonlyArray<readonly [string, unknown]>): string {
  return `{${entries.map(([key, value]) => `${JSON.stringify(key)}: ${JSON.stringify(value ?? null)}`).join(', ')}}`;
}

/**
 * The `person_data` start-state value of the prompt flow: the old system's flat snake_case keys
 * first, byte for byte, then core's extra keys (job_title, workplace, current_city,
 * current_state), which a flow that does not read them ignores.
 */
export function personDataJson(persona: PersonaData): string {
  return pythonStyleJson(personDataEntries(persona));
}

/** The `prompts_history` start-state value, sent once the persona has at least one prompt. */
export function promptsHistory(previousPrompts: readonly string[]): string {
  return `Ideas already used, to avoid: ${previousPrompts.join(', ')}`;
}
