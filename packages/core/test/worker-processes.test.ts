import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createFilesystemStorage } from '@avatargen/storage-filesystem';
import { createTestDatabase, type TestDatabase } from '../src/testing.js';
import { type Harness, REQUEST, startHarness, waitForStatus, waitUntil } from './support/harness.js';

const repoRoot = resolve(import.meta.dirname, '../../..');
const script = resolve(import.meta.dirname, 'support/worker-process.ts');

function startWorker(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', script], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  return new Promise((resolvePromise, reject) => {
    child.stdout?.on('data', (d) => {
      if (String(d).includes('ready')) resolvePromise(child);
    });
    child.on('exit', (code) => reject(new Error(`worker exited with ${code}: ${stderr}`)));
  });
}

function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => {
    child.once('exit', () => r());
    child.kill(signal);
  });
}

function calls(log: string): string[][] {
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' '));
}

describe('worker processes', () => {
  let db: TestDatabase;
  let submitter: Harness;
  let dir: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    // The submitter sends the jobs, so its expiry setting is the one they carry.
    submitter = await startHarness({ db, worker: false, config: { JOB_EXPIRE_SECONDS: 3 } });
    dir = mkdtempSync(join(tmpdir(), 'avatargen-workers-'));
  });
  afterEach(async () => {
    await Promise.all(children.splice(0).map((c) => stop(c)));
  });
  afterAll(async () => {
    await submitter.close();
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const env = (name: string, extra: Record<string, string> = {}) => ({
    DATABASE_URL: db.url,
    STORAGE_ROOT: join(dir, 'storage'),
    CALL_LOG: join(dir, `${name}.log`),
    ...extra,
  });

  it('two worker processes share one queue with no double work', async () => {
    const e = env('shared', { GRID_LATENCY_MS: '30' });
    writeFileSync(e.CALL_LOG, '');
    children.push(await startWorker(e), await startWorker(e));
    const task = await submitter.gen.tasks.submit({ ...REQUEST, count: 40, imagesPerPersona: 8 });
    const done = await waitForStatus(submitter.gen, task.id, ['completed', 'failed'], 60_000);
    expect(done.status).toBe('completed');
    expect(done.progress).toMatchObject({ personasStored: 40, imagesStored: 320 });
    const log = calls(e.CALL_LOG);
    const work = log.map(([, kind, seed, extra]) => `${kind} ${seed} ${extra ?? ''}`);
    expect(new Set(work).size).toBe(work.length); // nothing asked twice
    expect(log.filter(([, kind]) => kind === 'persona')).toHaveLength(4);
    expect(log.filter(([, kind]) => kind === 'grid')).toHaveLength(80);
    expect(new Set(log.map(([pid]) => pid)).size).toBe(2); // both processes worked
  }, 120_000);

  it('resumes after a worker dies mid-task: every persona and image exactly once', async () => {
    const e = env('crash', { GRID_LATENCY_MS: '250', JOB_EXPIRE_SECONDS: '3', IMAGE_JOBS_PER_WORKER: '3' });
    writeFileSync(e.CALL_LOG, '');
    const first = await startWorker(e);
    children.push(first);
    const task = await submitter.gen.tasks.submit({ ...REQUEST, count: 20, imagesPerPersona: 8 });
    await waitUntil(async () => (await submitter.gen.tasks.get(task.id)).progress.imagesStored >= 16, 30_000, 'some images');
    await stop(first, 'SIGKILL');
    const storedAtCrash = (await submitter.gen.tasks.get(task.id)).progress.imagesStored;
    expect(storedAtCrash).toBeLessThan(160);
    children.push(await startWorker(e));
    const done = await waitForStatus(submitter.gen, task.id, ['completed', 'failed'], 90_000);
    expect(done.status).toBe('completed');
    expect(done.progress).toMatchObject({ personasStored: 20, imagesStored: 160 });
    const rows = await submitter.gen.orm.em
      .fork()
      .execute(
        'select p.id, count(i.idx)::int as n, min(i.idx) as lo, max(i.idx) as hi from personas p left join persona_images i on i.persona_id = p.id where p.task_id = ? group by p.id',
        [task.id],
      );
    expect(rows).toHaveLength(20);
    expect(rows.every((r) => r.n === 8 && r.lo === 0 && r.hi === 7)).toBe(true);
    // Finished grids were not asked again: at most the grids in flight at the crash were redone.
    const grids = calls(e.CALL_LOG).filter(([, kind]) => kind === 'grid');
    expect(grids.length).toBeGreaterThanOrEqual(40);
    expect(grids.length).toBeLessThanOrEqual(40 + 3 * 2);
  }, 180_000);

  it('a storm of 20 SIGKILLs at random moments leaves the task exact and storage equal to the rows', async () => {
    const e = env('storm', { PERSONA_LATENCY_MS: '150', GRID_LATENCY_MS: '120', JOB_EXPIRE_SECONDS: '2', IMAGE_JOBS_PER_WORKER: '3' });
    writeFileSync(e.CALL_LOG, '');
    const task = await submitter.gen.tasks.submit({ ...REQUEST, count: 30, imagesPerPersona: 8 });
    let current = await startWorker(e);
    children.push(current);
    for (let kill = 0; kill < 20; kill++) {
      // A random moment: in the persona stage, between a grid and its rows, mid-write...
      await new Promise((r) => setTimeout(r, 150 + Math.random() * 900));
      await stop(current, 'SIGKILL');
      current = await startWorker(e);
      children.push(current);
    }
    const done = await waitForStatus(submitter.gen, task.id, ['completed', 'partial', 'failed'], 150_000);
    expect(done.status).toBe('completed');
    expect(done.progress).toMatchObject({ personasStored: 30, imagesStored: 240 });
    const em = submitter.gen.orm.em.fork();
    const rows = await em.execute(
      `select key from persona_images where task_id = ? union all select base_image_key from personas where task_id = ?`,
      [task.id, task.id],
    );
    const keys = rows.map((r) => r.key as string).sort();
    expect(new Set(keys).size).toBe(30 * 9); // no duplicate rows: one base and eight images per persona
    // Storage equal to the rows: no object without a row, no row without its object.
    const objects: string[] = [];
    for await (const object of createFilesystemStorage({ root: e.STORAGE_ROOT }).list(`tasks/${task.id}/`)) objects.push(object.key);
    expect(objects.sort()).toEqual(keys);
  }, 240_000);

  it('a job that kills every worker it meets is given up after its attempts; the rest of the task is made', async () => {
    // Batch 0's fourth persona (first name ending "0x3") kills the worker that asks for its base image.
    // One image job per worker, so each death takes only the poison job with it.
    const e = env('poison', { JOB_EXPIRE_SECONDS: '2', JOB_ATTEMPTS: '3', POISON_NAME_END: '0x3', IMAGE_JOBS_PER_WORKER: '1' });
    writeFileSync(e.CALL_LOG, '');
    const task = await submitter.gen.tasks.submit({ ...REQUEST, count: 10, imagesPerPersona: 4 });
    let deaths = 0;
    let ended = false;
    // A supervisor, as systemd would be: a worker that dies is started again.
    const supervise = (async () => {
      while (!ended) {
        const worker = await startWorker(e).catch((error: Error) => {
          if (/exited with 3/.test(error.message)) deaths++; // died before it said it was ready
          return null;
        });
        if (!worker) continue;
        children.push(worker);
        const code = await new Promise<number | null>((r) => worker.once('exit', (c) => r(c)));
        if (code === 3) deaths++;
      }
    })();
    const done = await waitForStatus(submitter.gen, task.id, ['completed', 'partial', 'failed'], 90_000);
    ended = true;
    await Promise.all(children.splice(0).map((c) => stop(c)));
    await supervise.catch(() => undefined);
    expect(done.status).toBe('partial');
    expect(done.progress).toMatchObject({ personasStored: 10, imagesStored: 36 });
    expect(deaths).toBe(3); // one death per attempt, then no more
    const [poisoned] = await submitter.gen.orm.em
      .fork()
      .execute(`select images_status, images_error from personas where task_id = ? and first_name like '%0x3'`, [task.id]);
    expect(poisoned).toEqual({ images_status: 'failed', images_error: 'Given up: its job stopped its worker repeatedly.' });
    expect(done.errorLog.map((entry) => entry.message).join('\n')).toMatch(/0x3 .*Given up: its job stopped its worker repeatedly/);
  }, 150_000);
});
