import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { type Readable, Writable } from 'node:stream';
import { parse } from 'csv-parse/sync';
import {
  CSV_COLUMNS,
  createLogger,
  ExportsService,
  generationRequestSchema,
  listLanguages,
  settingsSchema,
  TARGET_DIMENSIONS,
  type TaskView,
  targetsSchema,
} from '@avatargen/core';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_COOKIE } from '../src/app.js';
import { apiRouter } from '../src/routes/api.js';
import { Client } from './support/client.js';
import { PASSWORD, type Site, startSite, waitForStatus } from './support/harness.js';
import { collectEvents } from './support/sse.js';
import { readZip } from './support/zip.js';

let site: Site;
let api: Client; // Bearer token of the admin
let browser: Client; // session of the admin
let token: string;
const logLines: string[] = [];

beforeAll(async () => {
  // The worker starts inside the SSE test, after the stream is open, so every event is seen.
  const logger = createLogger(
    { LOG_LEVEL: 'info' },
    new Writable({
      write(chunk, _encoding, done) {
        logLines.push(String(chunk));
        done();
      },
    }),
  );
  site = await startSite({ worker: false, logger, config: { PUBLIC_URL: 'https://avatars.example.com' } });
  const admin = await site.gen.users.create({ email: 'ops@example.com', password: PASSWORD, isAdmin: true });
  await site.gen.users.create({ email: 'viewer@example.com', password: PASSWORD });
  token = (await site.gen.users.createToken(admin.id, 'tests')).token;
  api = new Client(site.url, { authorization: `Bearer ${token}` });
  browser = new Client(site.url);
  expect((await browser.login('ops@example.com', PASSWORD)).status).toBe(303);
  await browser.get('/dashboard');
});
afterAll(() => site?.close());

