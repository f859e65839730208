import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type OwnedPostgres, startOwnedPostgres } from '@avatargen/embedded-postgres/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AvatargenProcess, freePort, runAvatargen } from '../support/avatargen.js';
import { type FlowiseServer, reply, startFlowiseServer } from '../support/flowise-server.js';
import { Client, collectEvents } from '../support/web-client.js';

/**
 * PostgreSQL restarts and a 60 s outage under a running site: one `avatargen web` and two
 * `avatargen worker` processes on a PostgreSQL the test owns. Every process must stay alive, wait,
 * reconnect and LISTEN again; the task completes with exact counts, no duplicates, and storage
 * equal to the rows; progress and cancel work after the outage; a worker started while the
 * database is down waits for it.
 */
const PASSWORD = 'operators passphrase';
const FLOWISE_KEY = 'flowise-outage-key-7a1e';
let owned: OwnedPostgres;
let flowise: FlowiseServer;
let dir: string;
let env: Record<string, string>;
let web: AvatargenProcess;
let base: string;
const workers: AvatargenProcess[] = [];
const all = () => [web, ...workers].filter(Boolean);

const cookieHeader = (c: Client) => [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ');

async function query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: owned.url });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end();
  }
}

interface TaskJson {
  status: string;
  progress: { personasStored: number; imagesStored: number; imagesTotal: number };
}

async function getTask(c: Client, id: string): Promise<TaskJson> {
  const res = await c.get(`/api/v1/tasks/${id}`);
  expect(res.status).toBe(200);
  return res.json() as TaskJson;
}

