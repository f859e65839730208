import { describe, expect, it } from 'vitest';
import {
  bandRows,
  createRandom,
  duplicateNames,
  type NearDuplicatePair,
  nearDuplicateTexts,
  normalizeWords,
  type Random,
  type TextItem,
  wordShingles,
} from '../src/index.js';

// A clean corpus: sentences put together from phrase lists with the seeded PRNG, so two bios share a phrase now and then but never most of their text.
const OPENERS = [
  'These days',
  'Most weekends',
  'Since college',
  'Every morning',
  'Lately',
  'After work',
  'On slow Sundays',
  'For years now',
  'When it rains',
  'Between shifts',
  'Each summer',
  'Whenever possible',
];
const SUBJECTS = [
  'I',
  'my partner and I',
  'our little crew',
  'my sister and I',
  'the dog and I',
  'my running club',
  'our book circle',
  'my old roommate and I',
  'the kids and I',
  'my neighbours and I',
];
const VERBS = [
  'restore',
  'photograph',
  'sketch',
  'cook',
  'hunt for',
  'write about',
  'collect',
  'repair',
  'grow',
  'brew',
  'paint',
  'record',
  'map',
  'sew',
  'bake',
  'review',
];
const OBJECTS = [
  'vintage bicycles',
  'sourdough loaves',
  'mountain trails',
  'jazz records',
  'tiny succulents',
  'street murals',
  'handmade ceramics',
  'wild mushrooms',
  'old radios',
  'spicy noodle recipes',
  'linen quilts',
  'board game prototypes',
  'tide pools',
  'neon signs',
  'forgotten poems',
  'heirloom tomatoes',
  'paper lanterns',
  'mechanical watches',
];
const PLACES = [
  'near the harbour',
  'in a cramped garage',
  'on the rooftop',
  'at the community garden',
  'by the river',
  'in a borrowed studio',
  'across the valley',
  'behind the bakery',
  'at the flea market',
  'in the back yard',
  'downtown',
  'up north',
];
const TAILS = [
  'with loud music',
  'for no reason at all',
  'to stay sane',
  'because it makes people smile',
  'while the coffee gets cold',
  'until the light fades',
  'with more patience than skill',
  'and call it therapy',
  'as a quiet protest',
  'for the neighbourhood newsletter',
  'with questionable results',
  'to clear my head',
];

function sentence(random: Random): string {
  return `${random.pick(OPENERS)} ${random.pick(SUBJECTS)} ${random.pick(VERBS)} ${random.pick(OBJECTS)} ${random.pick(PLACES)} ${random.pick(TAILS)}.`;
}

/** A bio of 4 to 6 generated sentences (about 40 to 60 words). */
function generatedBio(random: Random): string {
  return Array.from({ length: random.int(4, 6) }, () => sentence(random)).join(' ');
}

const FIELDS = ['bio_instagram', 'bio_facebook', 'bio_twitter', 'about', 'headline'];

function cleanCorpus(personas: number, fields: string[], seed: string): TextItem[] {
  const random = createRandom('quality-text-test', seed);
  const items: TextItem[] = [];
  for (let personaId = 1; personaId <= personas; personaId++) {
    for (const field of fields) items.push({ personaId, field, text: generatedBio(random) });
  }
  return items;
}

// Realistic bios, written by hand, each of a different person.
const BIOS = [
  'Pediatric nurse by day, amateur astronomer by night. I grew up on a farm in Iowa and still wake before sunrise. Ask me about the Perseids, my sourdough starter named Gerald, or the best trails within an hour of Des Moines.',
  'Former line cook turned high school chemistry teacher. I believe every kitchen is a lab and every lab should smell better. Weekends are for farmers markets, fermenting hot sauce, and losing at chess to my twelve year old nephew.',
  'Architect in Lisbon who spends too much time photographing tiled facades. Originally from Porto, so I will defend francesinha to anyone. Currently learning the cello, badly, and planning a bike trip along the Douro next spring.',
  'Software engineer at a small climate startup. I write Rust, run half marathons slowly, and volunteer at the animal shelter on Thursdays. Two rescue cats, one very patient husband, and far too many houseplants for a studio apartment.',
  'Retired firefighter, grandfather of five, and proud owner of a 1968 Ford pickup that mostly runs. I coach little league in the spring, fish the lakes up north all summer, and tell the same three stories at every barbecue.',
  'Graphic designer and zine maker based in Glasgow. My work is loud, colourful and usually about public transport. When I am not at the risograph I am swimming in the cold sea, drinking strong tea, or arguing about typefaces.',
  'Veterinarian specialising in horses, which means long drives and muddy boots. I read crime novels in the truck between calls and keep a notebook of every pub I have visited in Yorkshire. Happiest with a dog at my feet.',
  'Music student in Vienna, mostly piano, sometimes organ when the cathedral lets me. I translate Polish poetry in my spare time and am slowly teaching myself to bake the poppy seed cake my grandmother made every Christmas.',
  'Data analyst who quit spreadsheets to open a bicycle repair shop in Utrecht. I fix about thirty bikes a week, ride a rusty cargo bike to the coast on Sundays, and host a repair cafe for neighbours every first Saturday.',
  'Marine biologist studying coral bleaching off the coast of Queensland. I spend half the year on research boats and the other half writing grant applications. Scuba instructor, terrible surfer, and a firm believer in afternoon naps.',
  'Stand-up comedian and part-time librarian in Toronto. My act is mostly about my immigrant parents and the Canadian winter. I run a free writing workshop for teenagers and collect vintage board games from thrift stores.',
  'Nurse practitioner in rural Kenya who loves long-distance running and gospel choirs. I started a mobile clinic with two friends and a borrowed Land Cruiser. On rest days I cook pilau for the whole street and read history books.',
];