async function readStream(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const REQUEST = {
  description: 'Night-shift nurses in Manchester — A&E, Zürich exchange',
  language: 'en-GB',
  count: 20,
  imagesPerPersona: 8,
};

describe('server-sent events', () => {
  it('streams progress while a task runs, then done', async () => {
    const created = await api.request('POST', '/api/v1/tasks', { json: REQUEST });
    expect(created.status).toBe(201);
    const id = (created.json() as TaskView).id;
    const res = await fetch(new URL(`/api/v1/tasks/${id}/events`, site.url), { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(res.headers.get('cache-control')).toContain('no-cache');
    const collecting = collectEvents(res, (e) => e.event === 'done');
    await site.gen.worker.start();
    const events = await collecting;
    const progress = events.filter((e) => e.event === 'progress').map((e) => JSON.parse(e.data));
    expect(progress[0]).toMatchObject({ id, progress: { percent: 0 } });
    expect(['pending', 'generating-data']).toContain(progress[0].status);
    const percents = progress.map((p) => p.progress.percent as number);
    expect(percents.some((p) => p > 0 && p < 100)).toBe(true);
    for (let i = 1; i < percents.length; i++) expect(percents[i]).toBeGreaterThanOrEqual(percents[i - 1] as number);
    expect(new Set(progress.map((p) => p.status))).toContain('generating-images');
    const done = JSON.parse(events.at(-1)?.data as string);
    expect(done).toMatchObject({ id, status: 'completed', progress: { percent: 100, personasStored: 20, imagesStored: 160 } });
  });

  it('a finished task sends its state and done at once; the page route streams too', async () => {
    const [task] = (await site.gen.tasks.list({})).tasks;
    const res = await fetch(new URL(`/datasets/${task?.id}/events`, site.url), {
      headers: { cookie: [...browser.cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    const events = await collectEvents(res, (e) => e.event === 'done', 10_000);
    expect(events.map((e) => e.event)).toEqual(['progress', 'done']);
  });
});

describe('tasks', () => {
  it('validates a request with a message per field (422), and malformed JSON (400)', async () => {
    const bad = await api.request('POST', '/api/v1/tasks', {
      json: { description: '', language: 'klingon', count: 'many', imagesPerPersona: 3 },
    });
    expect(bad.status).toBe(422);
    expect(bad.json()).toMatchObject({
      error: expect.any(String),
      fields: {
        description: 'Describe the people to generate.',
        language: 'Choose a bio language from the list.',
        count: 'Enter a number of personas from 10 to 300.',
        imagesPerPersona: 'Images per persona must be one of 4, 8, 12, 16, 20.',
      },
      requestId: bad.headers.get('x-request-id'),
    });
    const malformed = await fetch(new URL('/api/v1/tasks', site.url), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: '{"description": ',
    });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ error: expect.stringContaining('malformed') });
    const huge = await fetch(new URL('/api/v1/tasks', site.url), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ...REQUEST, description: 'x'.repeat(1_100_000) }),
    });
    expect(huge.status).toBe(413);
    expect(await huge.json()).toMatchObject({ error: 'The request body is larger than 1 MB.' });
    // no credentials at all: 401 on every API route, state changes included (not the CSRF 403)
    for (const [method, path] of [
      ['POST', '/api/v1/tasks'],
      ['PATCH', '/api/v1/settings'],
      ['DELETE', '/api/v1/tasks/x'],
    ]) {
      const anonymous = await fetch(new URL(path as string, site.url), {
        method,
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      expect(anonymous.status, `${method} ${path}`).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toBe('Bearer');
    }
  });

  it('creates, lists, cancels, retries and deletes', async () => {
    await site.gen.settings.update({ max_concurrent_tasks: 1 });
    // Two tasks: with one slot, the second stays pending while the first runs.
    const first = (await api.request('POST', '/api/v1/tasks', { json: { ...REQUEST, count: 10, imagesPerPersona: 4 } })).json() as TaskView;
    const created = await api.request('POST', '/api/v1/tasks', { json: { ...REQUEST, count: 10, imagesPerPersona: 4 } });
    expect(created.status).toBe(201);
    const task = created.json() as TaskView;
    expect(created.location).toBe(`/api/v1/tasks/${task.id}`);
    expect(task).toMatchObject({ count: 10, imagesPerPersona: 4, language: { code: 'en-GB', name: 'English (UK)' } });
    const list = (await api.get('/api/v1/tasks?limit=2')).json() as { tasks: TaskView[]; total: number };
    expect(list.total).toBe(3);
    expect(list.tasks.map((t) => t.id)).toEqual([task.id, first.id]);
    expect((await api.get('/api/v1/tasks?limit=0')).status).toBe(422);
    expect((await api.get('/api/v1/tasks?status=nope')).json()).toMatchObject({ fields: { status: expect.any(String) } });
    const cancelled = await api.request('POST', `/api/v1/tasks/${task.id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect((cancelled.json() as TaskView).status).toBe('cancelled');
    const again = await api.request('POST', `/api/v1/tasks/${task.id}/cancel`);
    expect(again.status).toBe(409);
    expect(again.json()).toMatchObject({ error: 'A task cannot go from cancelled to cancelled' });
    const retried = await api.request('POST', `/api/v1/tasks/${task.id}/retry`);
    expect(retried.status).toBe(200);
    expect((retried.json() as TaskView).status).toBe('pending');
    await waitForStatus(site.gen, task.id, ['completed']);
    expect((await api.request('DELETE', `/api/v1/tasks/${task.id}`)).status).toBe(204);
    expect((await api.get(`/api/v1/tasks/${task.id}`)).status).toBe(404);
    await waitForStatus(site.gen, first.id, ['completed']);
    await site.gen.settings.update({ max_concurrent_tasks: 2 });
  });

  it('pages personas and reports demographics and stats', async () => {
    const id = (await site.gen.tasks.list({ status: 'completed', limit: 50 })).tasks.find((t) => t.count === 20)?.id as string;
    const page = (await api.get(`/api/v1/tasks/${id}/personas?page=2&perPage=15`)).json() as {
      personas: Array<Record<string, unknown> & { images: Array<{ url: string; thumbnailUrl: string }> }>;
      total: number;
      pages: number;
    };
    expect(page).toMatchObject({ total: 20, pages: 2, page: 2, perPage: 15 });
    expect(page.personas).toHaveLength(5);
    const persona = page.personas[0] as (typeof page.personas)[0];
    expect(Object.keys(persona)).toEqual(
      expect.arrayContaining(['firstName', 'lastName', 'gender', 'ethnicity', 'age', 'bios', 'jobTitle', 'about', 'images']),
    );
    expect(persona.images).toHaveLength(8);
    expect(persona.images[0]?.url).toMatch(/^\/media\/tasks\//);
    expect(persona.images[0]?.thumbnailUrl).toMatch(/^\/thumbs\/tasks\//);
    expect(JSON.stringify(page)).not.toContain('"key"');
    expect((await api.get(`/api/v1/tasks/${id}/personas?perPage=101`)).status).toBe(422);
    const demo = (await api.get(`/api/v1/tasks/${id}/demographics`)).json() as { gender: { f: number; m: number } };
    expect(demo.gender.f + demo.gender.m).toBe(20);
    const answer = await api.get(`/api/v1/datasets/${id}`);
    const detail = answer.json() as { task: TaskView; personas: { personas: unknown[] } };
    expect(detail.task.id).toBe(id);
    expect(detail.task.description).toBe(REQUEST.description);
    expect(detail.personas.personas).toHaveLength(20);
    // the cached answer, gzipped for a client that accepts it (fetch does), typed as JSON
    const again = await api.get(`/api/v1/datasets/${id}`);
    for (const reply of [answer, again]) {
      expect(reply.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(reply.headers.get('content-encoding')).toBe('gzip');
      expect(reply.headers.get('vary')).toMatch(/accept-encoding/i);
      expect(Number(reply.headers.get('content-length'))).toBeLessThan(Buffer.byteLength(reply.text) / 3);
    }
    expect(again.text).toBe(answer.text);
    // and as plain UTF-8 bytes for one that does not: the same JSON, measured in bytes, not characters
    for (const encoding of ['identity', 'br']) {
      const plain = await api.get(`/api/v1/datasets/${id}`, { 'accept-encoding': encoding });
      expect(plain.headers.get('content-encoding')).toBeNull();
      expect(Number(plain.headers.get('content-length'))).toBe(Buffer.byteLength(plain.text));
      expect(plain.text).toBe(answer.text);
    }
    const stats = (await api.get('/api/v1/stats')).json() as { tasks: number; days: unknown[] };
    expect(stats.tasks).toBe(2);
    expect(stats.days).toHaveLength(7);
  });
});

describe('exports', () => {
  let id: string;
  beforeAll(async () => {
    id = (await site.gen.tasks.list({ status: 'completed', limit: 50 })).tasks.find((t) => t.count === 20)?.id as string;
  });

  it('JSON holds the task and every persona', async () => {
    const reply = await api.request('POST', `/api/v1/tasks/${id}/exports/json`);
    expect(reply.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const body = reply.json() as { task: TaskView; personas: Array<{ images: unknown[]; bios: Record<string, string> }> };
    expect(body.task.id).toBe(id);
    expect(body.personas).toHaveLength(20);
    expect(body.personas[0]?.images).toHaveLength(8);
    // picture links are absolute, on the site's PUBLIC_URL (the filesystem storage serves /media/...)
    expect(JSON.stringify(body.personas[0]?.images)).toMatch(/"https:\/\/avatars\.example\.com\/media\/tasks\//);
    expect(Object.keys(body.personas[0]?.bios ?? {})).toEqual(['facebook', 'instagram', 'x', 'tiktok']);
  });

  it('the quality report hashes every stored picture with the real image pool, and refuses a bad threshold', async () => {
    const reply = await api.request('GET', `/api/v1/tasks/${id}/quality`);
    expect(reply.status).toBe(200);
    const report = reply.json() as {
      taskId: string;
      texts: { checked: number };
      pictures: { hashed: number; unhashed: number };
      flaggedPersonas: number[];
    };
    expect(report.taskId).toBe(id);
    expect(report.texts.checked).toBe(20 * 5);
    expect(report.pictures).toMatchObject({ hashed: 20 * 8 + 20, unhashed: 0 });
    expect((await api.request('GET', `/api/v1/tasks/${id}/quality?textThreshold=2`)).status).toBe(422);
    expect((await api.request('GET', '/api/v1/tasks/nosuchtask/quality')).status).toBe(404);
  });

  it('CSV has the header and one row per persona', async () => {
    const reply = await browser.request('POST', `/datasets/${id}/export`, { form: { format: 'csv' } });
    expect(reply.status).toBe(200);
    expect(reply.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    const rows: string[][] = parse(reply.text, { bom: true });
    expect(rows[0]).toEqual([...CSV_COLUMNS]);
    const personas = await site.gen.personas.list(id, { perPage: 100 });
    expect(rows.slice(1).map((r) => r.slice(0, 3))).toEqual(personas.personas.map((p) => [String(p.id), p.firstName, p.lastName]));
  });

  it('ZIP holds details.json, details.csv and the images of every persona, and a manifest whose sums match', async () => {
    const res = await fetch(new URL(`/api/v1/tasks/${id}/exports/zip`, site.url), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.headers.get('content-type')).toBe('application/zip');
    expect(res.headers.get('content-disposition')).toBe(`attachment; filename="avatargen-${id}.zip"`);
    const entries = await readZip(Buffer.from(await res.arrayBuffer()));
    const manifest = JSON.parse(entries.get('manifest.json')?.toString() ?? '{}') as {
      files: Array<{ path: string; sha256: string; size: number }>;
      missing: string[];
    };
    expect(manifest.missing).toEqual([]);
    const folders = new Set([...entries.keys()].filter((k) => k.startsWith('profiles/')).map((k) => k.split('/')[1]));
    expect(folders.size).toBe(20);
    for (const folder of folders) {
      expect(entries.has(`profiles/${folder}/details.json`)).toBe(true);
      expect(entries.has(`profiles/${folder}/details.csv`)).toBe(true);
      const images = [...entries.keys()].filter((k) => k.startsWith(`profiles/${folder}/images/`));
      expect(images).toHaveLength(9); // base selfie + 8
    }
    expect(manifest.files).toHaveLength(entries.size - 1);
    for (const file of manifest.files) {
      const data = entries.get(file.path) as Buffer;
      expect(data.length, file.path).toBe(file.size);
      expect(createHash('sha256').update(data).digest('hex'), file.path).toBe(file.sha256);
    }
  });

  it('sends a ZIP of many MB whole to a slow client (piece memory reused only once written out)', async () => {
    const created = await api.request('POST', '/api/v1/tasks', { json: { ...REQUEST, count: 10, imagesPerPersona: 4 } });
    const bigId = (created.json() as TaskView).id;
    await waitForStatus(site.gen, bigId, ['completed']);
    const storage = site.gen.port('objectStorage');
    for await (const persona of site.gen.personas.all(bigId)) {
      for (const image of [persona.baseImage, ...persona.images]) {
        if (image) writeFileSync(join(site.dataDir, 'storage', image.key), randomBytes(200_000 + Math.floor(Math.random() * 200_000)));
      }
    }
    const expected = await readStream(
      await new ExportsService(site.gen.tasks, site.gen.personas, storage, undefined, site.gen.quality).zip(bigId),
    );
    expect(expected.length).toBeGreaterThan(10_000_000);
    // A client that stops for a moment after every chunk: the server's socket buffer fills up.
    const received = await new Promise<Buffer>((resolve, reject) => {
      const req = request(
        new URL(`/api/v1/tasks/${bigId}/exports/zip`, site.url),
        { method: 'POST', headers: { authorization: `Bearer ${token}` } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => {
            chunks.push(chunk);
            res.pause();
            setTimeout(() => res.resume(), 1);
          });
          res.on('end', () => resolve(Buffer.concat(chunks)));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(received.length).toBe(expected.length);
    expect(received.equals(expected)).toBe(true);
    await site.gen.tasks.delete(bigId); // its noise images are no pictures: out of the later tests' way
  });

  it('refuses an unknown format', async () => {
    expect((await api.request('POST', `/api/v1/tasks/${id}/exports/xml`)).status).toBe(404);
  });
});

describe('settings over the API', () => {
  it('reads, validates and saves (administrators only)', async () => {
    expect((await api.get('/api/v1/settings')).json()).toMatchObject({ max_concurrent_tasks: 2 });
    const bad = await api.request('PATCH', '/api/v1/settings', { json: { max_concurrent_tasks: 99, colour: 'red' } });
    expect(bad.status).toBe(422);
    expect(bad.json()).toMatchObject({ fields: { colour: 'Unknown setting.' } });
    const invalid = await api.request('PATCH', '/api/v1/settings', { json: { max_concurrent_tasks: 99 } });
    expect(invalid.json()).toMatchObject({ fields: { max_concurrent_tasks: 'At most 20 tasks can run at once.' } });
    const ok = await api.request('PATCH', '/api/v1/settings', { json: { randomize_image_style: false } });
    expect(ok.status).toBe(200);
    expect((await site.gen.settings.get()).randomize_image_style).toBe(false);
    const viewer = new Client(site.url);
    await viewer.login('viewer@example.com', PASSWORD);
    await viewer.get('/dashboard');
    expect((await viewer.request('PATCH', '/api/v1/settings', { json: { randomize_image_style: true } })).status).toBe(403);
  });
});

describe('authentication', () => {
  it('session requests need the CSRF header; token requests need none', async () => {
    const body = { json: { ...REQUEST, count: 10, imagesPerPersona: 4 } };
    expect((await browser.request('POST', '/api/v1/tasks', { ...body, csrf: false })).status).toBe(403);
    const withHeader = await browser.request('POST', '/api/v1/tasks', body);
    expect(withHeader.status).toBe(201);
    await site.gen.tasks.cancel((withHeader.json() as TaskView).id);
    expect(api.csrf).toBe('');
  });

  it('refuses unknown, revoked and disabled tokens with 401', async () => {
    expect((await new Client(site.url).get('/api/v1/tasks')).status).toBe(401);
    const unknown = await new Client(site.url, { authorization: 'Bearer agt_not_a_real_token' }).get('/api/v1/tasks');
    expect(unknown.status).toBe(401);
    expect(unknown.headers.get('www-authenticate')).toBe('Bearer');
    const viewer = await site.gen.users.findByEmail('viewer@example.com');
    const { token: viewerToken, view } = await site.gen.users.createToken(viewer?.id as number, 'temp');
    const client = new Client(site.url, { authorization: `Bearer ${viewerToken}` });
    expect((await client.get('/api/v1/tasks')).status).toBe(200);
    // Disabled elsewhere (the CLI, another process): this process notices once its short memory
    // of the token (authCacheMs, 1 s) expires; enabling the account again does not bring it back.
    await site.gen.users.setActive('viewer@example.com', false);
    let refusedAt = 0;
    await expect
      .poll(
        async () => {
          const status = (await client.get('/api/v1/tasks')).status;
          refusedAt = Date.now(); // after the reply: this process remembers the answer from before then
          return status;
        },
        { timeout: 5000, interval: 50 },
      )
      .toBe(401);
    await site.gen.users.setActive('viewer@example.com', true);
    // The time must pass: the refusal just seen is remembered for authCacheMs (1 s); only a request
    // after that asks the database, which is what must still say no.
    await new Promise((r) => setTimeout(r, Math.max(0, refusedAt + 1_050 - Date.now())));
    expect((await client.get('/api/v1/tasks')).status).toBe(401);
    expect((await site.gen.users.listTokens(viewer?.id as number)).find((t) => t.id === view.id)?.revokedAt).toBeInstanceOf(Date);
    // revoked elsewhere: the same
    const { token: second, view: secondView } = await site.gen.users.createToken(viewer?.id as number, 'second');
    const secondClient = new Client(site.url, { authorization: `Bearer ${second}` });
    expect((await secondClient.get('/api/v1/tasks')).status).toBe(200);
    await site.gen.users.revokeToken(viewer?.id as number, secondView.id);
    await expect.poll(async () => (await secondClient.get('/api/v1/tasks')).status, { timeout: 5000, interval: 50 }).toBe(401);
  });

  it('a token counts for the API and image URLs only: on the website it cannot mint tokens or change settings', async () => {
    const admin = await site.gen.users.findByEmail('ops@example.com');
    const tokensBefore = (await site.gen.users.listTokens(admin?.id as number)).length;
    const minted = await api.request('POST', '/settings/tokens', { form: { name: 'minted by a token' } });
    expect(minted.status).toBe(403);
    expect(minted.text).not.toMatch(/agt_[A-Za-z0-9_-]{20,}/);
    expect((await site.gen.users.listTokens(admin?.id as number)).length).toBe(tokensBefore);
    expect((await api.request('POST', '/settings', { form: { max_concurrent_tasks: '9' } })).status).toBe(403);
    expect((await api.get('/settings')).location).toMatch(/^\/login\?next=/);
    // the image URLs that API answers carry do work with the token
    const tasks = (await api.get('/api/v1/tasks?status=completed')).json() as { tasks: TaskView[] };
    const personas = (await api.get(`/api/v1/tasks/${tasks.tasks[0]?.id}/personas`)).json() as {
      personas: Array<{ images: Array<{ url: string; thumbnailUrl: string }> }>;
    };
    const image = personas.personas[0]?.images[0];
    expect((await api.get(image?.url as string)).status).toBe(200);
    expect((await api.get(image?.thumbnailUrl as string)).status).toBe(200);
  });

  it('a token request never creates a session', async () => {
    const reply = await api.get('/api/v1/stats');
    expect(reply.setCookies.filter((c) => c.name.startsWith(SESSION_COOKIE))).toEqual([]);
  });
});

describe('OpenAPI', () => {
  it('documents every API route, with request bodies generated from the validation schemas', async () => {
    const reply = await new Client(site.url).get('/api/v1/openapi.json');
    expect(reply.status).toBe(200);
    const doc = reply.json() as {
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
      components: { schemas: Record<string, { properties: Record<string, Record<string, unknown>> }> };
    };
    expect(doc.openapi).toMatch(/^3\./);
    const router = apiRouter(site.gen, site.host.sse, site.host.datasets);
    const routes = router.stack
      .filter((layer) => layer.methods.length > 0)
      .flatMap((layer) =>
        layer.methods
          .filter((m) => m !== 'HEAD')
          .map(
            (m) =>
              `${m.toLowerCase()} ${String(layer.path)
                .replace('/api/v1', '')
                .replace(/:(\w+)/g, '{$1}')}`,
          ),
      )
      .filter((r) => !r.endsWith('/openapi.json'));
    for (const route of routes) {
      const [method, path] = route.split(' ') as [string, string];
      expect(doc.paths[path]?.[method], route).toBeDefined();
    }
    const request = doc.components.schemas.GenerationRequest;
    const generated = z.toJSONSchema(generationRequestSchema, { io: 'input', unrepresentable: 'any', target: 'openapi-3.0' }) as {
      properties: Record<string, unknown>;
      required: string[];
    };
    // imageOutput is read by the tasks service (over the site's settings), not by generationRequestSchema; targets by validateTargets
    expect(Object.keys(request?.properties ?? {})).toEqual([...Object.keys(generated.properties), 'imageOutput', 'targets']);
    // each dimension as text or in the structured form, the latter generated from targetsSchema
    const targets = request?.properties.targets as { properties: Record<string, { oneOf: Array<Record<string, unknown>> }> };
    const structured = z.toJSONSchema(targetsSchema, { io: 'input', unrepresentable: 'any', target: 'openapi-3.0' }) as {
      properties: Record<string, unknown>;
    };
    expect(Object.keys(targets.properties)).toEqual([...TARGET_DIMENSIONS]);
    for (const dimension of TARGET_DIMENSIONS) {
      expect(targets.properties[dimension]?.oneOf).toEqual([expect.objectContaining({ type: 'string' }), structured.properties[dimension]]);
    }
    expect(doc.components.schemas.Task?.properties.targets).toMatchObject({ nullable: true });
    expect(Object.keys(doc.components.schemas.QualityReport?.properties ?? {})).toEqual(
      expect.arrayContaining(['offTargetPersonas', 'targets']),
    );
    const imageOutput = request?.properties.imageOutput as { properties: Record<string, { enum?: string[] }> };
    expect(Object.keys(imageOutput.properties)).toEqual(['quality', 'size', 'format', 'compression', 'background']);
    expect(imageOutput.properties.format?.enum).toEqual(['png', 'jpeg', 'webp']);
    expect(request).toMatchObject({ required: generated.required });
    expect(request?.properties.language?.enum).toEqual(listLanguages().map((l) => l.code));
    expect(request?.properties.imagesPerPersona?.enum).toEqual([4, 8, 12, 16, 20]);
    expect(Object.keys(doc.components.schemas.SettingsUpdate?.properties ?? {})).toEqual(Object.keys(settingsSchema.shape));
  });
});

describe('logs', () => {
  it('carry a request id and never a password, a token or a session id', async () => {
    const c = new Client(site.url);
    await c.login('ops@example.com', 'a wrong password that must not be logged');
    await c.login('ops@example.com', PASSWORD);
    await api.get('/api/v1/stats');
    const text = logLines.join('');
    const requests = logLines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request');
    expect(requests.length).toBeGreaterThan(5);
    for (const line of requests) expect(line.reqId).toMatch(/^[\w-]{8,}$/);
    expect(text).not.toContain('a wrong password that must not be logged');
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(token);
    expect(text).not.toContain(c.cookies.get(SESSION_COOKIE) as string);
  });
});

describe('image output options per task', () => {
  it('takes the task’s own image output options (imageOutput), validates them by name and records them in the snapshot', async () => {
    const created = await api.request('POST', '/api/v1/tasks', {
      json: { ...REQUEST, imageOutput: { quality: 'low', size: '1024x1536', format: 'jpeg', compression: 55, background: 'opaque' } },
    });
    expect(created.status).toBe(201);
    expect((created.json() as { settings: unknown }).settings).toMatchObject({
      image_quality: 'low',
      image_size: '1024x1536',
      image_output_format: 'jpeg',
      image_output_compression: 55,
      image_background: 'opaque',
    });
    const bad = await api.request('POST', '/api/v1/tasks', {
      json: { ...REQUEST, imageOutput: { quality: 'max', format: 'gif', dpi: 300 } },
    });
    expect(bad.status).toBe(422);
    expect((bad.json() as { fields: unknown }).fields).toEqual({
      'imageOutput.quality': 'Choose one of auto, low, medium, high.',
      'imageOutput.format': 'Choose one of png, jpeg, webp.',
      'imageOutput.dpi': 'Unknown output option; use quality, size, format, compression, background.',
    });
    const notObject = await api.request('POST', '/api/v1/tasks', { json: { ...REQUEST, imageOutput: 'high' } });
    expect((notObject.json() as { fields: unknown }).fields).toEqual({ imageOutput: 'Must be an object such as {"quality": "high"}.' });
  });
});
