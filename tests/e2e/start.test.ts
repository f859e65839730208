import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AvatargenProcess, freePort, runAvatargen } from '../support/avatargen.js';
import { Client, collectEvents, readZip } from '../support/web-client.js';

/**
 * `avatargen start` on an empty folder with no configuration at all (only a free port, so
 * parallel runs do not collide): embedded PostgreSQL, filesystem storage, provider-local, a
 * first admin with a printed password. Driven over HTTP with login and CSRF.
 */
let dir: string;
let port: number;
let app: AvatargenProcess | undefined;

const cookieHeader = (c: Client) => [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ');

function portOpen(p: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(p, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'avatargen-e2e-start-'));
  chmodSync(dir, 0o755); // as root, PostgreSQL runs as "postgres", which must reach the folder
  // Run from sources, image-opencv starts its worker threads with `--import tsx`, which Node
  // resolves from the current folder: give the empty folder a way to find tsx (no configuration).
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(fileURLToPath(new URL('../../node_modules/tsx', import.meta.url)), join(dir, 'node_modules', 'tsx'));
  port = await freePort();
});
afterAll(async () => {
  if (process.env.E2E_DEBUG) console.log(app?.output());
  await app?.stop(10_000);
  rmSync(dir, { recursive: true, force: true });
});

describe('avatargen start with zero setup', () => {
  let password: string;
  let base: string;
  let pgPort: number;

  it('starts: embedded PostgreSQL, a secret key, a first admin with a password printed once, the URL', async () => {
    app = runAvatargen(['start'], { cwd: dir, env: { APP_PORT: String(port) } });
    const [, url] = await app.waitFor(/listening on (http:\/\/\S+)/, 90_000);
    base = url as string;
    expect(base).toBe(`http://127.0.0.1:${port}`);
    const out = app.output();
    expect(out).toContain('email:    admin@localhost');
    password = (/password: (\S+)/.exec(out)?.[1] ?? '') as string;
    expect(password.length).toBeGreaterThanOrEqual(16);
    expect(out).toContain('database: embedded PostgreSQL');
    expect(out).toContain('storage: storage-filesystem (');
    expect(statSync(join(dir, '.avatargen', 'secret-key')).mode & 0o777).toBe(0o600);
    expect(existsSync(join(dir, '.avatargen', 'pg', 'PG_VERSION'))).toBe(true);
    pgPort = Number(/"port":(\d+),"database":"avatargen"/.exec(out)?.[1]);
    expect(pgPort).toBeGreaterThan(0);
    const health = await fetch(`${base}/healthz`);
    expect(await health.json()).toEqual({ status: 'ok', database: true, storage: true });
  });

  it('completes a 10 x 4 task submitted through the website, and exports it', async () => {
    const c = new Client(base);
    expect((await c.login('admin@localhost', password)).status).toBe(303);
    await c.get('/generate');
    const submitted = await c.post('/generate', {
      description: 'Harbour pilots in Hamburg',
      language: 'de',
      count: '10',
      imagesPerPersona: '4',
    });
    expect(submitted.status).toBe(303);
    const page = submitted.location as string;
    const id = page.split('/').pop() as string;
    const detail = await c.get(page);
    expect(detail.status).toBe(200);
    const events = await fetch(`${base}${page}/events`, { headers: { cookie: cookieHeader(c) } });
    const stream = await collectEvents(events, (e) => e.event === 'done', 120_000);
    const done = JSON.parse(stream.at(-1)?.data ?? '{}');
    expect(done).toMatchObject({ id, status: 'completed', progress: { percent: 100, personasStored: 10, imagesStored: 40 } });

    const finished = await c.get(page);
    expect(finished.text.match(/<article class="panel persona"/g)).toHaveLength(10);
    const thumb = /<img src="(\/thumbs\/[^"]+)"/.exec(finished.text)?.[1] as string;
    expect((await c.get(thumb)).headers.get('content-type')).toBe('image/webp');
    const full = /data-full="(\/media\/[^"]+)"/.exec(finished.text)?.[1] as string;
    expect((await fetch(`${base}${full}`, { headers: { cookie: cookieHeader(c) } })).status).toBe(200);

    expect((await c.post(`${page}/export`, { format: 'zip' }, { csrf: false })).status).toBe(403);
    const zip = await fetch(`${base}${page}/export`, {
      method: 'POST',
      headers: { cookie: cookieHeader(c), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: c.csrf, format: 'zip' }).toString(),
    });
    expect(zip.status).toBe(200);
    const entries = await readZip(Buffer.from(await zip.arrayBuffer()));
    expect([...entries.keys()].filter((k) => k.endsWith('/details.json'))).toHaveLength(10);
    expect([...entries.keys()].filter((k) => /\/images\/\d\d\.\w+$/.test(k))).toHaveLength(50);
    expect(entries.has('manifest.json')).toBe(true);
  });

  it('generate beside the running site uses its database: the dataset shows on the site', async () => {
    const out = join(dir, 'beside.zip');
    const cli = runAvatargen(['generate', '-d', 'Ferry crews in Oslo', '-l', 'nb', '-n', '10', '-i', '4', '-o', out], { cwd: dir });
    const code = await cli.exited;
    expect(code, cli.output().slice(-3000)).toBe(0);
    expect(cli.output()).toMatch(/Using the database of the site running on this folder \(process \d+\)/);
    expect(statSync(out).size).toBeGreaterThan(0);
    const c = new Client(base);
    expect((await c.login('admin@localhost', password)).status).toBe(303);
    const tasks = (await c.get('/api/v1/tasks')).json() as { tasks: Array<{ description: string; status: string }> };
    expect(tasks.tasks.find((t) => t.description === 'Ferry crews in Oslo')?.status).toBe('completed');
  });

  it('stops on SIGTERM, and PostgreSQL with it', async () => {
    const code = await app?.stop(30_000);
    expect(code).toBe(0);
    expect(app?.output()).toContain('avatargen stopped');
    expect(await portOpen(port)).toBe(false);
    expect(await portOpen(pgPort)).toBe(false);
  });

  it('starts again on the same folder, through the command as npm start runs it: same data, no new admin, the same password works', async () => {
    // More image threads than cores, so the warning shows the libuv pool the command sized (cores + 4).
    app = runAvatargen(['start'], {
      cwd: dir,
      env: { APP_PORT: String(port), IMAGE_PROCESSOR_THREADS: '64', LOG_FORMAT: 'pretty' },
      command: true,
      group: true,
    });
    await app.waitFor(/listening on http/, 90_000);
    expect(app.output()).toContain(`64 worker threads share libuv's ${availableParallelism() + 4} threads`);
    // LOG_FORMAT=pretty: lines for people, not JSON
    expect(app.output()).toMatch(/INFO.*embedded PostgreSQL started/);
    expect(app.output()).not.toContain('{"level"');
    expect(app.output()).not.toContain('First admin account created');
    // the operator is reminded which account is the admin, and how to reset its password
    expect(app.output()).toContain(
      'Admin account: admin@localhost (forgot the password? "avatargen user set-password --email admin@localhost")',
    );
    const c = new Client(base);
    expect((await c.login('admin@localhost', password)).status).toBe(303);
    const tasks = (await c.get('/api/v1/tasks')).json() as { total: number; tasks: Array<{ status: string }> };
    expect(tasks.total).toBe(2); // the site's and the one generate made beside it
    expect(tasks.tasks.every((t) => t.status === 'completed')).toBe(true);
    // Ctrl+C in the terminal: the command, the site and its embedded PostgreSQL all get SIGINT.
    const before = app.output().length;
    expect(await app.interrupt()).toBe(0);
    const after = app.output().slice(before);
    expect(after).toContain('avatargen stopped');
    expect(after, after).not.toMatch(/WARN|ERROR|FATAL/); // the database going away with us is expected
  });
});
