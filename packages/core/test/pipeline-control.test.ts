import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { definePlugin, NotFoundError } from '../src/index.js';
import { makeBorderedPng } from '../src/testing.js';
import { errors } from './support/fakes.js';
import { type Harness, REQUEST, startHarness, waitForStatus, waitUntil } from './support/harness.js';

describe('pipeline: cancel, retry, delete', () => {
  let h: Harness;
  let failGrids = true;
  beforeAll(async () => {
    h = await startHarness({
      fakes: {
        personaLatencyMs: 20,
        gridLatencyMs: 400,
        // grids of personas 0-4 of batch 0 fail until `failGrids` is turned off
        failGrid: (seed) => (failGrids && /:\d+:1$/.test(seed) ? errors.auth() : null),
      },
    });
  });
  afterAll(() => h.close());

  it('cancels a running task: in-flight calls are aborted and no new work starts', async () => {
    const task = await h.gen.tasks.submit({ ...REQUEST, count: 20, imagesPerPersona: 8 });
    await waitForStatus(h.gen, task.id, ['generating-images']);
    await waitUntil(() => h.fakes.calls.grid > 0, 10_000, 'a grid call');
    const cancelled = await h.gen.tasks.cancel(task.id);
    expect(cancelled.status).toBe('cancelled');
    // the signals handed to the grid calls in flight fire
    await waitUntil(() => h.fakes.calls.inFlightImage === 0, 5_000, 'in-flight image calls to stop');
    const gridsAtCancel = h.fakes.calls.grid;
    // every job the task still had in the queue is taken and ended: one that started work would have called by then
    const liveJobs = async () =>
      (
        await h.gen.orm.em
          .fork()
          .execute(`select count(*)::int as n from pgboss.job where data->>'taskId' = ? and state in ('created', 'retry', 'active')`, [
            task.id,
          ])
      )[0]?.n as number;
    await waitUntil(async () => (await liveJobs()) === 0, 10_000, 'the queued jobs of the cancelled task to end');
    // and a reconcile pass (they run every 300 ms here) sends it no new work
    await h.gen.pipeline.reconcile();
    expect(await liveJobs()).toBe(0);
    expect(h.fakes.calls.grid).toBe(gridsAtCancel);
    expect((await h.gen.tasks.get(task.id)).status).toBe('cancelled');
    await expect(h.gen.tasks.cancel(task.id)).rejects.toThrow(/cannot go from cancelled to cancelled/);
  });

  it('ends partial when some images fail; a retry makes only what is missing; a complete task cannot be retried', async () => {
    h.fakes.calls.grid = 0;
    const task = await h.gen.tasks.submit({ ...REQUEST, count: 10, imagesPerPersona: 8 });
    const done = await waitForStatus(h.gen, task.id, ['completed', 'partial', 'failed']);
    expect(done.status).toBe('partial');
    expect(done.progress.imagesStored).toBe(10 * 8 - 10 * 4); // grid 2 of every persona failed (auth: not retried)
    expect(done.errorLog.filter((e) => e.stage === 'images')).toHaveLength(10);
    expect(done.errorLog.at(-1)?.message).toContain('10 of 10 personas, 40 of 80 images');
    expect(h.fakes.calls.grid).toBe(20);

    failGrids = false;
    const baseCalls = h.fakes.calls.base;
    await h.gen.tasks.retry(task.id);
    const retried = await waitForStatus(h.gen, task.id, ['completed', 'partial', 'failed']);
    expect(retried.status).toBe('completed');
    expect(retried.progress.imagesStored).toBe(80);
    expect(h.fakes.calls.grid).toBe(30); // only the ten missing grids
    expect(h.fakes.calls.base).toBe(baseCalls);

    await expect(h.gen.tasks.retry(task.id)).rejects.toThrow(/nothing is missing/);
  });

  it('retries a cancelled task without redoing finished personas', async () => {
    failGrids = false;
    const task = await h.gen.tasks.submit({ ...REQUEST, count: 10, imagesPerPersona: 4 });
    await waitUntil(async () => (await h.gen.tasks.get(task.id)).progress.imagesStored >= 8, 20_000, 'two personas done');
    await h.gen.tasks.cancel(task.id);
    const baseCalls = h.fakes.calls.base;
    const personaCalls = h.fakes.calls.persona;
    const stored = (await h.gen.tasks.get(task.id)).progress.imagesStored;
    const retried = await h.gen.tasks.retry(task.id);
    expect(['pending', 'generating-data', 'generating-images']).toContain(retried.status);
    const done = await waitForStatus(h.gen, task.id, ['completed', 'failed']);
    expect(done.status).toBe('completed');
    expect(done.progress).toMatchObject({ personasStored: 10, imagesStored: 40 });
    expect(h.fakes.calls.persona).toBe(personaCalls); // the batch was done: not asked again
    expect(h.fakes.calls.base - baseCalls).toBeLessThanOrEqual(10 - stored / 4);
    expect(done.errorLog.map((e) => e.message)).toEqual(['Cancelled.', 'Retried.']);
  });

  it('deletes a task with its rows and stored objects', async () => {
    const task = await h.gen.tasks.submit({ ...REQUEST, count: 10, imagesPerPersona: 4 });
    await waitForStatus(h.gen, task.id, ['completed']);
    const folder = join(h.storageRoot, 'tasks', task.id);
    expect(readdirSync(folder, { recursive: true }).length).toBeGreaterThan(0);
    // An object no row references and a dead write's temp file go too: everything under the prefix.
    writeFileSync(join(folder, 'orphan.png'), 'x');
    const personaFolder = readdirSync(folder)[0] as string;
    writeFileSync(join(folder, personaFolder, '.avatargen-tmp-deadbeef'), 'half');
    await h.gen.tasks.delete(task.id);
    expect(existsSync(folder)).toBe(false);
    await expect(h.gen.tasks.get(task.id)).rejects.toBeInstanceOf(NotFoundError);
    const [row] = await h.gen.orm.em.fork().execute('select count(*)::int as n from personas where task_id = ?', [task.id]);
    expect(row?.n).toBe(0);
  });
});

