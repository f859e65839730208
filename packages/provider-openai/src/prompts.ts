import { genderWord, type PersonaData, ValidationError } from '@avatargen/core';

export interface PromptOptions {
  /** BASE_PROMPT_APPEND: added at the end of every prompt when set. */
  append?: string;
}

export interface BasePromptOptions extends PromptOptions {
  /** The request carries a reference face (image-to-image through /v1/images/edits). */
  withReferenceFace?: boolean;
}

/** "female, Hispanic, 34 years old": the parts that are known, in words. */
export function describePerson(persona: Pick<PersonaData, 'gender' | 'ethnicity' | 'age'>): string {
  const parts: string[] = [genderWord(persona.gender)];
  const ethnicity = persona.ethnicity.trim();
  if (ethnicity) parts.push(ethnicity);
  if (persona.age !== null) parts.push(`${persona.age} years old`);
  return parts.join(', ');
}

function withAppend(lines: string[], append: string | undefined): string {
  const extra = append?.trim();
  return (extra ? [...lines, extra] : lines).join('\n');
}

/**
 * The prompt of the base selfie. Deliberately amateur: the dataset needs ordinary people's
 * profile photos, not studio portraits. The Facebook bio gives the model the person's life.
 * With a reference face, the face only lends its anatomy: gender and ethnicity come from the
 * persona, so a face source with few faces does not skew the dataset's demographics.
 */
export function buildBasePrompt(persona: PersonaData, options: BasePromptOptions = {}): string {
  const lines = [
    'An amateur, not well-produced selfie of this person, taken by themselves with a phone camera: ordinary light, casual framing, slightly imperfect focus, an everyday background, no studio look, no filters.',
    `The person: ${describePerson(persona)}.`,
  ];
  const bio = persona.bios.facebook.trim();
  if (bio) lines.push(`Their Facebook bio: "${bio}"`);
  if (options.withReferenceFace) {
    lines.push(
      `Use the attached photo only as a reference for facial anatomy (face shape, proportions and features). Do not take ethnicity or gender from it: the person is ${genderWord(persona.gender)}${persona.ethnicity.trim() ? ` and ${persona.ethnicity.trim()}` : ''}, as described above.`,
    );
  }
  return withAppend(lines, options.append);
}

/**
 * The prompt of one grid: four different shots of the person in the base image, laid out 2x2
 * with white gutters so the image processor can split and trim them. `shot` is the idea from the
 * prompt provider.
 */
export function buildGridPrompt(persona: PersonaData, shot: string, options: PromptOptions = {}): string {
  const idea = shot.trim();
  if (!idea) throw new ValidationError({ prompt: 'is empty' }, 'The grid prompt is empty');
  const lines = [
    'Make one image that is a 2x2 grid of four different photos of the same person as in the attached photo, with white gutters between the four photos and a white margin around them.',
    'Keep the same face, body and identity in all four photos; change the pose, camera angle, distance, expression and moment in each one.',
    `The person: ${describePerson(persona)}.`,
    `The shots: ${idea}`,
    'They look like ordinary amateur phone photos, not professionally produced.',
  ];
  return withAppend(lines, options.append);
}