function words(text: string): number {
  return normalizeWords(text).length;
}

const refs = (pairs: NearDuplicatePair[]) => pairs.map((p) => `${p.a.personaId}/${p.a.field}~${p.b.personaId}/${p.b.field}`);

describe('normalizeWords and wordShingles', () => {
  it('folds case, Unicode compatibility forms, punctuation and emoji away', () => {
    expect(normalizeWords('  Ｃｏｆｆｅｅ ﬁend!!! 🚀☕  Don’t   STOP—ever... ')).toEqual(['coffee', 'fiend', 'dont', 'stop', 'ever']);
    expect(normalizeWords('Café São Paulo 東京 2024')).toEqual(['café', 'são', 'paulo', '東京', '2024']);
    expect(normalizeWords('🎉🎉 ... !!')).toEqual([]);
    expect(normalizeWords('🏛️ 1️⃣ top 👍🏽 नमस्ते')).toEqual(['1', 'top', 'नमस्ते']); // presentation selectors, keycaps, skin tones go; Devanagari keeps its marks
  });

  it('makes word shingles, and one shingle of what a short text has', () => {
    expect([...wordShingles('A b c d', 3)]).toEqual(['a b c', 'b c d']);
    expect([...wordShingles('Coffee lover!', 3)]).toEqual(['coffee lover']);
    expect(wordShingles('🙂', 3).size).toBe(0);
    expect([...wordShingles('one two one two', 2)]).toEqual(['one two', 'two one']);
  });

  it('bands 128 values so a pair at the threshold is proposed', () => {
    expect(bandRows(0.7)).toBe(4); // 32 bands of 4 rows
    expect(bandRows(0.9)).toBeGreaterThan(bandRows(0.7));
    expect(bandRows(0.5)).toBeLessThan(bandRows(0.7));
  });
});

