/**
 * Pipeline benchmark: a 100-persona x 8-image task on one worker, with stand-ins for the
 * external services at fixed latencies (persona batch 50 ms, prompt 20 ms, base 100 ms,
 * grid 100 ms), a no-op image processor and filesystem storage. Compares the wall time with the
 * ideal: the critical path given the concurrency limits. The task runs twice in the same worker:
 * `pipeline.ratio` is the second (a worker that has been up a while), `pipeline.cold_ratio` the
 * first, which also pays the process's one-time costs. Then measures the queue's overhead per
 * job with no-op jobs through the pipeline's own work loop, against the commit latency of this
 * machine's PostgreSQL (what a job's bookkeeping waits on), both in the same run. Not part of `npm test`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import pino from 'pino';
import { type AvatarGen, createAvatarGen } from '../packages/core/src/index.js';
import { JobQueue, QUEUE_BATCHES } from '../packages/core/src/pipeline/queue.js';
import { createTestDatabase } from '../packages/core/src/testing.js';
import { fakePlugin, fakeServices } from '../packages/core/test/support/fakes.js';

const LATENCY = { persona: 50, prompt: 20, base: 100, grid: 100 };
const COUNT = 100;
const IMAGES = 8;
const config = { MULTITHREAD_FLOWISE: 5, IMAGE_CONCURRENCY: 4, IMAGE_JOBS_PER_WORKER: 8 };

/**
 * The ideal: persona stage (batches of 10, MULTITHREAD_FLOWISE at once) plus the image stage,
 * which can go no faster than its image calls through IMAGE_CONCURRENCY slots, nor than the
 * per-persona chain (base -> prompts in sequence -> grids in parallel) through
 * IMAGE_JOBS_PER_WORKER personas at once.
 */
function ideal(): { personas: number; images: number; total: number } {
  const batches = Math.ceil(COUNT / 10);
  const personas = Math.ceil(batches / config.MULTITHREAD_FLOWISE) * LATENCY.persona;
  const grids = IMAGES / 4;
  const imageCalls = COUNT * (1 + grids);
  const callBound = Math.ceil(imageCalls / config.IMAGE_CONCURRENCY) * LATENCY.grid;
  const chain = LATENCY.base + grids * LATENCY.prompt + LATENCY.grid;
  const chainBound = Math.ceil(COUNT / config.IMAGE_JOBS_PER_WORKER) * chain;
  const images = Math.max(callBound, chainBound);
  return { personas, images, total: personas + images };
}

/** One task through the pipeline: its wall time, and the time until its images stage began. */
async function timedTask(gen: AvatarGen): Promise<{ wall: number; toImages: number }> {
  const started = performance.now();
  const task = await gen.tasks.submit({ description: 'Benchmark people', language: 'en', count: COUNT, imagesPerPersona: IMAGES });
  let toImages = 0;
  let done = '';
  // Light polling of the status alone, so the measurement adds little load of its own.
  while (!done) {
    await new Promise((r) => setTimeout(r, 20));
    const [row] = await gen.orm.em.fork().execute('select status from generation_tasks where id = ?', [task.id]);
    const status = row?.status as string;
    if (!toImages && (status === 'generating-images' || status === 'completed')) toImages = performance.now() - started;
    if (status === 'completed' || status === 'failed') done = status;
  }
  const wall = performance.now() - started;
  if (done !== 'completed') throw new Error(`task ended ${done}`);
  const t = await gen.tasks.get(task.id);
  if (t.progress.imagesStored !== COUNT * IMAGES) throw new Error(`only ${t.progress.imagesStored} images`);
  return { wall, toImages };
}

/**
 * The same task twice in one worker process: the first runs on cold code (modules loaded on first
 * use, the JIT, the ORM's caches), the second as a worker that has been up a while runs every
 * task. The ratio is the second's; the first is printed beside it.
 */
async function pipelineRuns(): Promise<{ cold: { wall: number; toImages: number }; warm: { wall: number; toImages: number } }> {
  const db = await createTestDatabase('avatargen_bench');
  const storage = mkdtempSync(join(tmpdir(), 'avatargen-bench-'));
  const fakes = fakeServices({
    personaLatencyMs: LATENCY.persona,
    promptLatencyMs: LATENCY.prompt,
    baseLatencyMs: LATENCY.base,
    gridLatencyMs: LATENCY.grid,
  });
  const gen = await createAvatarGen({
    config: { DATABASE_URL: db.url, LOG_LEVEL: 'warn', ...config },
    plugins: [fakePlugin(fakes, storage)],
    pipeline: { pollingIntervalSeconds: 0.5 },
  });
  try {
    await gen.worker.start();
    const cold = await timedTask(gen);
    const warm = await timedTask(gen);
    return { cold, warm };
  } finally {
    await gen.close();
    await db.drop();
    rmSync(storage, { recursive: true, force: true });
  }
}

