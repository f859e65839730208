import { afterEach, describe, expect, it } from 'vitest';
import { createRandom, type PersonaData, personaMessages } from '../src/index.js';
import { type Harness, REQUEST, startHarness } from './support/harness.js';

/**
 * Diversity across batches: every batch request carries the task's names so far, and a persona
 * repeating a full name (or a first name, age and city) already in the task is rejected with the
 * reason and asked for again. Against a deterministic stand-in that gives the same few people to
 * every batch, the old pipeline stored `Ingrid Rossi` again and again.
 */
const FIRST = ['Ingrid', 'Tomás', 'Aiko', 'Kwame', 'Lena', 'Ravi', 'Chloé', 'Mateus', 'Yara', 'Omar', 'Sofia', 'Jonas'];
const LAST = ['Rossi', 'Okafor', 'Lindqvist', 'Haddad', 'Moreau', 'Tanaka', 'Silva', 'Novak', 'Kaur', 'Brennan'];

/** A stand-in that listens: people whose full names are not among `avoidNames` (nor repeated in the answer). */
function freshPeople(seed: string, personas: PersonaData[], avoidNames: readonly string[]): PersonaData[] {
  const avoid = new Set(avoidNames);
  const random = createRandom('names', seed);
  return personas.map((p) => {
    for (;;) {
      const firstName = random.pick(FIRST);
      const lastName = random.pick(LAST);
      const full = `${firstName} ${lastName}`;
      // a home of their own, so that only the full name can repeat (not a first name, age and city)
      const candidate = { ...p, firstName, lastName, currentCity: `${lastName}ville`, age: 20 + FIRST.indexOf(firstName) };
      if (!avoid.has(full)) {
        avoid.add(full);
        return candidate;
      }
    }
  });
}

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const names = async (taskId: string) =>
  (await h?.gen.personas.list(taskId, { perPage: 100 }))?.personas.map((p) => `${p.firstName} ${p.lastName}`) ?? [];

describe('persona diversity across batches', () => {
  it('rejects repeats from a provider that ignores the names it is given, and counts them', async () => {
    // Every batch: the same ten people (a deterministic server that ignores the seed and the names).
    h = await startHarness({
      fakes: {
        shapeBatch: (_seed, personas) =>
          (personas as PersonaData[]).map((p, i) => ({ ...p, firstName: FIRST[i % FIRST.length], lastName: LAST[i % LAST.length] })),
      },
    });
    const task = await h.gen.tasks.submit({ ...REQUEST, count: 30, imagesPerPersona: 4 });
    const done = await h.gen.tasks.waitUntilEnded(task.id, { timeoutMs: 60_000 });
    const stored = await names(task.id);
    expect(new Set(stored.map((n) => n.toLowerCase())).size).toBe(stored.length); // nobody twice
    expect(stored.length).toBe(10);
    expect(done.status).toBe('partial');
    expect(done.errorLog.map((e) => e.message).join('\n')).toMatch(/repeats the full name of a persona already in the dataset/);
    const report = await h.gen.quality.report(task.id);
    expect(report.names.duplicates).toEqual([]);
    expect(report.rejectedPersonas).toBeGreaterThanOrEqual(20);
  });

  it('tells the provider the names taken, and a provider that listens fills the task with different people', async () => {
    const seen: number[] = [];
    h = await startHarness({
      fakes: {
        shapeBatch: (seed, personas, request) => {
          seen.push(request.avoidNames?.length ?? 0);
          return freshPeople(seed, personas as PersonaData[], request.avoidNames ?? []);
        },
      },
      config: { MULTITHREAD_FLOWISE: 1 }, // one batch after another, so each sees the last one's names
    });
    const task = await h.gen.tasks.submit({ ...REQUEST, count: 30, imagesPerPersona: 4 });
    const done = await h.gen.tasks.waitUntilEnded(task.id, { timeoutMs: 60_000 });
    expect(done.status).toBe('completed');
    const stored = await names(task.id);
    expect(new Set(stored).size).toBe(30);
    expect(Math.max(...seen)).toBeGreaterThanOrEqual(20); // the third batch was told twenty names
  });

  it('batches that all start with the same people, side by side or one after another: the task completes with different ones', async () => {
    // Each batch's first answer is the same ten people, whatever it is told; later answers listen.
    // Batches that overlap lose them at the end (and stay open for the reconcile); a batch that
    // starts after one was stored has them rejected at once and asks again.
    const calls = new Map<string, number>();
    h = await startHarness({
      fakes: {
        personaLatencyMs: 100,
        shapeBatch: (seed, personas, request) => {
          const batch = seed.split(':rest')[0] as string;
          const call = (calls.get(batch) ?? 0) + 1;
          calls.set(batch, call);
          if (call > 1) return freshPeople(seed, personas as PersonaData[], request.avoidNames ?? []);
          return (personas as PersonaData[]).map((p, i) => ({ ...p, firstName: FIRST[i % FIRST.length], lastName: LAST[i % LAST.length] }));
        },
      },
      config: { MULTITHREAD_FLOWISE: 3 },
    });
    const task = await h.gen.tasks.submit({ ...REQUEST, count: 30, imagesPerPersona: 4 });
    const done = await h.gen.tasks.waitUntilEnded(task.id, { timeoutMs: 60_000 });
    expect(done.status).toBe('completed');
    const stored = await names(task.id);
    expect(new Set(stored.map((n) => n.toLowerCase())).size).toBe(30);
    expect((await h.gen.quality.report(task.id)).rejectedPersonas).toBeGreaterThanOrEqual(20); // two batches' first answers
  });

  it('rejects a first name, age and city already in the task, even under another last name', async () => {
    h = await startHarness({
      fakes: {
        shapeBatch: (seed, personas) =>
          (personas as PersonaData[]).map((p, i) => ({
            ...p,
            firstName: 'Ingrid',
            lastName: `${LAST[i % LAST.length]}${seed.slice(-3).replace(/\W/g, '')}`,
            age: 34,
            currentCity: 'Lisbon',
          })),
      },
    });
    const task = await h.gen.tasks.submit({ ...REQUEST, count: 10, imagesPerPersona: 4 });
    const done = await h.gen.tasks.waitUntilEnded(task.id, { timeoutMs: 60_000 });
    expect(await names(task.id)).toHaveLength(1);
    expect(done.errorLog.map((e) => e.message).join('\n')).toMatch(/repeats the first name, age and city/);
  });

  it('puts the names taken into the chat prompt', () => {
    const [, user] = personaMessages({
      count: 5,
      description: 'Nurses in Ohio',
      language: { code: 'en', name: 'English' },
      bioInstructions: { facebook: '', instagram: '', x: '', tiktok: '' },
      avoidNames: ['Ingrid Rossi', 'Kwame Okafor'],
    });
    expect(user?.content).toContain('use none of them: Ingrid Rossi; Kwame Okafor.');
    const [, none] = personaMessages({
      count: 5,
      description: 'x',
      language: { code: 'en', name: 'English' },
      bioInstructions: { facebook: '', instagram: '', x: '', tiktok: '' },
    });
    expect(none?.content).not.toContain('use none of them');
  });
});
