import type { TaskView } from '@avatargen/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasBadCharacter } from '../src/input.js';
import { Client } from './support/client.js';
import { PASSWORD, type Site, startSite } from './support/harness.js';

/**
 * Control characters (NUL, C0, C1), lone surrogates and bytes that are not UTF-8, sent to every
 * route the app has, over real HTTP: in a path parameter, in the query string and in the body.
 * The routes are read from the routers' stacks, so a route added later is covered without
 * touching this file. Every answer comes from the one validator (404 for an address, 400 for a
 * query parameter or a body field), before any route code or SQL runs.
 */
let site: Site;
let task: TaskView;
let tokenId: number;
let session: Client; // logged in, with the session's CSRF token
let bearer: Client; // API token

interface Route {
  method: string;
  /** `/api/v1/tasks/:id`, or a RegExp source for the media routes */
  path: string | RegExp;
}

function routes(): Route[] {
  const found: Route[] = [];
  for (const router of site.host.routers) {
    for (const layer of router.stack) {
      for (const method of layer.methods) if (method !== 'HEAD') found.push({ method, path: layer.path });
    }
  }
  return found;
}

/** A concrete path: each `:param` (or the media key) is `bad`, or a real value when `bad` is undefined. */
function pathOf(route: Route, bad?: string): string {
  if (route.path instanceof RegExp) {
    const prefix = route.path.source.includes('media') ? '/media/' : '/thumbs/';
    return `${prefix}tasks/${bad ?? task.id}/1/x.png`;
  }
  const real: Record<string, string> = { id: task.id, tokenId: String(tokenId), format: 'json' };
  return route.path.replace(/:(\w+)/g, (_, name: string) => bad ?? real[name] ?? 'x');
}

const hasParams = (route: Route) => route.path instanceof RegExp || route.path.includes(':');
const isApi = (route: Route) => typeof route.path === 'string' && route.path.startsWith('/api/');

/** The clients a route is tried with: the API with a token and with the session; everything else with the session. */
function clientsFor(route: Route): Client[] {
  if (isApi(route) || route.path instanceof RegExp) return [bearer, session];
  return [session];
}

function send(client: Client, route: Route, path: string, body?: Record<string, string>) {
  if (route.method === 'GET') return client.get(path);
  if (isApi(route)) return client.request(route.method, path, { json: body ?? {} });
  return client.request(route.method, path, { form: body ?? {} });
}

beforeAll(async () => {
  site = await startSite({ worker: false });
  const admin = await site.gen.users.create({ email: 'admin@example.com', password: PASSWORD, isAdmin: true });
  task = await site.gen.tasks.submit(
    { description: 'Control characters', language: 'en', count: 10, imagesPerPersona: 4 },
    { userId: admin.id },
  );
  const created = await site.gen.users.createToken(admin.id, 'input tests');
  tokenId = created.view.id;
  bearer = new Client(site.url, { authorization: `Bearer ${created.token}` });
  session = new Client(site.url);
  expect((await session.login('admin@example.com', PASSWORD)).status).toBe(303);
  await session.get('/dashboard'); // the CSRF token
});
afterAll(() => site?.close());

describe('the validator', () => {
  it('refuses C0, DEL, C1, U+FFFD and lone surrogates; allows line breaks only in multiline text', () => {
    for (const text of ['\u0000', 'a\u0001', '\u001b[31m', '\u007f', '\u0085', '\u009f', 'x\ufffd', '\ud800', 'a\udc00b']) {
      expect(hasBadCharacter(text, true), JSON.stringify(text)).toBe(true);
    }
    for (const text of ['plain', 'émoji 😀', 'Zürich – “quotes”', '\u00a0nbsp', '👩‍👩‍👧 joiner'])
      expect(hasBadCharacter(text), text).toBe(false);
    expect(hasBadCharacter('two\nlines\r\n\ttabbed', true)).toBe(false);
    expect(hasBadCharacter('two\nlines')).toBe(true);
  });
});

