import { existsSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CancelledError, Doctor, type DoctorReport, definePlugin, type ImageProvider, type ObjectStorage } from '../src/index.js';
import { makeBorderedPng } from '../src/testing.js';
import { type Harness, REQUEST, startHarness, waitForStatus, waitUntil } from './support/harness.js';

/**
 * The image service in front of the test fakes: records each call's seed (`<task>:<persona>` for a
 * base, `<task>:<persona>:<grid>` for a grid) and, while `hold` is set, keeps the base-image calls
 * of every task but those in `free` waiting, so a task stays running with its objects half written.
 */
let harness: Harness | undefined;
const seeds = { base: [] as string[], grid: [] as string[] };
let hold: { promise: Promise<void>; release: () => void } | null = null;
const free = new Set<string>();
let held = 0;

const gatedImages = definePlugin({
  name: 'gated-images',
  register(context) {
    const inner = (): ImageProvider => (harness as Harness).fakes.imageProvider as unknown as ImageProvider;
    context.provide('imageProvider', {
      async baseImage(request) {
        const gate = hold;
        if (gate && !free.has(request.seed.split(':')[0] as string)) {
          held++;
          await new Promise<void>((resolve, reject) => {
            gate.promise.then(resolve);
            if (request.signal?.aborted) reject(new CancelledError());
            request.signal?.addEventListener('abort', () => reject(new CancelledError()), { once: true });
          }).finally(() => held--);
        }
        seeds.base.push(request.seed);
        return inner().baseImage(request);
      },
      async pictures(request) {
        seeds.grid.push(request.seed);
        return inner().pictures(request);
      },
    } satisfies ImageProvider);
  },
});

let h: Harness;

async function prefixOf(taskId: string): Promise<string> {
  const [row] = await h.gen.orm.em.fork().execute('select storage_prefix from generation_tasks where id = ?', [taskId]);
  return row?.storage_prefix as string;
}

const storage = () => h.gen.port('objectStorage');
const png = makeBorderedPng({ width: 8, height: 8, border: 1 });
const put = (key: string) => storage().put(key, png, { contentType: 'image/png' });
const clean = (report: DoctorReport) => ({ missing: report.missing.count, orphans: report.orphans.count, healthy: report.healthy });

beforeAll(async () => {
  // Enough image slots that a task held at its base images does not stop another one.
  h = await startHarness({ plugins: [gatedImages], config: { IMAGE_JOBS_PER_WORKER: 16, IMAGE_CONCURRENCY: 16 } });
  harness = h;
});
afterAll(async () => {
  hold?.release();
  await h?.close();
});