describe('nearDuplicateTexts', () => {
  const base = BIOS.map((text) => ({ text, words: words(text) }));

  it('uses realistic bios of 35 to 60 words', () => {
    for (const bio of base) expect(bio.words).toBeGreaterThanOrEqual(35);
    for (const bio of base) expect(bio.words).toBeLessThanOrEqual(60);
  });

  // Planted near-duplicates of the hand-written bios, each under another persona id.
  const planted: Array<{ name: string; of: number; text: string }> = [
    {
      name: 'one word changed',
      of: 0,
      text: BIOS[0]!.replace('Iowa', 'Nebraska'),
    },
    {
      name: 'two sentences reordered',
      of: 1,
      text: 'Weekends are for farmers markets, fermenting hot sauce, and losing at chess to my twelve year old nephew. Former line cook turned high school chemistry teacher. I believe every kitchen is a lab and every lab should smell better.',
    },
    {
      name: 'punctuation, case and emoji',
      of: 2,
      text: '🏛️ ARCHITECT in Lisbon — who spends too much time photographing tiled facades!! originally from Porto; so I will defend FRANCESINHA to anyone 🥪. Currently learning the cello (badly) and planning a bike trip along the Douro next spring 🚲✨',
    },
    {
      name: 'one sentence added',
      of: 3,
      text: `${BIOS[3]} I also make very average pottery on Sunday mornings.`,
    },
    {
      name: 'a word changed and punctuation dropped',
      of: 4,
      text: BIOS[4]!.replace('five', 'six').replaceAll(',', '').replaceAll('.', ''),
    },
  ];

  function corpus(): TextItem[] {
    const items = cleanCorpus(300, ['bio_instagram', 'bio_facebook'], 'clean');
    // The hand-written bios as the 'about' of personas 1..12, the planted copies as the 'about' of personas 301..305.
    BIOS.forEach((text, i) => {
      items.push({ personaId: i + 1, field: 'about', text });
    });
    planted.forEach(({ text }, i) => {
      items.push({ personaId: 301 + i, field: 'about', text });
    });
    return items;
  }

  it('finds each planted near-duplicate above the threshold, with the right personas, and nothing else', () => {
    const pairs = nearDuplicateTexts(corpus(), { seed: 'dataset-1' });
    expect(pairs).toHaveLength(planted.length);
    for (const [i, { name, of }] of planted.entries()) {
      const pair = pairs.find((p) => p.b.personaId === 301 + i);
      expect(pair, name).toBeDefined();
      expect(pair!.a, name).toEqual({ personaId: of + 1, field: 'about' });
      expect(pair!.b, name).toEqual({ personaId: 301 + i, field: 'about' });
      expect(pair!.similarity, name).toBeGreaterThanOrEqual(0.7);
      expect(pair!.similarity, name).toBeLessThanOrEqual(1);
    }
    expect(pairs.find((p) => p.b.personaId === 303)!.similarity).toBe(1); // only punctuation, case and emoji differ
    expect(pairs.map((p) => p.similarity)).toEqual([...pairs.map((p) => p.similarity)].sort((x, y) => y - x));
  });

  it('gives no pairs on a clean generated set of 300 personas', () => {
    const items = cleanCorpus(300, FIELDS, 'clean-only');
    expect(nearDuplicateTexts(items, { seed: 'x' })).toEqual([]);
    // and nothing in it comes near: the highest exact similarity of any cross-persona pair found at a low threshold stays far below 0.7
    const loose = nearDuplicateTexts(items, { seed: 'x', threshold: 0.3 });
    expect(Math.max(0, ...loose.map((p) => p.similarity))).toBeLessThan(0.5);
  });

  it('gives no pairs on realistic distinct bios, in several fields', () => {
    const items: TextItem[] = BIOS.flatMap((text, i) => [
      { personaId: i + 1, field: 'about', text },
      { personaId: i + 1, field: 'bio_instagram', text: text.split('. ')[0]! },
    ]);
    expect(nearDuplicateTexts(items)).toEqual([]);
    expect(nearDuplicateTexts(items, { threshold: 0.2 })).toEqual([]);
  });

  it('never pairs one persona’s own fields', () => {
    const items: TextItem[] = [
      { personaId: 7, field: 'bio_facebook', text: BIOS[5]! },
      { personaId: 7, field: 'bio_instagram', text: `${BIOS[5]!} 🌊` },
      { personaId: 8, field: 'about', text: BIOS[6]! },
    ];
    expect(nearDuplicateTexts(items)).toEqual([]);
    // another persona with the same bio pairs with both of persona 7's fields, sorted by id then field
    items.push({ personaId: 3, field: 'about', text: BIOS[5]! });
    expect(nearDuplicateTexts(items)).toEqual([
      { a: { personaId: 3, field: 'about' }, b: { personaId: 7, field: 'bio_facebook' }, similarity: 1 },
      { a: { personaId: 3, field: 'about' }, b: { personaId: 7, field: 'bio_instagram' }, similarity: 1 },
    ]);
  });

  it('compares short texts on what they have, and skips empty ones', () => {
    const items: TextItem[] = [
      { personaId: 1, field: 'headline', text: 'Coffee lover' },
      { personaId: 2, field: 'headline', text: 'COFFEE lover!! ☕' },
      { personaId: 3, field: 'headline', text: '🙂' },
      { personaId: 4, field: 'headline', text: '' },
      { personaId: 5, field: 'headline', text: '✨✨' },
      { personaId: 6, field: 'headline', text: 'Tea lover' },
    ];
    expect(nearDuplicateTexts(items)).toEqual([
      { a: { personaId: 1, field: 'headline' }, b: { personaId: 2, field: 'headline' }, similarity: 1 },
    ]);
  });

  it('finds exactly the pairs an all-pairs exact Jaccard finds, at several thresholds and shingle sizes', () => {
    // Texts mutated from a few bases at random rates, so similarities spread across 0.3..1
    const random = createRandom('quality-text-test', 'spread');
    const items: TextItem[] = [];
    let personaId = 1;
    for (let b = 0; b < 8; b++) {
      const baseWords = normalizeWords(generatedBio(random) + ' ' + generatedBio(random));
      for (let copy = 0; copy < 12; copy++) {
        const rate = random.next() * 0.25;
        const mutated = baseWords.map((word) => (random.chance(rate) ? random.pick(['zest', 'quux', 'plover', 'amber', 'tusk']) : word));
        items.push({ personaId: personaId++, field: 'about', text: mutated.join(' ') });
      }
    }
    for (const [threshold, shingle] of [
      [0.7, 3],
      [0.5, 3],
      [0.85, 2],
      [0.6, 5],
    ] as const) {
      const sets = items.map((item) => wordShingles(item.text, shingle));
      const expected: string[] = [];
      for (let i = 0; i < items.length; i++) {
        for (let j = i + 1; j < items.length; j++) {
          const x = sets[i]!;
          const y = sets[j]!;
          const shared = [...x].filter((s) => y.has(s)).length;
          if (shared / (x.size + y.size - shared) >= threshold) expected.push(`${items[i]!.personaId}/about~${items[j]!.personaId}/about`);
        }
      }
      expect(expected.length, `threshold ${threshold}`).toBeGreaterThan(10);
      const found = nearDuplicateTexts(items, { threshold, shingle, seed: 'recall' });
      expect(refs(found).sort(), `threshold ${threshold}, shingle ${shingle}`).toEqual(expected.sort());
    }
  });

  it('is deterministic: the same input and seed give the same output, whatever the input order', () => {
    const items = corpus();
    const first = nearDuplicateTexts(items, { seed: 'dataset-1' });
    expect(nearDuplicateTexts(items, { seed: 'dataset-1' })).toEqual(first);
    expect(nearDuplicateTexts(createRandom('shuffle').shuffle(items), { seed: 'dataset-1' })).toEqual(first);
    // the seed picks the hash functions; the similarities are exact, so clear pairs do not depend on it
    expect(nearDuplicateTexts(items, { seed: 'another' })).toEqual(first);
  });

  it('refuses a threshold or shingle size outside its range', () => {
    expect(() => nearDuplicateTexts([], { threshold: 0 })).toThrow(RangeError);
    expect(() => nearDuplicateTexts([], { threshold: 1.5 })).toThrow(RangeError);
    expect(() => nearDuplicateTexts([], { shingle: 0 })).toThrow(RangeError);
    expect(() => nearDuplicateTexts([], { shingle: 2.5 })).toThrow(RangeError);
    expect(nearDuplicateTexts([])).toEqual([]);
  });

  it('runs on 300 personas x 5 texts and returns a sane result', () => {
    const items = cleanCorpus(300, FIELDS, 'scale');
    // ten personas copy another's text with a word changed
    const random = createRandom('quality-text-test', 'scale-plant');
    const plantedRefs: string[] = [];
    for (let k = 0; k < 10; k++) {
      const source = items[k * 97]!;
      const target = items.find((item) => item.personaId === source.personaId + 100 && item.field === 'about')!;
      target.text = source.text.replace(/\b\w+\b/, random.pick(['Honestly', 'Basically', 'Truly']));
      const [a, b] = [source, target];
      plantedRefs.push(`${a.personaId}/${a.field}~${b.personaId}/${b.field}`);
    }
    expect(items).toHaveLength(1500);
    const pairs = nearDuplicateTexts(items, { seed: 'scale' });
    expect(refs(pairs).sort()).toEqual(plantedRefs.sort());
    for (const pair of pairs) {
      expect(pair.a.personaId).toBeLessThan(pair.b.personaId);
      expect(pair.similarity).toBeGreaterThanOrEqual(0.7);
      expect(pair.similarity).toBeLessThanOrEqual(1);
      expect(Math.round(pair.similarity * 1000) / 1000).toBe(pair.similarity);
    }
  });
});

