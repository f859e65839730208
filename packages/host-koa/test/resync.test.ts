import type { TaskView } from '@avatargen/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthCache } from '../src/auth-cache.js';
import { Client } from './support/client.js';
import { PASSWORD, type Site, startSite } from './support/harness.js';
import { collectEvents, type SseEvent } from './support/sse.js';

/**
 * After an outage of the notification connection, core's pipeline emits `resync`: task changes
 * made meanwhile were never heard. Rows are changed here behind the host's back (plain SQL, no
 * NOTIFY), as another process's changes during the outage would have been; then the real
 * pipeline's events emit `resync`.
 */
let site: Site;
let token: string;
let api: Client;
let userId: number;

async function submit(description: string): Promise<TaskView> {
  return site.gen.tasks.submit({ description, language: 'en', count: 10, imagesPerPersona: 4 }, { userId });
}

/** An unnoticed change: SQL straight to the row, no notification. */
function changeQuietly(sql: string, params: unknown[]) {
  return site.gen.orm.em.fork().execute(sql, params);
}

/**
 * Resolves once the pipeline has heard a notification sent now through PostgreSQL: notifications
 * are delivered in commit order, so every one sent before it has been heard (and emitted) too.
 */
async function notificationsHeard(): Promise<void> {
  const marker = `heard-${Math.random().toString(36).slice(2)}`;
  const { events } = site.gen.pipeline;
  const heard = new Promise<void>((resolve) => {
    const onTask = (id: string) => {
      if (id !== marker) return;
      events.off('task', onTask);
      resolve();
    };
    events.on('task', onTask);
  });
  await site.gen.orm.em.fork().execute('select pg_notify(?, ?)', ['avatargen_task', marker]);
  await heard;
}

beforeAll(async () => {
  site = await startSite({ worker: false });
  userId = (await site.gen.users.create({ email: 'resync@example.com', password: PASSWORD })).id;
  token = (await site.gen.users.createToken(userId, 'resync')).token;
  api = new Client(site.url, { authorization: `Bearer ${token}` });
});
afterAll(() => site?.close());

describe("the pipeline's resync event", () => {
  it('drops every finished dataset kept in memory: a row changed meanwhile is then served fresh', async () => {
    const task = await submit('Ferry crews');
    await site.gen.tasks.cancel(task.id); // ended: its detail is kept in memory
    const first = await api.get(`/api/v1/datasets/${task.id}`);
    expect(first.status).toBe(200);
    expect(site.host.datasets.size).toBeGreaterThan(0);

    await changeQuietly('update generation_tasks set description = ? where id = ?', ['Ferry crews, changed during the outage', task.id]);
    // not heard: the memory still answers with the old row
    expect(((await api.get(`/api/v1/datasets/${task.id}`)).json() as { task: TaskView }).task.description).toBe('Ferry crews');

    site.gen.pipeline.events.emit('resync');
    expect(site.host.datasets.size).toBe(0);
    expect(((await api.get(`/api/v1/datasets/${task.id}`)).json() as { task: TaskView }).task.description).toBe(
      'Ferry crews, changed during the outage',
    );
    const browser = new Client(site.url);
    await browser.login('resync@example.com', PASSWORD);
    expect((await browser.get(`/datasets/${task.id}`)).text).toContain('Ferry crews, changed during the outage');
  });

  it('makes every open progress stream read its task again', async () => {
    const task = await submit('Lock keepers');
    await notificationsHeard(); // the submission's own notifications come back before the stream opens, not after
    const res = await fetch(new URL(`/api/v1/tasks/${task.id}/events`, site.url), { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    const seen: SseEvent[] = [];
    const collecting = collectEvents(
      res,
      (e) => {
        seen.push(e);
        return e.event === 'done';
      },
      15_000,
    );
    // the reads the stream starts with are over: the first, and one more for a change made before it subscribed
    await expect.poll(() => seen.length).toBeGreaterThanOrEqual(2);
    expect(seen.map((e) => e.event)).toEqual(['progress', 'progress']);

    // a stream hears of its task through the pipeline's task events only: record them
    const told: string[] = [];
    const onTask = (id: string) => told.push(id);
    site.gen.pipeline.events.on('task', onTask);
    try {
      await changeQuietly(`update generation_tasks set status = 'failed', finished_at = now() where id = ?`, [task.id]);
      await notificationsHeard(); // a notification the change made would have been heard by now
    } finally {
      site.gen.pipeline.events.off('task', onTask);
    }
    expect(told).not.toContain(task.id); // nobody told the stream
    expect(seen.some((e) => e.event === 'done')).toBe(false);

    site.gen.pipeline.events.emit('resync');
    const events = await collecting;
    const done = events.at(-1) as SseEvent;
    expect(done.event).toBe('done');
    expect(JSON.parse(done.data)).toMatchObject({ id: task.id, status: 'failed' });
  });

  it('empties the short memory of sessions, accounts and tokens too', async () => {
    const cache = new AuthCache(site.gen, 60_000);
    expect((await cache.user(userId))?.isAdmin).toBe(false);
    expect((await cache.tokenUser(token))?.isAdmin).toBe(false);
    await changeQuietly('update users set is_admin = true where id = ?', [userId]);
    expect((await cache.user(userId))?.isAdmin).toBe(false); // remembered for a minute here
    site.gen.pipeline.events.emit('resync');
    expect((await cache.user(userId))?.isAdmin).toBe(true);
    expect((await cache.tokenUser(token))?.isAdmin).toBe(true);
    await changeQuietly('update users set is_admin = false where id = ?', [userId]);
  });
});
