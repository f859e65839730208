import { randomUUID } from 'node:crypto';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobQueue, QUEUE_BATCHES, QUEUE_IMAGES } from '../src/pipeline/queue.js';
import { createTestDatabase, type TestDatabase } from '../src/testing.js';

/** The queue's work loop on a real pg-boss: slots, batched fetches and job ends, admission. */
describe('JobQueue work loop', () => {
  let db: TestDatabase;
  let queue: JobQueue;
  const log = pino({ level: 'silent' });

  beforeAll(async () => {
    db = await createTestDatabase('avatargen_job_queue');
    queue = new JobQueue({
      databaseUrl: db.url,
      expireInSeconds: 60,
      attempts: 1,
      maintenanceIntervalSeconds: 60,
      pollingMs: 200,
      log,
      trouble: () => undefined,
    });
    await queue.start();
  });
  afterAll(async () => {
    await queue.stop(5_000);
    await db.drop();
  });

  /** pg-boss's own record of each job's end (its job table, read here only to check). */
  async function states(ids: string[]): Promise<Record<string, string>> {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ id: string; state: string; output: { message?: string } | null }>(
        'select id, state, output from pgboss.job where id = any($1::uuid[])',
        [ids],
      );
      return Object.fromEntries(rows.map((r) => [r.id, r.state === 'failed' ? `failed: ${r.output?.message}` : r.state]));
    } finally {
      await client.end();
    }
  }

  async function until(check: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('runs every job once, never more than its slots at a time, and records each end (failures with their reason)', async () => {
    const jobs = Array.from({ length: 23 }, (_, i) => ({ id: randomUUID(), data: { i } }));
    const seen: number[] = [];
    let running = 0;
    let most = 0;
    queue.work<{ i: number }>(QUEUE_BATCHES, 4, async ({ i }) => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 5 + (i % 3) * 10));
      running--;
      seen.push(i);
      if (i === 7) throw new Error('the provider refused job 7');
    });
    await queue.transaction((client) => queue.send(client, QUEUE_BATCHES, jobs));
    queue.wake(QUEUE_BATCHES);
    const ids = jobs.map((j) => j.id);
    await until(async () => Object.values(await states(ids)).every((s) => s !== 'created' && s !== 'active'));
    expect(seen.sort((a, b) => a - b)).toEqual(jobs.map((_, i) => i));
    expect(most).toBe(4);
    const ended = await states(ids);
    expect(ended[jobs[7]?.id as string]).toBe('failed: Error: the provider refused job 7');
    expect(Object.values(ended).filter((s) => s === 'completed')).toHaveLength(22);
  });

  it('takes one job per booked admission, and fills every free slot with one fetch when no limit applies', async () => {
    const booked = Array.from({ length: 3 }, (_, i) => ({ id: randomUUID(), data: { i } }));
    const free = Array.from({ length: 3 }, (_, i) => ({ id: randomUUID(), data: { i: i + 3 } }));
    await queue.transaction((client) => queue.send(client, QUEUE_IMAGES, booked));
    let admissions = 0;
    /** The admission each job started under, by job number. */
    const startedUnder: number[] = [];
    queue.work<{ i: number }>(
      QUEUE_IMAGES,
      3,
      async ({ i }) => {
        startedUnder[i] = admissions;
        await new Promise((r) => setTimeout(r, 100));
      },
      async () => ++admissions <= 3, // the limit books room for three jobs, then no limit applies
    );
    await until(async () => Object.values(await states(booked.map((j) => j.id))).every((s) => s === 'completed'));
    // each booked admission let one job in (which job comes first is pg-boss's choice)
    expect(startedUnder.slice(0, 3).sort()).toEqual([1, 2, 3]);

    await queue.transaction((client) => queue.send(client, QUEUE_IMAGES, free));
    queue.wake(QUEUE_IMAGES);
    await until(async () => Object.values(await states(free.map((j) => j.id))).every((s) => s === 'completed'));
    // no limit: the three free slots were filled by one fetch, after one admission
    const under = startedUnder.slice(3, 6);
    expect(under).toHaveLength(3);
    expect(new Set(under).size).toBe(1);
    expect(under[0]).toBeGreaterThan(3);
  });
});