async function waitForTask(c: Client, id: string, check: (t: TaskJson) => boolean, timeoutMs: number, what: string): Promise<TaskJson> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const task = await getTask(c, id);
    if (check(task)) return task;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(task)}`);
    await sleep(200);
  }
}

function expectAlive(): void {
  for (const p of all()) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) {
      throw new Error(`a process exited (${p.child.exitCode ?? p.child.signalCode}):\n${p.output().slice(-3000)}`);
    }
  }
}

beforeAll(async () => {
  owned = await startOwnedPostgres();
  // Prompts take a while, so the image stage lasts through the restarts and the outage.
  flowise = await startFlowiseServer({
    apiKey: FLOWISE_KEY,
    handler: async (request) => {
      if (request.flowId !== flowise.personaFlowId) await sleep(700);
      return reply.flowise();
    },
  });
  dir = mkdtempSync(join(tmpdir(), 'avatargen-e2e-outage-'));
  // image-opencv's worker threads load tsx from the current folder when run from sources.
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(fileURLToPath(new URL('../../node_modules/tsx', import.meta.url)), join(dir, 'node_modules', 'tsx'));
  env = {
    DATABASE_URL: owned.url,
    DATA_DIR: join(dir, 'data'),
    FLOWISE_URL: flowise.url,
    FLOWISE_API_KEY: FLOWISE_KEY,
    FLOWISE_PERSONA_FLOW_ID: flowise.personaFlowId,
    FLOWISE_PROMPT_FLOW_ID: flowise.promptFlowId,
    IMAGE_PROCESSOR_THREADS: '1',
    IMAGE_JOBS_PER_WORKER: '2',
    LOG_LEVEL: 'warn',
    // Jobs held through an outage must come back soon after it, not when they expire.
    JOB_EXPIRE_SECONDS: '3600',
  };
  const create = runAvatargen(['user', 'create', '--email', 'ops@example.com', '--password', PASSWORD], { cwd: dir, env });
  expect(await create.exited).toBe(0);
}, 120_000);

afterAll(async () => {
  await Promise.all(all().map((p) => p.stop(10_000)));
  await flowise?.close();
  await owned?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('PostgreSQL restarts and an outage under a running site', () => {
  let c: Client;
  let taskId: string;

  it('starts one web and two worker processes', async () => {
    web = runAvatargen(['web'], { cwd: dir, env: { ...env, APP_PORT: String(await freePort()) } });
    workers.push(runAvatargen(['worker'], { cwd: dir, env }), runAvatargen(['worker'], { cwd: dir, env }));
    base = (await web.waitFor(/listening on (http:\/\/\S+)/))[1] as string;
    for (const w of workers) await w.waitFor(/worker started/);
    c = new Client(base);
    expect((await c.login('ops@example.com', PASSWORD)).status).toBe(303);
    await c.get('/dashboard');
  }, 120_000);

  it('rides out two restarts and a 60 s outage during the image stage; every process stays alive', async () => {
    const created = await c.request('POST', '/api/v1/tasks', {
      json: { description: 'Lighthouse keepers in Maine', language: 'en', count: 30, imagesPerPersona: 8 },
    });
    expect(created.status).toBe(201);
    taskId = (created.json() as { id: string }).id;

    for (const round of [1, 2]) {
      const before = await waitForTask(
        c,
        taskId,
        (t) => t.progress.imagesStored > 0 && t.status === 'generating-images',
        120_000,
        'images',
      );
      await owned.restart();
      await waitForTask(c, taskId, (t) => t.progress.imagesStored > before.progress.imagesStored, 90_000, `images after restart ${round}`);
      expectAlive();
    }

    // A 60 s outage with jobs in flight.
    const atStop = await getTask(c, taskId);
    expect(atStop.status).toBe('generating-images');
    expect(atStop.progress.imagesStored).toBeLessThan(200);
    await owned.stop();
    const stoppedAt = Date.now();
    // The site says so: 503 with Retry-After, never 500; /healthz says the database is down.
    // (The first answer that is not a 200 must be that 503: the web process notices with its next query.)
    let during: Awaited<ReturnType<Client['get']>> | undefined;
    await expect
      .poll(
        async () => {
          during = await c.get(`/api/v1/tasks/${taskId}`);
          return during.status;
        },
        { timeout: 30_000, interval: 100 },
      )
      .not.toBe(200);
    expect(during?.status).toBe(503);
    expect(during?.headers.get('retry-after')).toBeTruthy();
    expect((await fetch(`${base}/healthz`)).status).toBe(503);
    // A worker started now waits for the database instead of exiting.
    const late = runAvatargen(['worker'], { cwd: dir, env });
    workers.push(late);
    await late.waitFor(/not reachable; waiting for it/, 60_000);
    // The time must pass: this is the 60 s outage, counted from the stop (the checks above were part of it).
    await sleep(Math.max(0, stoppedAt + 60_000 - Date.now()));
    expectAlive();
    const outageEnded = Date.now();
    await owned.start();

    await late.waitFor(/worker started/, 60_000);
    const done = await waitForTask(
      c,
      taskId,
      (t) => !['pending', 'generating-data', 'data-generated', 'generating-images'].includes(t.status),
      180_000,
      'the end of the task',
    );
    // Jobs held through the outage came back within the reconcile's reach, not JOB_EXPIRE_SECONDS.
    expect(Date.now() - outageEnded).toBeLessThan(150_000);
    expect(done, JSON.stringify(done).slice(0, 3000)).toMatchObject({
      status: 'completed',
      progress: { personasStored: 30, imagesStored: 240 },
    });
    expectAlive();
  }, 420_000);

  it('leaves no duplicate rows, and storage equal to the rows', async () => {
    const [counts] = await query<{ personas: number; images: number; distinct_images: number; bases: number }>(
      `select (select count(*)::int from personas where task_id = $1) as personas,
              (select count(*)::int from persona_images where task_id = $1) as images,
              (select count(distinct key)::int from persona_images where task_id = $1) as distinct_images,
              (select count(base_image_key)::int from personas where task_id = $1) as bases`,
      [taskId],
    );
    expect(counts).toEqual({ personas: 30, images: 240, distinct_images: 240, bases: 30 });
    const keys = new Set(
      (
        await query<{ key: string }>(
          `select key from persona_images where task_id = $1 union all select base_image_key from personas where task_id = $1`,
          [taskId],
        )
      ).map((r) => r.key),
    );
    const root = join(dir, 'data', 'storage');
    const files = readdirSync(join(root, 'tasks', taskId), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => relative(root, join(e.parentPath, e.name)));
    expect(new Set(files)).toEqual(keys);
  });

  it('streams progress and obeys cancel after the outage (the processes LISTEN again)', async () => {
    const created = await c.request('POST', '/api/v1/tasks', {
      json: { description: 'Glaziers in Lyon', language: 'fr', count: 40, imagesPerPersona: 20 },
    });
    expect(created.status).toBe(201);
    const id = (created.json() as { id: string }).id;
    const events = await fetch(`${base}/api/v1/tasks/${id}/events`, { headers: { cookie: cookieHeader(c) } });
    expect(events.status).toBe(200);
    // Progress reaches the web process only through NOTIFY from the workers.
    await collectEvents(events, (e) => e.event === 'progress' && JSON.parse(e.data).progress.imagesStored > 0, 120_000);
    expect((await c.request('POST', `/api/v1/tasks/${id}/cancel`)).status).toBe(200);
    // Calls in flight are aborted and the jobs still queued end without work: once no job of the task
    // waits or runs in any worker (pg-boss's table says so), nothing more can be stored.
    const liveJobs = async () =>
      (
        await query<{ n: number }>(
          `select count(*)::int as n from pgboss.job
            where name <> 'avatargen-dead' and data->>'taskId' = $1 and state in ('created', 'retry', 'active')`,
          [id],
        )
      )[0]?.n;
    await expect.poll(liveJobs, { timeout: 60_000, interval: 200 }).toBe(0);
    const atCancel = await query<{ n: number }>('select count(*)::int as n from persona_images where task_id = $1', [id]);
    expect(atCancel[0]?.n).toBeGreaterThan(0); // what was already stored stays
    expect(await liveJobs()).toBe(0);
    const later = await query<{ n: number }>('select count(*)::int as n from persona_images where task_id = $1', [id]);
    expect(later[0]?.n).toBe(atCancel[0]?.n);
    expect((await getTask(c, id)).status).toBe('cancelled');
    expectAlive();
  }, 180_000);

  it('every process still stops cleanly on SIGTERM', async () => {
    const codes = await Promise.all(all().map((p) => p.stop(30_000)));
    expect(codes).toEqual(all().map(() => 0));
  }, 60_000);
});
