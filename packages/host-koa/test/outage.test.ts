import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type AvatarGen, createAvatarGen, createLogger, type TaskView } from '@avatargen/core';
import { type OwnedPostgres, startOwnedPostgres } from '@avatargen/embedded-postgres/testing';
import { imageOpencvPlugin } from '@avatargen/image-opencv';
import { localPlugin } from '@avatargen/provider-local';
import { filesystemStoragePlugin } from '@avatargen/storage-filesystem';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createApp, type HostApp } from '../src/app.js';
import { listen, type RunningServer } from '../src/host.js';
import { Client, type Reply } from './support/client.js';
import { FAST_PIPELINE, PASSWORD, SECRET } from './support/harness.js';

/**
 * Real faults: a PostgreSQL this test owns is stopped under a running site and started again;
 * the storage folder is a tmpfs remounted read-only (when this process may mount). No part is
 * imitated. The app is built once and never restarted.
 */
let pg: OwnedPostgres;
let gen: AvatarGen;
let host: HostApp;
let server: RunningServer;
let dataDir: string;
let storageRoot: string;
let mounted = false;
let task: TaskView;
let browser: Client; // logged-in session
let api: Client; // API token
const logLines: string[] = [];

function tryMountTmpfs(dir: string): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  pg = await startOwnedPostgres();
  dataDir = mkdtempSync(join(tmpdir(), 'avatargen-outage-'));
  storageRoot = join(dataDir, 'storage');
  mkdirSync(storageRoot);
  mounted = tryMountTmpfs(storageRoot);
  const config = { DATABASE_URL: pg.url, DATA_DIR: dataDir, LOG_LEVEL: 'info' as const, IMAGE_PROCESSOR_THREADS: 1 };
  // core's logger, as in production: it knows the configured secrets (the database password)
  const logger = createLogger(
    config,
    new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    }),
  );
  gen = await createAvatarGen({
    config,
    plugins: [localPlugin({ imageSize: 64 }), imageOpencvPlugin({ threads: 1 }), filesystemStoragePlugin({ root: storageRoot })],
    pipeline: FAST_PIPELINE,
    logger,
  });
  host = createApp(gen, { secretKey: SECRET, healthCacheMs: 300 });
  server = await listen(host, { port: 0, hostname: '127.0.0.1' });
  const user = await gen.users.create({ email: 'ops@example.com', password: PASSWORD });
  task = await gen.tasks.submit({ description: 'Lighthouse keepers', language: 'en', count: 10, imagesPerPersona: 4 }, { userId: user.id });
  api = new Client(server.url, { authorization: `Bearer ${(await gen.users.createToken(user.id, 'outage')).token}` });
  browser = new Client(server.url);
  expect((await browser.login('ops@example.com', PASSWORD)).status).toBe(303);
}, 60_000);

afterAll(async () => {
  await server?.close(1000);
  if (pg && !pg.running) await pg.start().catch(() => undefined); // so gen closes cleanly
  await gen?.close();
  await pg?.close();
  if (mounted) execFileSync('umount', ['-l', storageRoot], { stdio: 'ignore' });
  rmSync(dataDir, { recursive: true, force: true });
}, 60_000);

/** A page, an API route, a dataset route (page and API), the login page, and a POST with CSRF. */
function requests(): Array<[string, () => Promise<Reply>]> {
  return [
    ['page /dashboard', () => browser.get('/dashboard')],
    ['page /datasets/:id', () => browser.get(`/datasets/${task.id}`)],
    ['page /login (anonymous)', () => new Client(server.url).get('/login')],
    ['API /api/v1/tasks (token)', () => api.get('/api/v1/tasks')],
    ['API /api/v1/datasets/:id (token)', () => api.get(`/api/v1/datasets/${task.id}`)],
    ['API /api/v1/stats (session)', () => browser.get('/api/v1/stats')],
    [
      'POST /generate (session + CSRF)',
      () => browser.post('/generate', { description: 'During the outage', language: 'en', count: '10', imagesPerPersona: '4' }),
    ],
  ];
}

