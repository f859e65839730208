/**
 * Real nginx (the shipped site file) on loopback in front of two `avatargen web` processes that
 * share one PostgreSQL, one DATA_DIR and one SECRET_KEY, as the systemd units run them.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '@avatargen/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HostProcess, runCommand, startWeb } from './hosts.js';
import { findNginx, freePort, plainGet, preparePrefix, PUBLIC_DIR, removePrefix, startNginx, stopChild, TlsClient } from './support.js';

const nginx = findNginx();
const ADMIN = { email: 'ops@example.com', password: 'correct horse battery' };

let db: TestDatabase | undefined;
let dataDir = '';
let prefix = '';
let nginxProcess: ChildProcess | undefined;
const hosts: HostProcess[] = [];
let client: TlsClient;
let httpPort = 0;

// Never leave nginx or a host running, even when the run is interrupted.
const killAll = () => {
  nginxProcess?.kill('SIGKILL');
  for (const host of hosts) host.child.kill('SIGKILL');
};
process.once('exit', killAll);

describe('nginx in front of two avatargen web processes', () => {
  beforeAll(async () => {
    expect(nginx, 'nginx must be installed in CI (.ci/run installs it)').toBeTruthy();
    db = await createTestDatabase('avatargen_deploy');
    dataDir = mkdtempSync(join(tmpdir(), 'avatargen-deploy-data-'));
    const env = {
      DATABASE_URL: db.url,
      DATA_DIR: dataDir,
      SECRET_KEY: randomBytes(36).toString('base64url'),
      TRUST_PROXY: 'true',
      NODE_ENV: 'production',
      LOG_LEVEL: 'info',
      IMAGE_PROCESSOR_THREADS: '1',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    };
    await runCommand(['migrate'], env);
    await runCommand(['user', 'create', '--email', ADMIN.email, '--password-stdin', '--admin'], env, `${ADMIN.password}\n`);
    const ports = [await freePort(), await freePort()];
    hosts.push(...(await Promise.all(ports.map((port) => startWeb(port, env)))));
    httpPort = await freePort();
    const paths = preparePrefix({ httpPort, httpsPort: await freePort(), upstreamPorts: ports });
    prefix = paths.prefix;
    nginxProcess = await startNginx(nginx as string, paths.prefix, paths.conf, paths.httpsPort);
    client = new TlsClient(paths.httpsPort, paths.caCert);
  });

  afterAll(async () => {
    await stopChild(nginxProcess, 'SIGQUIT');
    await Promise.all(hosts.map((host) => stopChild(host.child)));
    process.off('exit', killAll);
    await db?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    if (prefix) removePrefix(prefix);
  });

  it('redirects plain HTTP to HTTPS', async () => {
    const reply = await plainGet(httpPort, '/login?next=%2Fdatasets');
    expect(reply.status).toBe(301);
    expect(reply.headers.location).toBe('https://avatars.example.com/login?next=%2Fdatasets');
  });

  it('logs in through nginx; the host sees the client address nginx forwards, not a spoofed one', async () => {
    const page = await client.request('GET', '/login');
    expect(page.status).toBe(200);
    expect(client.csrf).not.toBe('');
    // Each security header exactly once (nginx's copy), the host's CSP passed through.
    expect(page.headers['x-frame-options']).toBe('DENY');
    expect(page.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
    expect(page.headers['content-security-policy']).toContain("frame-ancestors 'none'");

    const wrong = await client.request('POST', '/login', {
      form: { email: ADMIN.email, password: 'not the password' },
      headers: { 'x-forwarded-for': '203.0.113.77' },
    });
    expect(wrong.status).toBe(401);
    // Log lines arrive through the processes' stdout pipes, possibly after the response.
    await expect.poll(() => hosts.flatMap((h) => h.logs()).filter((l) => l.msg === 'login failed').length).toBe(1);
    const failures = hosts.flatMap((h) => h.logs()).filter((l) => l.msg === 'login failed');
    expect(failures[0]?.ip).toBe('127.0.0.2');
    expect(hosts.flatMap((h) => h.lines).join('\n')).not.toContain('203.0.113.77');

    const login = await client.request('POST', '/login', { form: { email: ADMIN.email, password: ADMIN.password } });
    expect(login.status).toBe(303);
    expect(login.headers.location).toBe('/dashboard');
    // X-Forwarded-Proto reached the host: it marks the session cookie Secure.
    const cookie = (login.headers['set-cookie'] ?? []).find((c) => c.startsWith('avatargen.sid='));
    expect(cookie).toMatch(/;\s*secure/i);
    expect(cookie).toMatch(/;\s*httponly/i);
  });

  it('keeps the session and its CSRF token across both processes (sessions in PostgreSQL)', async () => {
    for (let i = 0; i < 6; i++) {
      const dashboard = await client.request('GET', '/dashboard');
      expect(dashboard.status).toBe(200);
    }
    for (const host of hosts) {
      const served = () => host.logs().filter((l) => l.msg === 'request' && l.path === '/dashboard' && typeof l.userId === 'number').length;
      await expect.poll(served, { message: `port ${host.port} served no logged-in request` }).toBeGreaterThan(0);
    }
  });

  let taskId = '';
  it('accepts a CSRF-protected POST and refuses it without the token', async () => {
    const body = { description: 'Librarians in Lisbon', language: 'pt', count: 10, imagesPerPersona: 4 };
    const refused = await client.request('POST', '/api/v1/tasks', { json: body, csrf: false });
    expect(refused.status).toBe(403);
    // Several posts so that both processes check a token they did not issue.
    for (let i = 0; i < 2; i++) {
      const created = await client.request('POST', '/api/v1/tasks', { json: body });
      expect(created.status, created.text).toBe(201);
      taskId = (JSON.parse(created.text) as { id: string }).id;
    }
    const posted = () =>
      hosts
        .flatMap((h) => h.logs())
        .filter((l) => l.msg === 'request' && l.method === 'POST' && l.path === '/api/v1/tasks' && l.status === 201).length;
    await expect.poll(posted).toBe(2);
  });

  it('passes server-sent events through as they happen, on both event routes', async () => {
    const api = await client.events(`/api/v1/tasks/${encodeURIComponent(taskId)}/events`);
    const page = await client.events(`/datasets/${encodeURIComponent(taskId)}/events`);
    try {
      expect(api.res.headers['content-type']).toContain('text/event-stream');
      expect(JSON.parse((await api.next('progress')).data)).toMatchObject({ id: taskId });
      expect(JSON.parse((await page.next('progress')).data)).toMatchObject({ id: taskId });
      expect(api.isOpen).toBe(true);
      // A change made through the other route reaches the open streams at once (no buffering).
      const cancelled = await client.request('POST', `/api/v1/tasks/${encodeURIComponent(taskId)}/cancel`, { json: {} });
      expect(cancelled.status, cancelled.text).toBe(200);
      expect(JSON.parse((await api.next('done')).data)).toMatchObject({ id: taskId, status: 'cancelled' });
      expect(JSON.parse((await page.next('done')).data)).toMatchObject({ id: taskId, status: 'cancelled' });
    } finally {
      api.close();
      page.close();
    }
  });

  it('serves static assets itself, with its own headers', async () => {
    const css = await client.request('GET', '/static/app.css');
    expect(css.status).toBe(200);
    expect(css.headers['x-served-by']).toBe('nginx');
    expect(css.headers['content-type']).toContain('text/css');
    expect(css.headers['cache-control']).toBe('public, max-age=3600, must-revalidate');
    // the versioned URL the pages link to is cached for good
    // any page of the site (the client may be logged in or not at this point)
    const dashboard = await client.request('GET', '/dashboard');
    const html = dashboard.status === 200 ? dashboard.text : (await client.request('GET', '/login')).text;
    const versioned = /href="(\/static\/app\.css\?v=[\w-]+)"/.exec(html)?.[1];
    expect(versioned).toBeDefined();
    const cached = await client.request('GET', versioned as string);
    expect(cached.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(cached.text).toBe(css.text);
    expect(css.headers['x-content-type-options']).toBe('nosniff');
    expect(css.text).toBe(readFileSync(join(PUBLIC_DIR, 'app.css'), 'utf8'));
    const revalidated = await client.request('GET', '/static/app.css', { headers: { 'if-none-match': String(css.headers.etag) } });
    expect(revalidated.status).toBe(304);
    // Proxied answers do not carry nginx's marker.
    const health = await client.request('GET', '/healthz');
    expect(health.status).toBe(200);
    expect(health.headers['x-served-by']).toBeUndefined();
    expect(JSON.parse(health.text)).toMatchObject({ status: 'ok', database: true, storage: true });
    // nginx's $request_id reaches the host, which logs the request under it (one id in both logs).
    const requestId = String(health.headers['x-request-id']);
    expect(requestId).toMatch(/^[0-9a-f]{32}$/);
    await expect.poll(() => hosts.flatMap((h) => h.logs()).some((l) => l.reqId === requestId && l.path === '/healthz')).toBe(true);
  });
});
