import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AvatarGen, createAvatarGen, type AvatarGenPlugin, isFinal, type TaskStatus, type TaskView } from '../../src/index.js';
import { createTestDatabase, type TestDatabase } from '../../src/testing.js';
import { fakePlugin, fakeServices, type FakeOptions } from './fakes.js';

export interface Harness {
  gen: AvatarGen;
  db: TestDatabase;
  storageRoot: string;
  fakes: ReturnType<typeof fakeServices>;
  close(): Promise<void>;
}

/** Pipeline settings for tests: fast retries, fast expiry checks, quick reconcile. */
export const FAST_PIPELINE = { reconcileIntervalMs: 300, maintenanceIntervalSeconds: 1, pollingIntervalSeconds: 0.5 };

export function testConfig(db: TestDatabase, extra: Record<string, unknown> = {}) {
  return {
    DATABASE_URL: db.url,
    LOG_LEVEL: 'silent',
    JOB_RETRY_DELAY_MS: 5,
    // Outages count against JOB_RETRY_LIMIT here; the fault tests set their own windows.
    PROVIDER_RETRY_WINDOW_SECONDS: 0,
    STORAGE_RETRY_WINDOW_SECONDS: 0,
    JOB_RETRY_LIMIT: 3,
    ...extra,
  };
}

export async function startHarness(
  options: { fakes?: FakeOptions; config?: Record<string, unknown>; worker?: boolean; db?: TestDatabase; plugins?: AvatarGenPlugin[] } = {},
): Promise<Harness> {
  const db = options.db ?? (await createTestDatabase());
  const storageRoot = mkdtempSync(join(tmpdir(), 'avatargen-storage-'));
  const fakes = fakeServices(options.fakes);
  const gen = await createAvatarGen({
    config: testConfig(db, options.config),
    plugins: [fakePlugin(fakes, storageRoot), ...(options.plugins ?? [])],
    pipeline: FAST_PIPELINE,
  });
  if (options.worker !== false) await gen.worker.start();
  return {
    gen,
    db,
    storageRoot,
    fakes,
    async close() {
      await gen.close();
      if (!options.db) await db.drop();
      rmSync(storageRoot, { recursive: true, force: true });
    },
  };
}

/** Polls until the task reaches one of the statuses (or throws after `timeoutMs`). */
export async function waitForStatus(gen: AvatarGen, taskId: string, statuses: TaskStatus[], timeoutMs = 30_000): Promise<TaskView> {
  // Waiting for the end: the facade's helper, woken by task events.
  if (statuses.every(isFinal)) {
    const ended = await gen.tasks.waitUntilEnded(taskId, { timeoutMs });
    if (!statuses.includes(ended.status)) throw new Error(`task ${taskId} ended ${ended.status}, not ${statuses.join('/')}`);
    return ended;
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const task = await gen.tasks.get(taskId);
    if (statuses.includes(task.status)) return task;
    if (Date.now() > deadline) throw new Error(`task ${taskId} is ${task.status}, not ${statuses.join('/')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const REQUEST = { description: 'Coffee shop owners in Lisbon', language: 'en', count: 10, imagesPerPersona: 4 };