describe('PostgreSQL goes away and comes back', () => {
  it('answers 503 with Retry-After (never 500) while it is down, and 200 again once it is back, without a restart', async () => {
    for (const [name, send] of requests().slice(0, 6)) expect((await send()).status, name).toBe(200);
    const lastAnswered = Date.now(); // what those requests read is remembered from before then
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);

    await pg.stop();
    // The time must pass: past the short memory of sessions and tokens (authCacheMs, 1 s), so every
    // request asks the database. The stop took part of it already.
    await new Promise((r) => setTimeout(r, Math.max(0, lastAnswered + 1_050 - Date.now())));
    const password = decodeURIComponent(new URL(pg.url).password);
    for (const [name, send] of requests()) {
      const reply = await send();
      expect(reply.status, name).toBe(503);
      const retryAfter = Number(reply.headers.get('retry-after'));
      expect(retryAfter, name).toBeGreaterThanOrEqual(1);
      expect(retryAfter, name).toBeLessThanOrEqual(30);
      expect(reply.text, name).not.toContain(password);
      expect(reply.text, name).not.toMatch(/postgres(ql)?:\/\/|ECONNREFUSED|127\.0\.0\.1:\d+/);
      if (name.startsWith('API')) {
        expect(reply.json(), name).toEqual({ error: expect.stringContaining('temporarily unavailable'), requestId: expect.any(String) });
      } else {
        expect(reply.headers.get('content-type'), name).toContain('text/html');
        expect(reply.text, name).toContain('Temporarily unavailable');
        expect(reply.text, name).not.toContain(browser.csrf); // no session, no form tokens on this page
      }
    }
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(503);
    expect(health.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await health.json()).toEqual({ status: 'unavailable', database: false, storage: true });

    await pg.start();
    for (const [name, send] of requests().slice(0, 6)) {
      await expect.poll(async () => (await send()).status, { timeout: 20_000, interval: 100, message: name }).toBe(200);
    }
    await expect
      .poll(async () => (await fetch(`${server.url}/healthz`)).json(), { timeout: 5000, interval: 100 })
      .toEqual({ status: 'ok', database: true, storage: true });
    expect((await browser.get('/dashboard')).text).toContain('ops@example.com'); // the same session, still logged in

    // the log says what happened, by error code, and holds no secret
    const unavailable = logLines.filter((l) => l.includes('"database unavailable"'));
    expect(unavailable.length).toBeGreaterThanOrEqual(7);
    expect(JSON.parse(unavailable[0] as string)).toMatchObject({ status: 503, code: expect.any(String) });
    for (const line of logLines) {
      expect(line).not.toContain(password);
      expect(line).not.toContain(pg.url);
    }
    expect(logLines.some((l) => l.includes('"status":500'))).toBe(false);
  }, 60_000);
});

describe('/healthz', () => {
  it('writes and deletes a probe object, once for a burst of checks', async () => {
    const storage = gen.port('objectStorage');
    const puts = vi.spyOn(storage, 'put');
    try {
      // The time must pass: a check serves every request for healthCacheMs (300 ms here), and the
      // burst below must start a fresh one, not be served the last test's
      await new Promise((r) => setTimeout(r, 350));
      const replies = await Promise.all(Array.from({ length: 20 }, () => fetch(`${server.url}/healthz`)));
      expect(replies.map((r) => r.status)).toEqual(Array(20).fill(200));
      expect(puts.mock.calls.map(([key]) => key)).toEqual([host.health.probeKey]);
      expect(host.health.probeKey).toMatch(/^healthz\/[\w.-]+-\d+$/);
      const left = [];
      for await (const object of storage.list('healthz/')) left.push(object.key);
      expect(left).toEqual([]);
    } finally {
      puts.mockRestore();
    }
  });

  it('says 503 with storage false when the storage folder refuses writes (a read-only tmpfs), and 200 once it takes them again', async () => {
    // No silent skip: like the other fault tests, say what is needed.
    if (!mounted) throw new Error('this test needs root to mount a tmpfs (mount -t tmpfs); run the tests as root, as CI does');
    execFileSync('mount', ['-o', 'remount,ro', storageRoot]);
    try {
      // once the last check (kept healthCacheMs, 300 ms) has expired, the next one finds the storage refusing writes
      await expect
        .poll(
          async () => {
            const reply = await fetch(`${server.url}/healthz`);
            return { status: reply.status, body: await reply.json() };
          },
          { timeout: 5000, interval: 50 },
        )
        .toEqual({ status: 503, body: { status: 'unavailable', database: true, storage: false } });
    } finally {
      execFileSync('mount', ['-o', 'remount,rw', storageRoot]);
    }
    await expect.poll(async () => (await fetch(`${server.url}/healthz`)).status, { timeout: 5000, interval: 100 }).toBe(200);
  });
});
