import { afterAll, beforeAll, expect, it } from 'vitest';
import { type Fleet, makeNetnsHosts, type NetnsHosts, startFleet } from '../support/netns.js';
import { callsPerMinute } from '../support/openai-server.js';
import { query, taskRows } from '../support/task-rows.js';

/**
 * Issue 22: six `avatargen worker` processes on three hosts (network namespaces, two workers
 * each) share one PostgreSQL, one s3rver and an OpenAI image stand-in that allows 120 images per
 * minute, as the service's IPM limit does. With the site's `provider_limits` set to that limit,
 * the fleet keeps to it together: a 100 x 8 task completes exactly once, fewer than 1% of the
 * image calls meet a 429, and every whole minute of the run uses 90-100% of the limit.
 *
 * Where namespaces cannot be made (no CAP_NET_ADMIN) the same fleet runs on loopback, and the
 * output says so.
 */
const LIMIT = 120;
const MODEL = 'gpt-image-1';
const COUNT = 100;
const IMAGES = 8;
const HOSTS = 3;
const WORKERS = 6;
/** One base picture and one grid of four per four pictures, per persona. */
const IMAGE_CALLS = COUNT * (1 + IMAGES / 4);

let hosts: NetnsHosts | null = null;
let fleet: Fleet | undefined;
let limitsRefused: string | undefined;

beforeAll(async () => {
  try {
    hosts = await makeNetnsHosts(HOSTS);
  } catch (error) {
    console.warn(
      `[fleet] network namespaces cannot be made (${(error as Error).message}): running the same fleet of ${WORKERS} workers as processes on loopback`,
    );
  }
  fleet = await startFleet({ hosts: hosts?.hosts ?? null, workers: WORKERS, imagesPerMinute: LIMIT, model: MODEL, name: 'e2e-fleet' });
  // Set before the workers start, so none of them runs a moment without it.
  const limits: Record<string, unknown> = { provider_limits: [{ provider: 'openai', model: MODEL, images_per_minute: LIMIT }] };
  try {
    await fleet.gen.settings.update(limits);
  } catch (error) {
    limitsRefused = `${(error as Error).message} ${JSON.stringify((error as { fields?: unknown }).fields ?? {})}`;
    console.warn(`[fleet] the provider_limits setting was refused (${limitsRefused}); the run goes on to measure the fleet without it`);
  }
  await fleet.startWorkers();
}, 300_000);

afterAll(async () => {
  await fleet?.close();
  await hosts?.close();
}, 120_000);

it(`a ${COUNT} x ${IMAGES} task on ${WORKERS} workers completes exactly once and keeps to ${LIMIT} images per minute together`, async () => {
  const f = fleet as Fleet;
  if (hosts) {
    // The workers really are on the other hosts: the database sees their addresses.
    const clients = await query<{ addr: string }>(
      f.pg.url,
      'select distinct host(client_addr) as addr from pg_stat_activity where client_addr is not null',
    );
    expect(clients.map((c) => c.addr).sort()).toEqual(expect.arrayContaining(hosts.hosts.map((h) => h.address)));
  }
  const started = Date.now();
  const task = await f.gen.tasks.submit({
    description: 'Lighthouse keepers in Brittany',
    language: 'en',
    count: COUNT,
    imagesPerPersona: IMAGES,
  });
  const ended = await f.gen.tasks.waitUntilEnded(task.id, { timeoutMs: 330_000 });
  const seconds = (Date.now() - started) / 1000;

  const rate = f.openai.rate;
  const allowed = rate.entries.filter((e) => e.status === 200);
  const share = rate.rateLimited / rate.calls;
  const minutes = callsPerMinute(rate.entries);
  const span = ((allowed.at(-1)?.at ?? 0) - (allowed[0]?.at ?? 0)) / 1000;
  console.info(
    `[fleet] ${hosts ? `${HOSTS} namespaces` : 'loopback'}, ${WORKERS} workers (${f.placement.join(', ')}): task ${ended.status} in ${seconds.toFixed(1)} s; ` +
      `${rate.calls} image calls, ${rate.rateLimited} answered 429 (${(share * 100).toFixed(2)}%); ` +
      `${allowed.length} served over ${span.toFixed(1)} s (${((allowed.length - 1) / (span / 60)).toFixed(1)}/min); ` +
      `whole sliding minutes: ${minutes ? `${minutes.min}-${minutes.max} calls (${minutes.windows} windows)` : 'none'}; limit ${LIMIT}/min`,
  );

  // Exactly once: every persona and picture, no row twice, the bucket holding exactly the rows.
  expect(ended.status).toBe('completed');
  const rows = await taskRows(f.pg.url, task.id);
  expect(rows.errorLog).toEqual([]);
  expect(rows.personas).toBe(COUNT);
  expect(rows.images).toBe(COUNT * IMAGES);
  expect(rows.completePersonas).toBe(COUNT);
  expect(new Set(rows.keys).size).toBe(rows.keys.length);
  expect(await f.listBucket()).toEqual(rows.keys);
  // Each picture call was made once: no image paid for twice.
  expect(allowed).toHaveLength(IMAGE_CALLS);

  // The fleet kept to the limit together.
  expect(limitsRefused, 'the provider_limits setting').toBeUndefined();
  expect(share).toBeLessThan(0.01);
  expect(minutes, 'the calls span at least a whole minute').not.toBeNull();
  expect(minutes?.max).toBeLessThanOrEqual(LIMIT);
  expect(minutes?.min).toBeGreaterThanOrEqual(0.9 * LIMIT);
}, 360_000);
