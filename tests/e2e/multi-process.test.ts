import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, type TestDatabase } from '@avatargen/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AvatargenProcess, freePort, runAvatargen } from '../support/avatargen.js';
import { Client, collectEvents } from '../support/web-client.js';

/**
 * Two `avatargen web` processes and two `avatargen worker` processes on one PostgreSQL: sessions
 * are shared, work done by the workers reaches the browser connected to either web process, and
 * a cancel sent through one web process stops the workers.
 */
const PASSWORD = 'operators passphrase';
let db: TestDatabase;
let dir: string;
let env: Record<string, string>;
const processes: AvatargenProcess[] = [];
let web1: string;
let web2: string;

const cookieHeader = (c: Client) => [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ');

beforeAll(async () => {
  db = await createTestDatabase('avatargen_e2e');
  dir = mkdtempSync(join(tmpdir(), 'avatargen-e2e-multi-'));
  // image-opencv's worker threads load tsx from the current folder when run from sources.
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(fileURLToPath(new URL('../../node_modules/tsx', import.meta.url)), join(dir, 'node_modules', 'tsx'));
  env = { DATABASE_URL: db.url, DATA_DIR: join(dir, 'data'), IMAGE_PROCESSOR_THREADS: '1', LOG_LEVEL: 'warn' };
  const create = runAvatargen(['user', 'create', '--email', 'ops@example.com', '--password', PASSWORD], { cwd: dir, env });
  expect(await create.exited).toBe(0);
});
afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop(10_000)));
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('avatargen web x2 + avatargen worker x2', () => {
  it('start on one database', async () => {
    const [port1, port2] = [await freePort(), await freePort()];
    const starting = [
      runAvatargen(['web'], { cwd: dir, env: { ...env, APP_PORT: String(port1) } }),
      runAvatargen(['web'], { cwd: dir, env: { ...env, APP_PORT: String(port2) } }),
      runAvatargen(['worker'], { cwd: dir, env }),
      runAvatargen(['worker'], { cwd: dir, env }),
    ];
    processes.push(...starting);
    web1 = (await starting[0]?.waitFor(/listening on (http:\/\/\S+)/))?.[1] as string;
    web2 = (await starting[1]?.waitFor(/listening on (http:\/\/\S+)/))?.[1] as string;
    await starting[2]?.waitFor(/worker started/);
    await starting[3]?.waitFor(/worker started/);
    for (const base of [web1, web2]) expect(((await (await fetch(`${base}/healthz`)).json()) as { status: string }).status).toBe('ok');
  });

  it('share sessions: log in on one web process, use and end the session on the other', async () => {
    const one = new Client(web1);
    expect((await one.login('ops@example.com', PASSWORD)).status).toBe(303);
    const two = new Client(web2);
    for (const [k, v] of one.cookies) two.cookies.set(k, v);
    const page = await two.get('/dashboard');
    expect(page.status).toBe(200);
    expect(page.text).toContain('ops@example.com');
    expect((await two.post('/logout')).status).toBe(303);
    // The first process may reuse what it read for up to a second (authCacheMs), then it is gone.
    let status = 200;
    for (let i = 0; i < 60 && status === 200; i++) {
      await new Promise((r) => setTimeout(r, 50));
      status = (await one.get('/dashboard')).status;
    }
    expect(status).toBe(302);
  });

  it('the workers complete a task submitted on one web process while the other streams its progress', async () => {
    const c = new Client(web1);
    await c.login('ops@example.com', PASSWORD);
    await c.get('/generate');
    const submitted = await c.post('/generate', { description: 'Ferry crews in Oslo', language: 'nb', count: '20', imagesPerPersona: '4' });
    expect(submitted.status).toBe(303);
    const page = submitted.location as string;
    const events = await fetch(`${web2}${page}/events`, { headers: { cookie: cookieHeader(c) } });
    expect(events.status).toBe(200);
    const stream = await collectEvents(events, (e) => e.event === 'done', 120_000);
    const percents = stream.filter((e) => e.event === 'progress').map((e) => JSON.parse(e.data).progress.percent as number);
    expect(percents.some((p) => p > 0 && p < 100)).toBe(true);
    expect(JSON.parse(stream.at(-1)?.data ?? '{}')).toMatchObject({
      status: 'completed',
      progress: { personasStored: 20, imagesStored: 80 },
    });
    const detail = await c.get(page);
    expect(detail.text.match(/<article class="panel persona"/g)).toHaveLength(20);
  });

  it('a cancel sent to one web process stops the work on the workers', async () => {
    const c = new Client(web2);
    await c.login('ops@example.com', PASSWORD);
    await c.get('/dashboard');
    const created = await c.request('POST', '/api/v1/tasks', {
      json: { description: 'Glaziers in Lyon', language: 'fr', count: 60, imagesPerPersona: 20 },
    });
    expect(created.status).toBe(201);
    const id = (created.json() as { id: string }).id;
    const events = await fetch(`${web1}/api/v1/tasks/${id}/events`, { headers: { cookie: cookieHeader(c) } });
    await collectEvents(events, (e) => e.event === 'progress' && JSON.parse(e.data).progress.imagesStored > 0, 120_000);
    const cancelled = await c.request('POST', `/api/v1/tasks/${id}/cancel`);
    expect(cancelled.status).toBe(200);
    await new Promise((r) => setTimeout(r, 1500));
    const task = (await c.get(`/api/v1/tasks/${id}`)).json() as { status: string; progress: { imagesStored: number; imagesTotal: number } };
    expect(task.status).toBe('cancelled');
    expect(task.progress.imagesStored).toBeLessThan(task.progress.imagesTotal);
  });

  it('every process stops cleanly on SIGTERM', async () => {
    const codes = await Promise.all(processes.map((p) => p.stop(30_000)));
    for (const p of processes) expect(p.output()).toContain('avatargen stopped');
    expect(codes).toEqual([0, 0, 0, 0]);
  });
});