describe('duplicateNames', () => {
  it('groups names that differ only in case, accents and spaces', () => {
    expect(
      duplicateNames([
        { personaId: 4, firstName: 'jose ', lastName: ' SILVA ' },
        { personaId: 2, firstName: 'José', lastName: 'Silva' },
        { personaId: 9, firstName: 'Maria', lastName: 'Silva' },
        { personaId: 5, firstName: 'JOSÉ', lastName: 'Silvas' },
        { personaId: 7, firstName: 'Zoë', lastName: 'Müller' },
        { personaId: 3, firstName: 'Zoe', lastName: 'Muller' },
        { personaId: 8, firstName: 'Zoe\u0308', lastName: 'MU\u0308LLER' }, // decomposed accents
        { personaId: 1, firstName: 'Ana', lastName: 'Lima' },
      ]),
    ).toEqual([
      { fullName: 'Zoe Muller', personaIds: [3, 7, 8] },
      { fullName: 'José Silva', personaIds: [2, 4] },
    ]);
  });

  it('gives nothing for distinct names, one persona listed twice, or blank names', () => {
    expect(
      duplicateNames([
        { personaId: 1, firstName: 'José', lastName: 'Silva' },
        { personaId: 2, firstName: 'Josef', lastName: 'Silva' },
        { personaId: 3, firstName: 'Silva', lastName: 'José' },
        { personaId: 4, firstName: 'Ana', lastName: 'Lima' },
        { personaId: 4, firstName: 'ana', lastName: 'lima' },
        { personaId: 5, firstName: ' ', lastName: '' },
        { personaId: 6, firstName: '', lastName: '' },
      ]),
    ).toEqual([]);
  });
});
