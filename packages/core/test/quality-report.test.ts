import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRandom, definePlugin, NotFoundError, type PersonaData } from '../src/index.js';
import { type Harness, REQUEST, startHarness } from './support/harness.js';

/**
 * The quality report on a task made by the real pipeline: the persona provider's stand-in gives
 * every persona its own bios, except two planted near-duplicates and one shared full name; the
 * image processor is decorated with a perceptual hash of its own (sha256 of the bytes, so the
 * stand-in's identical pictures are exact duplicates everywhere), as a third-party processor would.
 */
const WORDS = [
  'harbour',
  'violin',
  'orchard',
  'midnight',
  'granite',
  'festival',
  'lantern',
  'compass',
  'meadow',
  'engine',
  'quartz',
  'saffron',
  'tundra',
  'ballad',
  'copper',
  'glacier',
  'pottery',
  'riverbank',
  'telescope',
  'waltz',
  'cathedral',
  'mosaic',
  'bicycle',
  'thunder',
  'pepper',
  'canyon',
  'library',
  'marble',
  'sailboat',
  'cinnamon',
];

function distinctBio(seed: string): string {
  const random = createRandom('bio', seed);
  return Array.from({ length: 24 }, () => random.pick(WORDS)).join(' ');
}

let h: Harness;
let taskId: string;

beforeAll(async () => {
  h = await startHarness({
    fakes: {
      shapeBatch: (seed, personas) =>
        (personas as PersonaData[]).map((p, i) => {
          const own = distinctBio(`${seed}:${i}`);
          const persona: PersonaData = {
            ...p,
            bios: { facebook: own, instagram: `${own} insta`, x: `${own} x`, tiktok: `${own} tok` },
            about: distinctBio(`${seed}:${i}:about`),
          };
          if (seed.endsWith(':0') && i === 3) {
            // the bio of persona 1 of this batch, one word changed
            const copied = distinctBio(`${seed}:1`).replace(/^\S+/, 'changed');
            persona.bios = { ...persona.bios, facebook: copied };
          }
          if (seed.endsWith(':0') && i === 5) {
            persona.firstName = personas[2]?.firstName.toUpperCase() ?? persona.firstName;
            persona.lastName = personas[2]?.lastName ?? persona.lastName;
          }
          return persona;
        }),
    },
    plugins: [
      definePlugin({
        name: 'hashing-processor',
        register(context) {
          context.decorate('imageProcessor', (inner) => ({
            ...inner,
            async perceptualHash(image: Uint8Array) {
              return createHash('sha256').update(image).digest('hex').slice(0, 16);
            },
          }));
        },
      }),
    ],
  });
  const task = await h.gen.tasks.submit({ ...REQUEST, count: 10, imagesPerPersona: 4 });
  taskId = task.id;
  expect((await h.gen.tasks.waitUntilEnded(taskId, { timeoutMs: 60_000 })).status).toBe('completed');
});
afterAll(async () => {
  await h.close();
});

describe('quality report', () => {
  it('finds the planted near-duplicate bio and a shared name, and no other pair of personas', async () => {
    const report = await h.gen.quality.report(taskId);
    const personas = (await h.gen.personas.list(taskId, { perPage: 100 })).personas;
    const byIndex = (name: string) => personas.find((p) => p.firstName.endsWith(name))?.id;
    expect(report.texts.checked).toBe(50);
    // The copy pairs with persona 1's Facebook bio, and with its other bios (the same words and one more).
    const pairs = report.texts.nearDuplicates;
    expect(pairs.length, JSON.stringify(pairs)).toBeGreaterThanOrEqual(1);
    for (const pair of pairs) {
      expect([pair.a.personaId, pair.b.personaId].sort()).toEqual([byIndex('x1'), byIndex('x3')].sort());
      expect(pair.similarity).toBeGreaterThanOrEqual(0.7);
    }
    expect(pairs[0]).toMatchObject({ a: { field: 'bio_facebook' }, b: { field: 'bio_facebook' } });
    // The planted repeat of a full name was refused while the task ran (and asked for again)...
    expect(report.names.duplicates).toEqual([]);
    expect(report.rejectedPersonas).toBeGreaterThanOrEqual(1);
    // ...and a dataset made before that rule, with one name twice, has it reported.
    const [first, second] = personas;
    await h.gen.orm.em
      .fork()
      .execute('update personas set first_name = ?, last_name = ? where id = ?', [
        first?.firstName.toUpperCase(),
        first?.lastName,
        second?.id,
      ]);
    const again = await h.gen.quality.report(taskId);
    expect(again.names.duplicates).toEqual([{ fullName: `${first?.firstName} ${first?.lastName}`, personaIds: [first?.id, second?.id] }]);
  });

  it('compares every stored picture by its hash: the stand-in draws one picture, so all of them pair', async () => {
    const report = await h.gen.quality.report(taskId);
    expect(report.pictures).toMatchObject({ hashed: 10 * 4 + 10, unhashed: 0 });
    // The base differs from the shots (another stand-in image); the four shots of a persona are one picture.
    expect(report.pictures.withinPersona.length).toBeGreaterThanOrEqual(10 * 6);
    expect(report.pictures.acrossPersonas.length).toBeGreaterThan(0);
    expect(report.pictures.withinPersona.every((p) => p.a.personaId === p.b.personaId && p.distance === 0)).toBe(true);
    expect(report.flaggedPersonas).toHaveLength(10);
  });

  it('answers for the owner only, like every dataset read', async () => {
    await expect(h.gen.quality.report(taskId, { userId: 999_999 })).rejects.toBeInstanceOf(NotFoundError);
  });
});