/**
 * Per-job cost of the queue: n no-op jobs through the pipeline's own work loop (fetch, run,
 * complete), wall time over n, with `slots` jobs at once (SLOTS: a worker's picture jobs at the
 * default IMAGE_JOBS_PER_WORKER; 1: one job after another) and the queue's connections committing
 * asynchronously (the pipeline's default) or synchronously.
 */
const SLOTS = 8;
async function jobOverhead(synchronousCommit: boolean, slots = SLOTS, n = 800): Promise<number> {
  const db = await createTestDatabase('avatargen_bench');
  const log = pino({ level: 'silent' });
  const queue = new JobQueue({
    databaseUrl: db.url,
    expireInSeconds: 60,
    attempts: 1,
    maintenanceIntervalSeconds: 60,
    pollingMs: 500,
    synchronousCommit,
    log,
    trouble: (error) => log.error(error),
  });
  try {
    await queue.start();
    await queue.transaction((client) =>
      queue.send(
        client,
        QUEUE_BATCHES,
        Array.from({ length: n }, (_, i) => ({ id: randomUUID(), data: { i } })),
      ),
    );
    let seen = 0;
    const started = performance.now();
    await new Promise<void>((resolve) => {
      queue.work(QUEUE_BATCHES, slots, async () => {
        if (++seen === n) resolve();
      });
    });
    return (performance.now() - started) / n;
  } finally {
    await queue.stop(5_000);
    await db.drop();
  }
}

/** The disk's commit latency: one-row inserts, each its own committed transaction, on one connection. */
async function commitLatency(n = 200): Promise<number> {
  const db = await createTestDatabase('avatargen_bench');
  const client = new pg.Client({ connectionString: db.url });
  try {
    await client.connect();
    await client.query('create table commits (n int)');
    const started = performance.now();
    for (let i = 0; i < n; i++) await client.query('insert into commits values ($1)', [i]);
    return (performance.now() - started) / n;
  } finally {
    await client.end();
    await db.drop();
  }
}

const target = ideal();
const { cold, warm: run } = await pipelineRuns();
const commitMs = await commitLatency();
const overheadSync = await jobOverhead(true);
const overhead = await jobOverhead(false);
const overheadSerial = await jobOverhead(false, 1);
const ratio = run.wall / target.total;
const coldRatio = cold.wall / target.total;
console.log(`task: ${COUNT} personas x ${IMAGES} images, limits ${JSON.stringify(config)}`);
console.log(`latencies (ms): ${JSON.stringify(LATENCY)}`);
console.log(`ideal:    personas ${target.personas} ms + images ${target.images} ms = ${target.total} ms`);
console.log(
  `first task (cold process): personas ${cold.toImages.toFixed(0)} ms, total ${cold.wall.toFixed(0)} ms, ratio ${coldRatio.toFixed(3)}`,
);
console.log(`measured (second task): personas ${run.toImages.toFixed(0)} ms, total ${run.wall.toFixed(0)} ms`);
console.log(`ratio:    ${ratio.toFixed(3)} (goal <= 1.10)`);
console.log(`commit:   ${commitMs.toFixed(2)} ms per committed insert on this machine's PostgreSQL`);
console.log(
  `queue:    ${overhead.toFixed(2)} ms per no-op job at ${SLOTS} at once, ${overheadSync.toFixed(2)} ms with synchronous commits, ` +
    `${overheadSerial.toFixed(2)} ms one at a time (goal <= 1 commit)`,
);
console.log(
  `BENCH pipeline.ratio=${ratio.toFixed(3)} pipeline.cold_ratio=${coldRatio.toFixed(3)} pipeline.job_overhead_ms=${overhead.toFixed(2)} pipeline.commit_ms=${commitMs.toFixed(2)} ` +
    `pipeline.job_overhead_commits=${(overhead / commitMs).toFixed(2)} pipeline.job_overhead_sync_commits=${(overheadSync / commitMs).toFixed(2)} ` +
    `pipeline.job_overhead_serial_commits=${(overheadSerial / commitMs).toFixed(2)}`,
);
process.exit(0);
