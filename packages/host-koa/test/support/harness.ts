import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AvatarGen, createAvatarGen, isFinal, type TaskStatus, type TaskView } from '@avatargen/core';
import { createTestDatabase, type TestDatabase } from '@avatargen/core/testing';
import { imageOpencvPlugin } from '@avatargen/image-opencv';
import { localPlugin } from '@avatargen/provider-local';
import { filesystemStoragePlugin } from '@avatargen/storage-filesystem';
import type { Logger } from 'pino';
import { createApp, type HostApp, type HostOptions } from '../../src/app.js';
import { listen, type RunningServer } from '../../src/host.js';

export const FAST_PIPELINE = { reconcileIntervalMs: 300, maintenanceIntervalSeconds: 1, pollingIntervalSeconds: 0.5 };
export const SECRET = 'test-secret-key-0123456789abcdef-0123456789';
export const PASSWORD = 'correct horse battery';

export interface Site {
  gen: AvatarGen;
  db: TestDatabase;
  host: HostApp;
  server: RunningServer;
  url: string;
  dataDir: string;
  close(): Promise<void>;
}

/**
 * The real thing on a fresh test database: provider-local (small images), the sharp image
 * processor with one thread, filesystem storage, and the host on a random port.
 */
export async function startSite(
  options: { worker?: boolean; host?: Partial<HostOptions>; config?: Record<string, unknown>; logger?: Logger } = {},
): Promise<Site> {
  const db = await createTestDatabase('avatargen_host');
  const dataDir = mkdtempSync(join(tmpdir(), 'avatargen-host-'));
  const gen = await createAvatarGen({
    config: {
      DATABASE_URL: db.url,
      DATA_DIR: dataDir,
      LOG_LEVEL: 'silent',
      JOB_RETRY_DELAY_MS: 5,
      // Outages count against JOB_RETRY_LIMIT here; the fault tests set their own windows.
      PROVIDER_RETRY_WINDOW_SECONDS: 0,
      STORAGE_RETRY_WINDOW_SECONDS: 0,
      IMAGE_PROCESSOR_THREADS: 1,
      ...options.config,
    },
    plugins: [
      localPlugin({ imageSize: 64 }),
      imageOpencvPlugin({ threads: 1 }),
      filesystemStoragePlugin({ root: join(dataDir, 'storage') }),
    ],
    pipeline: FAST_PIPELINE,
    logger: options.logger,
  });
  if (options.worker !== false) await gen.worker.start();
  const host = createApp(gen, { secretKey: SECRET, ...options.host });
  const server = await listen(host, { port: 0, hostname: '127.0.0.1' });
  return {
    gen,
    db,
    host,
    server,
    url: server.url,
    dataDir,
    async close() {
      await server.close(2000);
      await gen.close();
      await db.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function waitForStatus(gen: AvatarGen, id: string, statuses: TaskStatus[], timeoutMs = 60_000): Promise<TaskView> {
  // Waiting for the end: the facade's helper, woken by task events.
  if (statuses.every(isFinal)) {
    const ended = await gen.tasks.waitUntilEnded(id, { timeoutMs });
    if (!statuses.includes(ended.status)) throw new Error(`task ${id} ended ${ended.status}, not ${statuses.join('/')}`);
    return ended;
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const task = await gen.tasks.get(id);
    if (statuses.includes(task.status)) return task;
    if (Date.now() > deadline) throw new Error(`task ${id} is ${task.status}, not ${statuses.join('/')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
