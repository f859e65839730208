import { genderWord, type ImagePromptProvider, type PersonaData, type PromptRequest, throwIfAborted } from '@avatargen/core';
import { createRandom } from '@avatargen/core';

/**
 * Places a shot can happen, with what people do there; `key` is the word the image side
 * recognises in a prompt. {their} becomes her/his.
 */
export const SETTINGS = [
  {
    key: 'cafe',
    text: 'in a cozy neighborhood cafe',
    doing: ['sipping a cappuccino', 'reading a paperback', 'chatting with a friend across the table'],
  },
  { key: 'park', text: 'in a leafy city park', doing: ['walking {their} dog', 'sitting on a bench', 'having a picnic with friends'] },
  { key: 'beach', text: 'on a sandy beach', doing: ['walking along the water', 'laughing in the wind', 'holding {their} sandals'] },
  { key: 'kitchen', text: 'in a bright home kitchen', doing: ['chopping vegetables', 'stirring a pot', 'making coffee'] },
  {
    key: 'office',
    text: 'at a modern open-plan office',
    doing: ['working on a laptop', 'talking with a colleague', 'holding a mug at {their} desk'],
  },
  {
    key: 'street',
    text: 'on a busy downtown street',
    doing: ['waiting at a crosswalk', 'carrying shopping bags', 'looking at {their} phone'],
  },
  { key: 'mountain', text: 'on a mountain trail', doing: ['hiking with a backpack', 'resting on a rock', 'looking out over the valley'] },
  { key: 'library', text: 'in a quiet library', doing: ['browsing the shelves', 'taking notes', 'reading at a long table'] },
  {
    key: 'gym',
    text: 'at a neighborhood gym',
    doing: ['stretching after a workout', 'lifting light dumbbells', 'drinking from a water bottle'],
  },
  {
    key: 'market',
    text: 'at an outdoor farmers market',
    doing: ['choosing fresh fruit', 'carrying a tote bag of vegetables', 'tasting a sample'],
  },
  { key: 'living room', text: 'in a sunny living room', doing: ['reading on the sofa', 'playing a board game', 'watering a houseplant'] },
  { key: 'rooftop', text: 'on a rooftop terrace', doing: ['raising a glass with friends', 'leaning on the railing', 'laughing at a joke'] },
  { key: 'lake', text: 'on a wooden pier by a lake', doing: ['dangling {their} feet over the water', 'fishing', 'skipping stones'] },
  { key: 'concert', text: 'at an outdoor concert', doing: ['singing along', 'dancing in the crowd', 'holding up {their} phone'] },
  { key: 'snow', text: 'on a snowy street', doing: ['catching snowflakes', 'walking with a hot drink', 'brushing snow off {their} coat'] },
  { key: 'garden', text: 'in a backyard garden', doing: ['planting flowers', 'picking tomatoes', 'relaxing in a garden chair'] },
  {
    key: 'train',
    text: 'on a commuter train',
    doing: ['looking out of the window', 'listening to music on headphones', 'reading the news'],
  },
  {
    key: 'museum',
    text: 'in an art museum',
    doing: ['looking at a large painting', 'sketching in a notebook', 'walking through a gallery'],
  },
] as const;

export const FRAMINGS = [
  'Close-up portrait',
  'Head-and-shoulders shot',
  'Half-body shot',
  'Full-body shot',
  'Over-the-shoulder view',
  'Mirror selfie pose',
  'Wide environmental portrait',
  'Selfie at arm’s length',
] as const;

/** Things people do anywhere, mixed in with the setting's own. */
export const ACTIVITIES = [
  'smiling at the camera',
  'laughing',
  'waving at the camera',
  'taking a selfie',
  'looking into the distance',
] as const;

export const LIGHTS = [
  'soft morning light',
  'golden hour sunlight',
  'overcast daylight',
  'warm indoor lamplight',
  'bright midday sun',
  'blue hour dusk',
  'neon evening light',
  'soft window light',
] as const;

const OUTFITS = [
  'wearing a denim jacket',
  'in a knit sweater',
  'in a plain t-shirt',
  'in a light linen shirt',
  'wearing a rain jacket',
  'in smart casual clothes',
  'in a hoodie',
  'in work clothes',
] as const;

/**
 * What the offline picture really is: the stored prompt must describe the DiceBear drawing the
 * image side makes from it, not a photo that was never taken.
 */
export const PICTURE_KIND = 'Illustrated avatar: a flat digital illustration (cartoon avatar style) of the same person in a simple scene.';

function identity(persona: PersonaData): string {
  return `${persona.firstName}|${persona.lastName}|${persona.gender}|${persona.age ?? ''}`;
}

function describePerson(persona: PersonaData): string {
  const age = persona.age === null ? '' : `${persona.age}-year-old `;
  const ethnicity = persona.ethnicity ? `${persona.ethnicity} ` : '';
  return `${persona.firstName}, a ${age}${ethnicity}${genderWord(persona.gender) === 'female' ? 'woman' : 'man'}`;
}

const sameText = (a: string, b: string) => a.trim().toLowerCase() === b.trim().toLowerCase();

/**
 * Descriptions of illustrated shots assembled from setting, framing, activity, light and outfit. Deterministic
 * from the seed, the persona and how many prompts came before; never equal to a previous one.
 */
export function createLocalPromptProvider(): ImagePromptProvider {
  return {
    async nextPrompt(request: PromptRequest): Promise<string> {
      throwIfAborted(request.signal);
      const { persona } = request;
      const previous = request.previousPrompts ?? [];
      const their = persona.gender === 'f' ? 'her' : 'his';
      const usedSettings = new Set(SETTINGS.filter((s) => previous.some((p) => p.toLowerCase().includes(s.text))).map((s) => s.key));
      for (let attempt = 0; ; attempt++) {
        const r = createRandom('prompt', request.seed, identity(persona), previous.length, attempt);
        // Prefer a setting not used yet for this persona, so a set of shots covers different places.
        const fresh = SETTINGS.filter((s) => !usedSettings.has(s.key));
        const setting = r.pick(fresh.length > 0 && attempt < 20 ? fresh : SETTINGS);
        const place = persona.workplace && r.chance(0.12) ? `at ${persona.workplace}, on a work day` : setting.text;
        const activity = r.pick(r.chance(0.75) ? setting.doing : ACTIVITIES).replace('{their}', their);
        const prompt =
          `${r.pick(FRAMINGS)} of ${describePerson(persona)}, ${activity} ${place}, ` +
          `${r.pick(OUTFITS)}, ${r.pick(LIGHTS)}. ${PICTURE_KIND}`;
        if (!previous.some((p) => sameText(p, prompt))) return prompt;
        if (attempt >= 200) {
          // Practically unreachable (thousands of combinations), but never loop forever.
          for (let n = previous.length + 1; ; n++) {
            const numbered = `${prompt} Variation ${n}.`;
            if (!previous.some((p) => sameText(p, numbered))) return numbered;
          }
        }
      }
    },
  };
}