describe('every route of the app', () => {
  it('is found in the routers: the task, token, media and page routes are all there', () => {
    const all = routes();
    const withParams = all.filter(hasParams);
    // 18 today (the API's 9 task routes, /media and /thumbs, the dataset pages and token revoking); more is fine
    expect(withParams.length).toBeGreaterThanOrEqual(18);
    const names = all.map((r) => `${r.method} ${String(r.path)}`);
    for (const expected of [
      'GET /api/v1/tasks/:id',
      'POST /settings/tokens/:tokenId/revoke',
      'POST /datasets/:id/export',
      'DELETE /api/v1/tasks/:id',
      'POST /settings/tokens',
    ]) {
      expect(names).toContain(expected);
    }
    expect(names.some((n) => n.includes('media'))).toBe(true);
  });

  it('answers 404 for a NUL, a control character or broken UTF-8 in any path parameter', async () => {
    const replies: string[] = [];
    for (const route of routes().filter(hasParams)) {
      for (const bad of ['%00', 'a%01b', '%C2%85', '%FF', '%ED%A0%80']) {
        for (const client of clientsFor(route)) {
          const path = pathOf(route, bad);
          const reply = await send(client, route, path);
          replies.push(`${route.method} ${path} ${reply.status}`);
          expect(reply.status, `${route.method} ${path} (${client === bearer ? 'token' : 'session'})`).toBe(404);
        }
      }
    }
    expect(replies.length).toBeGreaterThan(100);
  });

  it('answers 400 for a control character or broken UTF-8 in the query string, on every route', async () => {
    for (const route of routes()) {
      for (const query of ['q=%00', 'page=1%0A', `${encodeURIComponent('k\u0007')}=1`, 'status=%FF', 'next=%C2%9B']) {
        for (const client of clientsFor(route)) {
          const path = `${pathOf(route)}?${query}`;
          const reply = await send(client, route, path);
          expect(reply.status, `${route.method} ${path} (${client === bearer ? 'token' : 'session'})`).toBe(400);
          if (isApi(route))
            expect(reply.json()).toMatchObject({ error: expect.stringContaining('control characters'), requestId: expect.any(String) });
        }
      }
    }
  });

  it('answers 400 for a control character in any body field of every route that takes one', async () => {
    const bodies: Array<Record<string, string>> = [
      { name: 'laptop\u0000' },
      { description: 'People\u0000 of Oslo', language: 'en', count: '10', imagesPerPersona: '4' },
      { format: 'json\u0001' },
      { email: 'admin@example.com\u0000', password: PASSWORD },
      { bio_prompt_x: 'short \u0085 bio' },
      { description: 'half \ud800 surrogate' },
    ];
    // DELETE bodies are not parsed (nor read by any route)
    for (const route of routes().filter((r) => ['POST', 'PUT', 'PATCH'].includes(r.method))) {
      for (const body of bodies) {
        for (const client of clientsFor(route)) {
          const reply = await send(client, route, pathOf(route), body);
          expect(reply.status, `${route.method} ${String(route.path)} ${JSON.stringify(body)}`).toBe(400);
        }
      }
    }
  });

  it('left everything as it was: no token named with a NUL, the task and the session still there', async () => {
    const admin = await site.gen.users.findByEmail('admin@example.com');
    const tokens = await site.gen.users.listTokens(admin?.id as number);
    expect(tokens.map((t) => t.name)).toEqual(['input tests']);
    expect(tokens[0]?.revokedAt).toBeNull();
    expect((await site.gen.tasks.get(task.id)).status).not.toBe('cancelled'); // neither deleted (get throws) nor cancelled
    expect((await session.get('/dashboard')).status).toBe(200);
    expect((await bearer.get('/api/v1/stats')).status).toBe(200);
  });

  it('still takes tabs and line breaks in a description, and a NUL-free token name', async () => {
    const submitted = await bearer.request('POST', '/api/v1/tasks', {
      json: { description: 'Harbour pilots\n\tin Hamburg', language: 'en', count: 10, imagesPerPersona: 4 },
    });
    expect(submitted.status).toBe(201);
    await site.gen.tasks.cancel((submitted.json() as TaskView).id);
    const page = await session.post('/settings/tokens', { name: 'second laptop' });
    expect(page.status).toBe(201);
    const named = await session.post('/settings/tokens', { name: 'third\u0000laptop' });
    expect(named.status).toBe(400);
    expect(named.text).toContain('Remove control characters');
  });
});
