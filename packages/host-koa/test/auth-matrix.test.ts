import type { TaskView } from '@avatargen/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from './support/client.js';
import { PASSWORD, type Site, startSite, waitForStatus } from './support/harness.js';

/**
 * Two users over every route that touches a task, a persona, an image or an export: the owner
 * gets the thing, the other user gets exactly what a missing task gives (404), with a session
 * or with an API token; an anonymous visitor gets the login page or 401.
 */
let site: Site;
let task: TaskView;
let imageKey: string;
let personaId: number;
let owner: Client;
let intruder: Client;
let intruderToken: Client;
let anonymous: Client;

async function loggedIn(email: string): Promise<Client> {
  const c = new Client(site.url);
  expect((await c.login(email, PASSWORD)).status).toBe(303);
  await c.get('/dashboard');
  return c;
}

beforeAll(async () => {
  site = await startSite();
  const alice = await site.gen.users.create({ email: 'alice@example.com', password: PASSWORD });
  const bob = await site.gen.users.create({ email: 'bob@example.com', password: PASSWORD });
  const submitted = await site.gen.tasks.submit(
    { description: 'Alice’s dataset', language: 'en', count: 10, imagesPerPersona: 4 },
    { userId: alice.id },
  );
  task = await waitForStatus(site.gen, submitted.id, ['completed', 'failed']);
  expect(task.status).toBe('completed');
  const persona = (await site.gen.personas.list(task.id)).personas[0];
  imageKey = persona?.images[0]?.key as string;
  personaId = persona?.id as number;
  owner = await loggedIn('alice@example.com');
  intruder = await loggedIn('bob@example.com');
  const { token } = await site.gen.users.createToken(bob.id, 'bob cli');
  intruderToken = new Client(site.url, { authorization: `Bearer ${token}` });
  anonymous = new Client(site.url);
  await anonymous.get('/login'); // a session and a CSRF token, but no user
});
afterAll(() => site?.close());

type Route = [method: 'GET' | 'POST' | 'DELETE', path: string, form?: Record<string, string>];
const real = (path: string) => path.replace(':id', task.id).replace(':key', imageKey).replace(':pid', String(personaId));

const READS: Route[] = [
  ['GET', '/datasets/:id'],
  ['GET', '/datasets/:id?page=2'],
  ['GET', '/datasets/:id/personas/:pid'],
  ['GET', '/api/v1/tasks/:id'],
  ['GET', '/api/v1/tasks/:id/personas'],
  ['GET', '/api/v1/tasks/:id/demographics'],
  ['GET', '/api/v1/tasks/:id/quality'],
  ['GET', '/api/v1/datasets/:id'],
  ['GET', '/media/:key'],
  ['GET', '/thumbs/:key'],
];
const EVENTS: Route[] = [
  ['GET', '/datasets/:id/events'],
  ['GET', '/api/v1/tasks/:id/events'],
];
const WRITES: Route[] = [
  ['POST', '/datasets/:id/export', { format: 'json' }],
  ['POST', '/datasets/:id/export', { format: 'csv' }],
  ['POST', '/datasets/:id/export', { format: 'zip' }],
  ['POST', '/api/v1/tasks/:id/exports/json'],
  ['POST', '/api/v1/tasks/:id/exports/csv'],
  ['POST', '/api/v1/tasks/:id/exports/zip'],
  ['POST', '/datasets/:id/cancel'],
  ['POST', '/datasets/:id/retry'],
  ['POST', '/api/v1/tasks/:id/cancel'],
  ['POST', '/api/v1/tasks/:id/retry'],
  ['POST', '/datasets/:id/delete'],
  ['DELETE', '/api/v1/tasks/:id'],
  // the confirm page (no `confirm`) shows the persona: it is checked like the action itself
  ['POST', '/datasets/:id/personas/:pid/regenerate'],
  ['POST', '/datasets/:id/personas/:pid/regenerate', { confirm: 'yes' }],
  ['POST', '/datasets/:id/personas/:pid/images/0/regenerate', { confirm: 'yes' }],
  ['POST', '/api/v1/tasks/:id/personas/:pid/regenerate'],
  ['POST', '/api/v1/tasks/:id/personas/:pid/images/0/regenerate'],
];

async function call(c: Client, [method, template, form]: Route) {
  const path = real(template);
  if (method === 'GET') return c.get(path);
  if (path.startsWith('/api/')) return c.request(method, path, { json: form ?? {} });
  return c.request(method, path, { form: form ?? {} });
}

