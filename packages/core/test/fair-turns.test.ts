import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fairOrder, type TurnJob } from '../src/pipeline/scheduler.js';
import { type Harness, REQUEST, startHarness, waitForStatus } from './support/harness.js';

describe('fairOrder', () => {
  const jobs = (taskId: string, owner: string, startedAt: number, units: number[]): TurnJob[] =>
    units.map((unit) => ({ id: `${taskId}/${unit}`, taskId, owner, startedAt, unit }));

  it('a task alone: its units in order, nothing held back', () => {
    expect(fairOrder(jobs('a', 'u1', 1, [3, 1, 2]))).toEqual(['a/1', 'a/2', 'a/3']);
  });

  it('tasks of different users take turns, a later task from the next round on', () => {
    const order = fairOrder([...jobs('big', 'u1', 1, [5, 6, 7, 8]), ...jobs('small', 'u2', 2, [1, 2])]);
    expect(order).toEqual(['big/5', 'small/1', 'big/6', 'small/2', 'big/7', 'big/8']);
  });

  it('a user with two tasks gets one turn per round, shared between them in turn', () => {
    const order = fairOrder([...jobs('a1', 'A', 1, [1, 2, 3]), ...jobs('a2', 'A', 3, [1, 2, 3]), ...jobs('b', 'B', 2, [1, 2, 3])]);
    expect(order).toEqual(['a1/1', 'b/1', 'a2/1', 'b/2', 'a1/2', 'b/3', 'a2/2', 'a1/3', 'a2/3']);
  });

  it('tasks without a user are owners of their own', () => {
    const order = fairOrder([...jobs('x', 'task:x', 1, [1, 2]), ...jobs('y', 'task:y', 1, [1, 2])]);
    expect(order).toEqual(['x/1', 'y/1', 'x/2', 'y/2']);
  });
});

describe('pipeline: fair turns between running tasks', () => {
  let h: Harness;
  /** Every grid call, in the order the image provider got them: the turns the tasks had. */
  const grids: string[] = [];
  beforeAll(async () => {
    h = await startHarness({
      fakes: {
        baseLatencyMs: 40,
        gridLatencyMs: 90,
        failGrid: (seed) => {
          grids.push(seed.split(':')[0] as string);
          return null;
        },
      },
      // As many jobs in flight as provider calls: the queue's order is the order of the turns.
      config: { IMAGE_JOBS_PER_WORKER: 4, IMAGE_CONCURRENCY: 4 },
    });
    await h.gen.settings.update({ max_concurrent_tasks: 3 });
  });
  afterAll(() => h.close());

  const submit = (count: number, userId?: number) =>
    h.gen.tasks.submit({ ...REQUEST, count, imagesPerPersona: 4 }, userId ? { userId } : {});
  /** Ms from `since` until the task has ended completed. */
  const endsAfter = async (taskId: string, since: number) => {
    await waitForStatus(h.gen, taskId, ['completed'], 50_000);
    return Date.now() - since;
  };

  it('a small task started behind a large one is served in turn, not after it', async () => {
    // The small task alone, measured here so that both times come from the same machine and load.
    let t0 = Date.now();
    const alone = await endsAfter((await submit(10)).id, t0);

    const large = await submit(80);
    await waitForStatus(h.gen, large.id, ['generating-images']);
    t0 = Date.now();
    const small = await submit(10);
    const [smallTime, largeTime] = await Promise.all([endsAfter(small.id, t0), endsAfter(large.id, t0)]);
    const ratio = smallTime / alone;
    console.info(
      `fair turns: small alone ${alone} ms, beside the large task ${smallTime} ms (x${ratio.toFixed(2)}); large ended after ${largeTime} ms`,
    );
    // Served after the large task, the small one would end with it (x4-5 here); in turn, it ends
    // long before it, in about twice its time alone (half the turns while both run).
    expect(smallTime).toBeLessThan(largeTime * 0.6);
    expect(ratio).toBeLessThan(1.5 * 2);
  }, 60_000);

  it('a user with two tasks gets no more turns than a user with one', async () => {
    const a = await h.gen.users.create({ email: 'a@example.com', password: 'correct horse battery' });
    const b = await h.gen.users.create({ email: 'b@example.com', password: 'correct horse battery' });
    grids.length = 0;
    const a1 = await submit(24, a.id);
    const b1 = await submit(24, b.id);
    const a2 = await submit(24, a.id);
    await Promise.all([a1, a2, b1].map((task) => waitForStatus(h.gen, task.id, ['completed'], 50_000)));
    // The turns while all three had pictures to make: from the last one's first grid to the first one's last.
    const ids = [a1.id, a2.id, b1.id];
    const from = Math.max(...ids.map((id) => grids.indexOf(id)));
    const to = Math.min(...ids.map((id) => grids.lastIndexOf(id)));
    const window = grids.slice(from, to + 1);
    const count = (id: string) => window.filter((task) => task === id).length;
    const [nA1, nA2, nB] = [count(a1.id), count(a2.id), count(b1.id)];
    console.info(`fair turns: while all three ran, user B ${nB} turns, user A ${nA1} + ${nA2}`);
    expect(window.length).toBeGreaterThanOrEqual(16);
    // B's one task gets as many turns as A's two together (one turn per user per round), where
    // turns per task would give B half as many; A's two tasks share A's turns.
    expect(nB / (nA1 + nA2)).toBeGreaterThan(0.7);
    expect(nB / (nA1 + nA2)).toBeLessThan(1.35);
    expect(Math.min(nA1, nA2) / (nA1 + nA2)).toBeGreaterThan(0.3);
    // so B ends first
    const ended = await Promise.all(ids.map(async (id) => ((await h.gen.tasks.get(id)).finishedAt as Date).getTime()));
    expect(ended[2]).toBeLessThan(Math.min(ended[0] as number, ended[1] as number));
  }, 60_000);
});