describe('doctor on the filesystem storage', () => {
  it('finds lost objects and orphans, skips running tasks, and its fix brings every image back', async () => {
    const a = await h.gen.tasks.submit(REQUEST);
    expect((await waitForStatus(h.gen, a.id, ['completed', 'partial', 'failed'])).status).toBe('completed');
    const b = await h.gen.tasks.submit(REQUEST);
    expect((await waitForStatus(h.gen, b.id, ['completed', 'partial', 'failed'])).status).toBe('completed');
    const prefixA = await prefixOf(a.id);
    const prefixB = await prefixOf(b.id);
    await h.gen.tasks.delete(b.id);

    // A finished site is healthy: nothing missing, nothing orphaned.
    const first = await h.gen.doctor.run();
    expect(clean(first)).toEqual({ missing: 0, orphans: 0, healthy: true });
    expect(first.objects).toBe(10 * 5); // 10 bases and 40 pictures of task A
    expect(first.rows).toBe(10 * 5);
    expect(first).toMatchObject({ tasks: 1, skipped: { tasks: 0, objects: 0 }, fixed: null });

    // Task C keeps running: its base images wait, and an object of its is written before its row.
    let release = () => {};
    hold = { promise: new Promise<void>((r) => (release = r)), release: () => release() };
    free.add(a.id);
    const c = await h.gen.tasks.submit(REQUEST);
    await waitUntil(() => held > 0, 30_000, 'task C to wait for its base images');
    const inFlight = `tasks/${await prefixOf(c.id)}/in-flight.png`;
    await put(inFlight);

    // Damage A: one picture and another persona's base image lost; two objects no row names.
    const personas = (await h.gen.personas.list(a.id, { page: 1, perPage: 20 })).personas;
    const [p1, p2] = personas as [(typeof personas)[0], (typeof personas)[0]];
    const lostImage = p1.images[2] as (typeof p1.images)[0];
    const lostBase = p2.baseImage?.key as string;
    await storage().delete(lostImage.key);
    await storage().delete(lostBase);
    const strayA = `tasks/${prefixA}/stray.png`;
    const strayB = `tasks/${prefixB}/${p1.id}/left-over.png`;
    await put(strayA);
    await put(strayB);
    // A temporary file of a write that died an hour ago, inside A's folder.
    const temp = join(h.storageRoot, 'tasks', prefixA, '.avatargen-tmp-deadbeefdeadbeef');
    writeFileSync(temp, 'half');
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(temp, hourAgo, hourAgo);

    const report = await h.gen.doctor.run();
    expect(report.healthy).toBe(false);
    expect(report.fixed).toBeNull();
    expect(report.missing.count).toBe(2);
    expect(report.missing.items).toEqual(
      expect.arrayContaining([
        { taskId: a.id, personaId: p1.id, kind: 'image', idx: 2, key: lostImage.key },
        { taskId: a.id, personaId: p2.id, kind: 'base', idx: null, key: lostBase },
      ]),
    );
    expect(report.orphans.count).toBe(2);
    expect(report.orphans.bytes).toBe(2 * png.length);
    expect(report.orphans.items).toEqual(
      expect.arrayContaining([
        { key: strayA, size: png.length, taskId: a.id },
        { key: strayB, size: png.length, taskId: null },
      ]),
    );
    expect(report.tasks).toBe(1);
    expect(report.skipped.tasks).toBe(1);
    expect(report.skipped.objects).toBeGreaterThanOrEqual(1);
    expect(report.objects).toBe(50 - 2 + 2 + report.skipped.objects);
    // Report only: nothing changed.
    expect(existsSync(join(h.storageRoot, strayA))).toBe(true);
    expect((await h.gen.tasks.get(a.id)).status).toBe('completed');
    // The report's lists are cut at `limit`; the counts stay whole.
    const short = await h.gen.doctor.run({ limit: 1 });
    expect(short.missing).toMatchObject({ count: 2, items: [expect.anything()] });
    expect(short.orphans).toMatchObject({ count: 2, items: [expect.anything()] });

    const before = { base: seeds.base.length, grid: seeds.grid.length };
    const fixed = await h.gen.doctor.run({ fix: true });
    expect(fixed.fixed).toEqual({
      orphansDeleted: 2,
      imageRowsDeleted: 1,
      baseKeysCleared: 1,
      personasReset: 2,
      tasksRetried: [a.id],
      tasksNotRetried: [],
      tempFilesRemoved: 1,
      errors: [],
    });
    expect(fixed.healthy).toBe(true);
    expect(existsSync(join(h.storageRoot, strayA))).toBe(false);
    expect(existsSync(join(h.storageRoot, strayB))).toBe(false);
    expect(existsSync(temp)).toBe(false);
    // The running task's object was left alone.
    expect(existsSync(join(h.storageRoot, inFlight))).toBe(true);

    // The worker makes what is missing, and only that: one base image, and one new shot of the
    // lost picture's prompt (a new seed) of which only the lost picture is kept, under a new key.
    const done = await waitForStatus(h.gen, a.id, ['completed', 'partial', 'failed']);
    expect(done.status).toBe('completed');
    expect(done.progress).toMatchObject({ personasStored: 10, imagesStored: 40, percent: 100 });
    const aSeeds = (list: string[]) => list.filter((s) => s.startsWith(`${a.id}:`));
    expect(aSeeds(seeds.base.slice(before.base))).toEqual([`${a.id}:${p2.id}`]);
    expect(aSeeds(seeds.grid.slice(before.grid))).toEqual([`${a.id}:${p1.id}:0:r1`]);
    const again = await h.gen.personas.list(a.id, { page: 1, perPage: 20 });
    const q1 = again.personas.find((p) => p.id === p1.id);
    const q2 = again.personas.find((p) => p.id === p2.id);
    expect(q1?.images.map((i) => i.index)).toEqual([0, 1, 2, 3]);
    expect(q1?.images[2]?.key).toMatch(/\/2-r1\.png$/);
    expect(q1?.images.filter((i) => i.index !== 2).map((i) => i.key)).toEqual(p1.images.filter((i) => i.index !== 2).map((i) => i.key));
    expect(q2?.baseImage?.key).toBeTruthy();

    // C finishes; its early object was never a row's: the next run names it, and after that all is clean.
    hold.release();
    hold = null;
    expect((await waitForStatus(h.gen, c.id, ['completed', 'partial', 'failed'])).status).toBe('completed');
    const afterC = await h.gen.doctor.run();
    expect(afterC.orphans.items).toEqual([{ key: inFlight, size: png.length, taskId: c.id }]);
    await storage().delete(inFlight);
    const last = await h.gen.doctor.run();
    expect(clean(last)).toEqual({ missing: 0, orphans: 0, healthy: true });
    expect(last).toMatchObject({ objects: 100, rows: 100, tasks: 2, skipped: { tasks: 0, objects: 0 } });
  }, 120_000);

  it('keeps derived objects (cached thumbnails) whose source is there, and names the others', async () => {
    const [task] = (await h.gen.tasks.list({ status: 'completed', limit: 1 })).tasks;
    const id = task?.id as string;
    const prefix = await prefixOf(id);
    const persona = (await h.gen.personas.list(id, { page: 1, perPage: 1 })).personas[0];
    const source = persona?.images[0]?.key as string;
    const thumbOf = (key: string) => key.replace(`tasks/${prefix}/`, `tasks/${prefix}/thumbs/w240/`) + '.webp';
    const derivedFrom = (key: string) => {
      const match = /^tasks\/([^/]+)\/thumbs\/w\d+\/(.+)\.webp$/.exec(key);
      return match ? `tasks/${match[1]}/${match[2]}` : null;
    };
    await put(thumbOf(source));
    await put(thumbOf(`tasks/${prefix}/gone.png`));
    const report = await h.gen.doctor.run({ derivedFrom });
    expect(report.orphans.items).toEqual([{ key: thumbOf(`tasks/${prefix}/gone.png`), size: png.length, taskId: id }]);
    // Without derivedFrom both are orphans.
    expect((await h.gen.doctor.run()).orphans.count).toBe(2);
    await h.gen.doctor.run({ fix: true, derivedFrom });
    expect(clean(await h.gen.doctor.run({ derivedFrom }))).toEqual({ missing: 0, orphans: 0, healthy: true });
    await storage().delete(thumbOf(source));
  });

  it('lists rows of an ended task with no object at all, and leaves a cancelled task cancelled', async () => {
    hold = { promise: new Promise<void>(() => {}), release: () => {} };
    const task = await h.gen.tasks.submit(REQUEST);
    await waitUntil(() => held > 0, 30_000, 'the task to wait for its base images');
    await h.gen.tasks.cancel(task.id);
    hold = null;
    await waitUntil(() => held === 0, 30_000, 'the held calls to end');
    const prefix = await prefixOf(task.id);
    // A base image written for one persona before the cancel, then lost with the whole folder.
    const [persona] = (await h.gen.personas.list(task.id, { page: 1, perPage: 1 })).personas;
    const key = `tasks/${prefix}/${persona?.id}/base.png`;
    await h.gen.orm.em.fork().execute('update personas set base_image_key = ? where id = ?', [key, persona?.id]);
    const report = await h.gen.doctor.run();
    expect(report.missing.items).toEqual([{ taskId: task.id, personaId: persona?.id, kind: 'base', idx: null, key }]);
    const fixed = await h.gen.doctor.run({ fix: true });
    expect(fixed.fixed).toMatchObject({
      baseKeysCleared: 1,
      personasReset: 1,
      tasksRetried: [],
      tasksNotRetried: [{ taskId: task.id, reason: expect.stringContaining('cancelled') }],
      errors: [],
    });
    expect(fixed.healthy).toBe(true);
    expect((await h.gen.tasks.get(task.id)).status).toBe('cancelled');
    expect(clean(await h.gen.doctor.run())).toEqual({ missing: 0, orphans: 0, healthy: true });
  }, 60_000);

  it('gives the same answers when the storage lists its objects in another order', async () => {
    // The port promises every object under the prefix, not an order: here the tasks' objects come
    // interleaved (by file name, then key), so each task's folder is seen in many pieces.
    const real = storage();
    const interleaved: ObjectStorage = {
      ...real,
      async *list(prefix) {
        const all = [];
        for await (const object of real.list(prefix)) all.push(object);
        const name = (key: string) => key.slice(key.lastIndexOf('/') + 1);
        all.sort((x, y) => name(x.key).localeCompare(name(y.key)) || x.key.localeCompare(y.key));
        yield* all;
      },
    };
    const doctor = new Doctor(h.gen.orm, interleaved, h.gen.tasks);
    const healthy = await doctor.run();
    expect(clean(healthy)).toEqual({ missing: 0, orphans: 0, healthy: true });
    expect(healthy).toMatchObject({ objects: 100, rows: 100 });

    const [task] = (await h.gen.tasks.list({ status: 'completed', limit: 1 })).tasks;
    const id = task?.id as string;
    const persona = (await h.gen.personas.list(id, { page: 1, perPage: 1 })).personas[0];
    const lost = persona?.images[3]?.key as string;
    await real.delete(lost);
    const stray = `tasks/${await prefixOf(id)}/zz-stray.png`;
    await put(stray);
    const report = await doctor.run();
    expect(report.missing.items).toEqual([{ taskId: id, personaId: persona?.id, kind: 'image', idx: 3, key: lost }]);
    expect(report.orphans.items).toEqual([{ key: stray, size: png.length, taskId: id }]);
    expect((await doctor.run({ fix: true })).fixed).toMatchObject({
      orphansDeleted: 1,
      imageRowsDeleted: 1,
      tasksRetried: [id],
      errors: [],
    });
    expect((await waitForStatus(h.gen, id, ['completed', 'partial', 'failed'])).status).toBe('completed');
    expect(clean(await doctor.run())).toEqual({ missing: 0, orphans: 0, healthy: true });
  }, 60_000);
});