/** Where an API token counts: the JSON API and image URLs; on the website's pages it is no one. */
const tokenCounts = ([method, path]: Route) => path.startsWith('/api/') || (method === 'GET' && /^\/(media|thumbs)\//.test(path));

describe('another user', () => {
  for (const route of [...READS, ...EVENTS, ...WRITES]) {
    it(`gets 404 for ${route[0]} ${route[1]} (session${tokenCounts(route) ? ' and token' : '; a token is refused like no one'})`, async () => {
      for (const c of [intruder, intruderToken]) {
        const reply = await call(c, route);
        if (c === intruderToken && !tokenCounts(route)) {
          // a page: the token is ignored, so this is an anonymous request (login, or no CSRF token)
          if (route[0] === 'GET') expect(reply.location).toMatch(/^\/login\?next=/);
          else expect(reply.status).toBe(403);
        } else {
          expect(reply.status).toBe(404);
        }
        expect(reply.text).not.toContain('Alice’s dataset');
        expect(reply.headers.get('content-disposition')).toBeNull();
      }
    });
  }

  it('does not see the task in any list or total', async () => {
    for (const c of [intruder, intruderToken]) {
      const list = (await c.get('/api/v1/tasks')).json() as { total: number };
      expect(list.total).toBe(0);
      const stats = (await c.get('/api/v1/stats')).json() as { tasks: number; images: number };
      expect(stats).toMatchObject({ tasks: 0, images: 0 });
    }
    for (const path of ['/history', '/datasets', '/exports', '/dashboard']) {
      expect((await intruder.get(path)).text, path).not.toContain(task.id);
    }
  });
});

describe('an anonymous visitor', () => {
  for (const route of [...READS, ...EVENTS, ...WRITES]) {
    it(`is refused ${route[0]} ${route[1]}`, async () => {
      const reply = await call(anonymous, route);
      const path = route[1];
      if (path.startsWith('/api/') || path.startsWith('/media/') || path.startsWith('/thumbs/')) expect(reply.status).toBe(401);
      else if (route[0] === 'GET') expect(reply.location).toMatch(/^\/login\?next=/);
      else expect(reply.status).toBe(401);
      expect(reply.text).not.toContain('Alice’s dataset');
    });
  }
});

describe('the owner', () => {
  it('reads every route', async () => {
    for (const route of READS) {
      const reply = await call(owner, route);
      expect(reply.status, route[1]).toBe(200);
    }
  });

  it('a dataset kept in memory is still another user’s 404, and a change drops it', async () => {
    expect(site.host.datasets.size).toBeGreaterThan(0);
    for (const c of [intruder, intruderToken]) {
      expect((await c.get(`/api/v1/datasets/${task.id}`)).status).toBe(404);
    }
    expect((await intruder.get(`/datasets/${task.id}`)).status).toBe(404);
    const before = (await owner.get(`/api/v1/datasets/${task.id}`)).json() as { task: { errorLog: unknown[] } };
    // A change from anywhere (here: the service, as another process would) reaches the cache as a task event.
    await site.gen.pipeline.notifyTask(task.id);
    expect(site.host.datasets.size).toBe(0); // the event is emitted before notifyTask returns
    expect((await owner.get(`/api/v1/datasets/${task.id}`)).json()).toEqual(before);
  });

  it('exports in every format', async () => {
    for (const route of WRITES.slice(0, 6)) {
      const reply = await call(owner, route);
      expect(reply.status, route[1]).toBe(200);
      expect(reply.headers.get('content-disposition'), route[1]).toMatch(/^attachment; filename="avatargen-[\w-]+\.(json|csv|zip)"$/);
    }
  });

  it('gets 409 for transitions the status does not allow, then deletes the task', async () => {
    expect((await call(owner, WRITES[6] as Route)).status).toBe(409); // cancel a completed task (page)
    expect((await call(owner, WRITES[8] as Route)).status).toBe(409); // cancel (API)
    expect((await call(owner, WRITES[9] as Route)).status).toBe(409); // retry a completed task
    const deleted = await call(owner, WRITES[10] as Route);
    expect(deleted.status).toBe(303);
    expect((await owner.get(`/datasets/${task.id}`)).status).toBe(404);
    expect((await owner.get(`/media/${imageKey}`)).status).toBe(404);
    const left = [];
    for await (const object of site.gen.port('objectStorage').list(`tasks/${task.id}/`)) left.push(object.key);
    expect(left).toEqual([]); // images and cached thumbnails are gone
  });
});