describe('pipeline: limits, snapshots and faces', () => {
  let h: Harness;
  const blocked = new Set(['faces/female/a.png', 'faces/female/b.png']);
  const faceOrder = ['faces/female/a.png', 'faces/female/b.png', 'faces/female/c.png'];
  let faceIndex = 0;
  beforeAll(async () => {
    h = await startHarness({
      fakes: {
        personaLatencyMs: 100,
        failBase: (_seed, face) => (face && blocked.has(face) ? errors.moderation() : null),
      },
      plugins: [
        definePlugin({
          name: 'faces',
          register(context) {
            context.provide('faceSource', {
              async randomFace() {
                const key = faceOrder[faceIndex++ % faceOrder.length] as string;
                return { key, data: makeBorderedPng(), contentType: 'image/png' };
              },
            });
          },
        }),
      ],
    });
  });
  afterAll(() => h.close());

  it('runs at most max_concurrent_tasks tasks; the rest wait in pending', async () => {
    await h.gen.settings.update({ max_concurrent_tasks: 1 });
    const a = await h.gen.tasks.submit(REQUEST);
    const b = await h.gen.tasks.submit(REQUEST);
    expect((await h.gen.tasks.get(b.id)).status).toBe('pending');
    let sawBothActive = false;
    const watch = setInterval(async () => {
      const [ta, tb] = await Promise.all([h.gen.tasks.get(a.id), h.gen.tasks.get(b.id)]);
      const active = (s: string) => s.startsWith('generating') || s === 'data-generated';
      if (active(ta.status) && active(tb.status)) sawBothActive = true;
    }, 20);
    try {
      await waitForStatus(h.gen, a.id, ['completed']);
      await waitForStatus(h.gen, b.id, ['completed']);
    } finally {
      clearInterval(watch);
    }
    expect(sawBothActive).toBe(false);
    const [ta, tb] = await Promise.all([h.gen.tasks.get(a.id), h.gen.tasks.get(b.id)]);
    expect((tb.startedAt as Date).getTime()).toBeGreaterThanOrEqual((ta.finishedAt as Date).getTime() - 5);
    await h.gen.settings.update({ max_concurrent_tasks: 2 });
  });

  it('snapshots the settings at submission and uses reference faces, flagging blocked ones', async () => {
    await h.gen.settings.update({ randomize_face_base: true, randomize_image_style: false });
    const task = await h.gen.tasks.submit({ ...REQUEST, count: 10 });
    await h.gen.settings.update({ randomize_face_base: false, randomize_image_style: true });
    expect(task.settings.randomize_face_base).toBe(true);
    const done = await waitForStatus(h.gen, task.id, ['completed', 'failed']);
    expect(done.status).toBe('completed');
    expect(done.settings.randomize_image_style).toBe(false);
    const page = await h.gen.personas.list(task.id, { perPage: 10 });
    // styles were off for this task: no style parameters stored
    expect(page.personas.every((p) => p.images.every((i) => i.style === null))).toBe(true);
    const flags = await h.gen.orm.em.fork().execute('select face_key, kind from image_flags where task_id = ?', [task.id]);
    expect(flags.length).toBeGreaterThan(0);
    expect(flags.every((f) => blocked.has(f.face_key) && f.kind === 'moderation-block')).toBe(true);
    const [faces] = await h.gen.orm.em
      .fork()
      .execute(`select count(*) filter (where base_face_key is not null)::int as n from personas where task_id = ?`, [task.id]);
    expect(faces?.n).toBeGreaterThan(0);
  });
});
