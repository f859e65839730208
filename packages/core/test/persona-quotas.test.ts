import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, type PersonaData, type PersonaQuota, type PersonaView } from '../src/index.js';
import { type Harness, REQUEST, startHarness } from './support/harness.js';

/**
 * Demographic targets through the pipeline (issue 19): each batch carries its personas' quotas,
 * core checks every persona against them, asks again for one that misses (target_retries rounds)
 * and then keeps it, counting it off target. The stand-in provider here is a model that ignores
 * the quotas, or heeds them only when asked again. Also: regenerating one persona or one picture of
 * an ended task replaces it without touching the others.
 */
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

type Request = { seed: string; quotas?: readonly PersonaQuota[] };

/** A provider that gives each persona what its quota asks (a model that listens). */
const heed = (personas: PersonaData[], quotas: readonly PersonaQuota[] | undefined) =>
  personas.map((p, i) => {
    const q = quotas?.[i] ?? {};
    return { ...p, gender: q.gender ?? p.gender, age: q.age ? q.age.min + (i % (q.age.max - q.age.min + 1)) : p.age };
  });

const all = async (taskId: string): Promise<PersonaView[]> => (await h?.gen.personas.list(taskId, { perPage: 100 }))?.personas ?? [];

describe('demographic quotas in the pipeline', () => {
  it('asks again for a persona that misses its quota, at most twice, then keeps it and counts it', async () => {
    const asked: Request[] = [];
    h = await startHarness({
      fakes: {
        shapeBatch: (_seed, personas, request) => {
          asked.push(request as Request);
          return personas; // ages 20-29, whatever is asked
        },
      },
    });
    const task = await h.gen.tasks.submit({ ...REQUEST, targets: { ages: '60-69' } });
    const done = await h.gen.tasks.waitUntilEnded(task.id, { timeoutMs: 60_000 });
    // Nothing is missing, so the task completes; the report says how far it is from the targets.
    expect(done.status).toBe('completed');
    expect(done.targets).toEqual({ ages: [{ min: 60, max: 69, share: 1 }] });
    expect(asked).toHaveLength(3); // the first answer and two asks again
    for (const request of asked) expect(request.quotas).toEqual(Array.from({ length: 10 }, () => ({ age: { min: 60, max: 69 } })));
    expect(new Set(asked.map((r) => r.seed)).size).toBe(3);
    expect(await all(task.id)).toHaveLength(10);
    const report = await h.gen.quality.report(task.id);
    expect(report.offTargetPersonas).toBe(30);
    expect(report.targets).toEqual({
      personas: 10,
      dimensions: [{ dimension: 'ages', rows: [{ label: '60-69', requested: 10, achieved: 0 }], other: 10 }],
    });
    // the report kept when the task ended is the same one
    expect((await h.gen.quality.stored(task.id))?.targets).toEqual(report.targets);
  });

  it('keeps a persona that heeds its quota when asked again, and reaches the targets exactly', async () => {
    const seeds: string[] = [];
    h = await startHarness({
      fakes: {
        shapeBatch: (seed, personas, request) => {
          seeds.push(seed);
          // the first answer ignores the quotas; asked again, it listens
          return seed.includes(':rest') ? heed(personas, (request as Request).quotas) : personas.map((p) => ({ ...p, age: 90 }));
        },
      },
    });
    const task = await h.gen.tasks.submit({ ...REQUEST, count: 20, targets: { genders: 'f 15, m 5', ages: '40-49 1, 50-59 1' } });
    const done = await h.gen.tasks.waitUntilEnded(task.id, { timeoutMs: 60_000 });
    expect(done.status).toBe('completed');
    expect(seeds).toHaveLength(4); // two batches, each asked twice
    const report = await h.gen.quality.report(task.id);
    expect(report.offTargetPersonas).toBe(20);
    expect(report.targets?.dimensions).toEqual([
      {
        dimension: 'genders',
        rows: [
          { label: 'female', requested: 15, achieved: 15 },
          { label: 'male', requested: 5, achieved: 5 },
        ],
        other: 0,
      },
      {
        dimension: 'ages',
        rows: [
          { label: '40-49', requested: 10, achieved: 10 },
          { label: '50-59', requested: 10, achieved: 10 },
        ],
        other: 0,
      },
    ]);
  });

  it('splits the task quotas between batches, exactly, and keeps a miss at once with target_retries 0', async () => {
    const asked: Request[] = [];
    let listens = true;
    h = await startHarness({
      fakes: {
        shapeBatch: (_seed, personas, request) => {
          asked.push(request as Request);
          return listens ? heed(personas, (request as Request).quotas) : personas;
        },
      },
    });
    const task = await h.gen.tasks.submit({
      ...REQUEST,
      count: 25,
      targets: {
        genders: [
          { gender: 'f', share: 3 },
          { gender: 'm', share: 2 },
        ],
      },
    });
    await h.gen.tasks.waitUntilEnded(task.id, { timeoutMs: 60_000 });
    expect(asked.map((r) => r.quotas?.length).sort()).toEqual([10, 10, 5]);
    expect(asked.flatMap((r) => r.quotas ?? []).filter((q) => q.gender === 'f')).toHaveLength(15);
    expect((await h.gen.quality.report(task.id)).offTargetPersonas).toBe(0);

    await h.gen.settings.update({ target_retries: 0 });
    asked.length = 0;
    listens = false;
    const strict = await h.gen.tasks.submit({ ...REQUEST, targets: { ages: '70-75' } });
    await h.gen.tasks.waitUntilEnded(strict.id, { timeoutMs: 60_000 });
    expect(asked).toHaveLength(1);
    expect((await h.gen.quality.report(strict.id)).offTargetPersonas).toBe(10);
  });
});

