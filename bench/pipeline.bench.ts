/**
 * Pipeline benchmark: one 100-persona x 8-image task on one worker, with stand-ins for the
 * external services at fixed latencies (persona batch 50 ms, prompt 20 ms, base 100 ms,
 * grid 100 ms), a no-op image processor and filesystem storage. Compares the wall time with the
 * ideal: the critical path given the concurrency limits. Then measures pg-boss's overhead per
 * job with no-op jobs through a queue. Not part of `npm test`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import PgBoss from 'pg-boss';
import { createAvatarGen } from '../packages/core/src/index.js';
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

async function pipelineRun(): Promise<{ wall: number; toImages: number }> {
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
  } finally {
    await gen.close();
    await db.drop();
    rmSync(storage, { recursive: true, force: true });
  }
}

/** Per-job cost of the queue: N no-op jobs through one work loop, fetched again as soon as one ends. */
async function jobOverhead(n = 400): Promise<number> {
  const db = await createTestDatabase('avatargen_bench');
  const boss = new PgBoss({ connectionString: db.url, max: 4 });
  try {
    await boss.start();
    await boss.createQueue('noop', { name: 'noop' });
    await boss.insert(Array.from({ length: n }, (_, i) => ({ name: 'noop', data: { i } })));
    let seen = 0;
    const started = performance.now();
    await new Promise<void>((resolve) => {
      let id = '';
      boss
        .work('noop', { pollingIntervalSeconds: 0.5 }, async () => {
          seen++;
          if (seen === n) resolve();
          boss.notifyWorker(id);
        })
        .then((workerId) => {
          id = workerId;
        });
    });
    return (performance.now() - started) / n;
  } finally {
    await boss.stop({ graceful: false, wait: true });
    await db.drop();
  }
}

const target = ideal();
const run = await pipelineRun();
const overhead = await jobOverhead();
const ratio = run.wall / target.total;
console.log(`task: ${COUNT} personas x ${IMAGES} images, limits ${JSON.stringify(config)}`);
console.log(`latencies (ms): ${JSON.stringify(LATENCY)}`);
console.log(`ideal:    personas ${target.personas} ms + images ${target.images} ms = ${target.total} ms`);
console.log(`measured: personas ${run.toImages.toFixed(0)} ms, total ${run.wall.toFixed(0)} ms`);
console.log(`ratio:    ${ratio.toFixed(3)} (goal <= 1.10)`);
console.log(`queue:    ${overhead.toFixed(2)} ms per no-op job (goal < 5)`);
console.log(`BENCH pipeline.ratio=${ratio.toFixed(3)} pipeline.job_overhead_ms=${overhead.toFixed(2)}`);
process.exit(0);
