import { connect } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { collectEvents } from './support/sse.js';
import { PASSWORD, type Site, startSite } from './support/harness.js';

let site: Site;
beforeAll(async () => {
  site = await startSite({ worker: false });
});
afterAll(() => site?.close());

it('shutdown ends event streams with a shutdown event and drops idle sockets at once', async () => {
  const user = await site.gen.users.create({ email: 'a@example.com', password: PASSWORD });
  const { token } = await site.gen.users.createToken(user.id, 't');
  const task = await site.gen.tasks.submit(
    { description: 'Pending forever', language: 'en', count: 10, imagesPerPersona: 4 },
    { userId: user.id },
  );
  const res = await fetch(`${site.url}/api/v1/tasks/${task.id}/events`, { headers: { authorization: `Bearer ${token}` } });
  const events = collectEvents(res, (e) => e.event === 'shutdown', 20_000);
  // A client that connected and never sent a request (browsers and proxies pre-connect).
  const idle = connect(Number(new URL(site.url).port), '127.0.0.1');
  await new Promise((r) => idle.once('connect', r));
  const idleClosed = new Promise((r) => idle.once('close', r));
  expect(site.host.sse.size).toBe(1);
  // Far longer than the test's timeout: if anything held the server open, the test would fail.
  await site.server.close(120_000);
  await idleClosed;
  const received = await events;
  expect(received.at(-1)?.event).toBe('shutdown');
  expect(new Set(received.slice(0, -1).map((e) => e.event))).toEqual(new Set(['progress']));
  expect(site.host.sse.size).toBe(0);
});