describe('regenerate', () => {
  it('replaces one persona of an ended task, and one picture, touching nothing else', async () => {
    h = await startHarness();
    const task = await h.gen.tasks.submit(REQUEST);
    expect((await h.gen.tasks.waitUntilEnded(task.id, { timeoutMs: 60_000 })).status).toBe('completed');
    const before = await all(task.id);
    const [gone, kept] = before as [PersonaView, PersonaView];

    const keptBefore = await h.gen.quality.stored(task.id);
    expect(keptBefore?.flaggedPersonas).toEqual(expect.any(Array));
    await h.gen.tasks.regeneratePersona(task.id, gone.id);
    // reopened: the kept report describes rows that changed, so it is gone until the task ends again
    expect(await h.gen.quality.stored(task.id)).toBeNull();
    const again = await h.gen.tasks.waitUntilEnded(task.id, { timeoutMs: 60_000 });
    const keptAfter = await h.gen.quality.stored(task.id);
    expect(keptAfter?.generatedAt).not.toBe(keptBefore?.generatedAt);
    expect(again.status).toBe('completed');
    expect(again.errorLog.map((e) => e.message)).toContain(`Persona ${gone.firstName} ${gone.lastName} (#${gone.id}) regenerated.`);
    const after = await all(task.id);
    expect(after).toHaveLength(10);
    expect(after.map((p) => p.id)).not.toContain(gone.id);
    const unchanged = (list: PersonaView[]) =>
      list.filter((p) => p.id !== gone.id).map((p) => ({ id: p.id, name: p.firstName, keys: p.images.map((i) => i.key) }));
    expect(unchanged(after).filter((p) => before.some((b) => b.id === p.id))).toEqual(unchanged(before));
    const fresh = after.find((p) => !before.some((b) => b.id === p.id)) as PersonaView;
    expect(`${fresh.firstName} ${fresh.lastName}`).not.toBe(`${gone.firstName} ${gone.lastName}`);
    expect(fresh.images).toHaveLength(4);
    expect(existsSync(join(h.storageRoot, gone.images[0]?.key as string))).toBe(false);

    // one picture: a new shot under a new key; the persona's other pictures stay as they were
    const old = kept.images[2]?.key as string;
    await h.gen.tasks.regeneratePicture(task.id, kept.id, 2);
    expect((await h.gen.tasks.waitUntilEnded(task.id, { timeoutMs: 60_000 })).status).toBe('completed');
    const redone = (await all(task.id)).find((p) => p.id === kept.id) as PersonaView;
    expect(redone.images.map((i) => i.index)).toEqual([0, 1, 2, 3]);
    expect(redone.images[2]?.key).not.toBe(old);
    expect(redone.images[2]?.key).toMatch(/\/2-r\d+\.png$/);
    expect(redone.images.filter((i) => i.index !== 2).map((i) => i.key)).toEqual(
      kept.images.filter((i) => i.index !== 2).map((i) => i.key),
    );
    expect(existsSync(join(h.storageRoot, old))).toBe(false);
    expect(existsSync(join(h.storageRoot, redone.images[2]?.key as string))).toBe(true);
  });

  it('refuses a running task, a persona or picture not in the task, and another user', async () => {
    h = await startHarness({ fakes: { personaLatencyMs: 300 } });
    const alice = await h.gen.users.create({ email: 'alice@example.com', password: 'correct horse battery' });
    const task = await h.gen.tasks.submit(REQUEST, { userId: alice.id });
    await expect(h.gen.tasks.regeneratePersona(task.id, 1)).rejects.toBeInstanceOf(ConflictError);
    await h.gen.tasks.waitUntilEnded(task.id, { timeoutMs: 60_000 });
    const persona = (await all(task.id))[0] as PersonaView;
    await expect(h.gen.tasks.regeneratePersona(task.id, 999_999)).rejects.toBeInstanceOf(NotFoundError);
    await expect(h.gen.tasks.regeneratePicture(task.id, persona.id, 7)).rejects.toBeInstanceOf(NotFoundError);
    await expect(h.gen.tasks.regeneratePersona(task.id, persona.id, { userId: alice.id + 1 })).rejects.toBeInstanceOf(NotFoundError);
    // nothing was changed by the refusals
    expect((await h.gen.tasks.get(task.id)).status).toBe('completed');
    expect(await all(task.id)).toHaveLength(10);
  });
});
