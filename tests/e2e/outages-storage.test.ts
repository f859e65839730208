import { execFileSync } from 'node:child_process';
import { type Dirent, mkdtempSync, rmSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { type AvatarGen, createAvatarGen, extensionFor, readImageInfo, type TaskStatus, type TaskView } from '@avatargen/core';
import { createTestDatabase, type TestDatabase } from '@avatargen/core/testing';
import { imageOpencvPlugin } from '@avatargen/image-opencv';
import { localPlugin } from '@avatargen/provider-local';
import { filesystemStoragePlugin } from '@avatargen/storage-filesystem';
import { s3Plugin } from '@avatargen/storage-s3';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3RVER_KEY, startS3rver, type TestS3 as TestS3rver } from '../../packages/storage-s3/test/support.js';
import { taskRows } from '../support/task-rows.js';

/**
 * Issue 15: storage faults lost data silently (storage read-only for 60 s: `completed` with 164
 * of 800 images; full for 60 s: 232 of 800).
 *
 * Real faults under a running pipeline (core's library API with provider-local, image-opencv and
 * the storage under test): filesystem storage on a tmpfs this test mounts, remounted read-only
 * for 60 s, then filled up for 60 s; and S3 (s3rver) killed for 30 s and started again on its
 * port and folder. Each time the task must end `completed` with every image, and the storage must
 * hold exactly the objects the rows name (and no temporary files after the storage's sweep).
 *
 * Needs root (mount). A machine where mounting is refused fails here with one line saying so.
 */
const OUTAGE_MS = 60_000;
const S3_OUTAGE_MS = 30_000;
const TMPFS_SIZE = '64m';
const TEMP_PREFIX = '.avatargen-tmp-';
const BUCKET = 'avatar-images';
/** Persona count and images per persona of each task: 200 images, so the image stage outlasts the moment the fault begins. */
const COUNT = 10;
const IMAGES = 20;

const CONFIG = {
  LOG_LEVEL: 'warn',
  IMAGE_PROCESSOR_THREADS: 1,
  JOB_RETRY_DELAY_MS: 100,
  // A recovered storage is noticed within ~2 s.
  JOB_RETRY_MAX_DELAY_MS: 2000,
  STORAGE_RETRY_WINDOW_SECONDS: 300,
};
const PIPELINE = { reconcileIntervalMs: 1000, maintenanceIntervalSeconds: 1, pollingIntervalSeconds: 0.5 };

/** tmpfs mounts made by this file: one per filesystem fault, so the faults can run side by side. */
const mounts: string[] = [];
let dataDir: string;
const databases: TestDatabase[] = [];
const gens: AvatarGen[] = [];
let s3: TestS3rver | undefined;
const fillers: Array<{ end(): Promise<void> }> = [];

/** The pipeline's log lines (pino JSON), kept in memory so a 60 s outage does not flood the output. */
function memoryLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) {
        if (!line.trim()) continue;
        try {
          if (lines.length < 50_000) lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // not JSON: ignore
        }
      }
      done();
    },
  });
  return { logger: pino({ level: 'warn' }, stream), lines };
}

function run(command: string, args: string[]): void {
  execFileSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

function errorText(error: unknown): string {
  const e = error as { stderr?: Buffer; message?: string };
  return (e.stderr?.toString().trim() || e.message || String(error)).split('\n')[0] as string;
}

/** `mount -o remount,ro` fails with EBUSY while a file is open for writing: tried again for a few seconds. */
async function remount(mountPoint: string, options: 'ro' | 'rw'): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      run('mount', ['-o', `remount,${options}`, mountPoint]);
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`remount,${options} of ${mountPoint} failed: ${errorText(error)}`);
      await sleep(20);
    }
  }
}

/**
 * Remounts the tmpfs read-only under a pipeline that keeps writing to it. Linux refuses
 * `remount,ro` (EBUSY) while any file is open for writing, and a busy pipeline nearly always has
 * one open, so writes are shut off first, at once: a read-only bind mount of the storage folder,
 * made on a folder nobody uses and moved over the storage folder (new writes there fail with
 * EROFS from then on). The writes already open finish within moments, the tmpfs itself is then
 * remounted read-only, and the bind mount goes: the storage sits on a read-only tmpfs.
 */
async function makeReadOnly(mountPoint: string, root: string): Promise<void> {
  const gate = join(mountPoint, '.gate');
  await mkdir(gate, { recursive: true });
  run('mount', ['--bind', root, gate]);
  run('mount', ['-o', 'remount,bind,ro', gate]); // a fresh mount: no writer can hold it yet
  run('mount', ['--move', gate, root]);
  await remount(mountPoint, 'ro');
  try {
    run('umount', [root]);
  } catch {
    run('umount', ['-l', root]); // a read still open through it: detach it now all the same
  }
}

/** Unmounts the tmpfs and anything mounted inside it; lazily if something still holds it. */
function unmountAll(mountPoint: string): void {
  try {
    run('umount', ['-R', mountPoint]);
  } catch {
    run('umount', ['-R', '-l', mountPoint]);
  }
}

const FILLER = 'filler.bin';

/** Appends to `path` until the file system is full to its last byte. */
async function topUp(path: string): Promise<void> {
  const handle = await open(path, 'a');
  try {
    for (const size of [1 << 20, 1 << 12, 1]) {
      const chunk = Buffer.alloc(size);
      for (let i = 0; i < 100_000; i++) {
        try {
          const { bytesWritten } = await handle.write(chunk);
          if (bytesWritten < size) break;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw error;
        }
      }
    }
  } finally {
    await handle.close();
  }
}

/**
 * Another writer that fills the file system and keeps it full: it tops the filler up every
 * 100 ms, so space a failed write gives back is taken again. end() stops it and deletes the filler.
 */
async function fillUp(folder: string): Promise<{ end(): Promise<void> }> {
  const path = join(folder, FILLER);
  await topUp(path);
  let running = true;
  const loop = (async () => {
    while (running) {
      await sleep(100);
      if (running) await topUp(path);
    }
  })();
  return {
    async end() {
      running = false;
      await loop;
      await rm(path, { force: true });
    },
  };
}

/** Every file under `root`, as storage keys (relative paths with /). */
async function filesUnder(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else out.push(relative(root, path).split('\\').join('/'));
    }
  };
  await walk(root);
  return out.sort();
}

async function waitForTask(
  gen: AvatarGen,
  id: string,
  check: (t: TaskView) => boolean,
  timeoutMs: number,
  what: string,
): Promise<TaskView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const task = await gen.tasks.get(id);
    if (check(task)) return task;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${task.status}, ${JSON.stringify(task.progress)}`);
    await sleep(20);
  }
}

const FINAL: TaskStatus[] = ['completed', 'partial', 'failed', 'cancelled'];

/** Submits a task and waits until its image stage has stored its first images: the moment the fault begins. */
async function startTask(gen: AvatarGen, description: string): Promise<TaskView> {
  const task = await gen.tasks.submit({ description, count: COUNT, imagesPerPersona: IMAGES, language: 'en' });
  const running = await waitForTask(
    gen,
    task.id,
    (t) => FINAL.includes(t.status) || (t.status === 'generating-images' && t.progress.imagesStored > 0),
    120_000,
    'the first images',
  );
  expect(running.status).toBe('generating-images');
  return running;
}

/**
 * Holds the fault for `ms` and shows that it held the task back: after the first 5 s (grids whose
 * objects were written just before the fault get their rows) nothing more is stored, and the
 * task is still running.
 */
async function holdFault(gen: AvatarGen, id: string, ms: number): Promise<{ settled: number; after: TaskView }> {
  await sleep(5_000);
  const settled = (await gen.tasks.get(id)).progress.imagesStored;
  await sleep(ms - 5_000);
  const after = await gen.tasks.get(id);
  expect(after.status).toBe('generating-images');
  expect(after.progress.imagesStored).toBe(settled);
  expect(after.progress.imagesStored).toBeLessThan(COUNT * IMAGES);
  return { settled, after };
}

/** The task completed with every persona and every image, and nothing in its error log. */
async function expectComplete(gen: AvatarGen, db: TestDatabase, id: string) {
  const task = await waitForTask(gen, id, (t) => FINAL.includes(t.status), 180_000, 'the end of the task');
  const rows = await taskRows(db.url, id);
  expect(rows, JSON.stringify(rows.errorLog)).toMatchObject({
    status: 'completed',
    personas: COUNT,
    images: COUNT * IMAGES,
    completePersonas: COUNT,
    errorLog: [],
  });
  expect(task.progress).toMatchObject({ personasStored: COUNT, imagesStored: COUNT * IMAGES });
  expect(rows.keys).toHaveLength(COUNT * (IMAGES + 1));
  return rows;
}

function retryLines(lines: Array<Record<string, unknown>>, taskId: string): string[] {
  return lines.filter((l) => l.msg === 'storage retry' && l.taskId === taskId).map((l) => String(l.error));
}

interface FsSite {
  gen: AvatarGen;
  db: TestDatabase;
  mountPoint: string;
  root: string;
  lines: Array<Record<string, unknown>>;
}

/** A pipeline of its own (database, worker) over filesystem storage in the given tmpfs. */
async function fsSite(mountPoint: string, name: string): Promise<FsSite> {
  const db = await createTestDatabase(`avatargen_e2e_${name}`);
  databases.push(db);
  const root = join(mountPoint, 'storage');
  const memory = memoryLogger();
  const gen = await createAvatarGen({
    config: { ...CONFIG, DATABASE_URL: db.url, DATA_DIR: dataDir },
    logger: memory.logger,
    plugins: [
      localPlugin({ imageSize: 128 }),
      imageOpencvPlugin({ threads: 1 }),
      // No periodic sweep: the test sweeps once the task has ended.
      filesystemStoragePlugin({ root, sweepIntervalMs: 0 }),
    ],
    pipeline: PIPELINE,
  });
  gens.push(gen);
  await gen.worker.start();
  return { gen, db, mountPoint, root, lines: memory.lines };
}

/**
 * The storage equals the rows: every object the task's rows name exists and is the image its key
 * says, every file under the root is such an object, and after the storage's sweep no temporary
 * file is left. Returns how many temporary files the sweep removed.
 */
async function expectStorageEqualsRows(site: FsSite, expected: string[]): Promise<number> {
  const isTemp = (f: string) => (f.split('/').at(-1) as string).startsWith(TEMP_PREFIX);
  const files = await filesUnder(site.root);
  expect(files.filter((f) => !isTemp(f))).toEqual([...expected].sort());
  for (const key of expected) {
    // A whole image of the type its key says (a write cut short by the fault would not be).
    const info = readImageInfo(await readFile(join(site.root, key)));
    expect(key.endsWith(`.${extensionFor(info.contentType)}`), key).toBe(true);
  }
  const storage = site.gen.port('objectStorage') as { sweepTempFiles?: (options?: { maxAgeMs?: number }) => Promise<number> };
  if (typeof storage.sweepTempFiles !== 'function') {
    console.warn('[outages-storage] the filesystem storage has no sweepTempFiles(): temporary files not checked');
    return 0;
  }
  await storage.sweepTempFiles({ maxAgeMs: 0 });
  expect((await filesUnder(site.root)).filter(isTemp)).toEqual([]);
  return files.filter(isTemp).length;
}

/** No line may say the database was away: a storage fault is not a database outage (its jobs would be sent again for ever). */
function expectNoDatabaseOutage(lines: Array<Record<string, unknown>>): void {
  expect(lines.filter((l) => /database is unavailable/.test(String(l.msg))).map((l) => `${l.msg}: ${l.error}`)).toEqual([]);
}

beforeAll(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'avatargen-e2e-storage-'));
  for (const name of ['ro', 'full']) {
    const mountPoint = mkdtempSync(join(tmpdir(), `avatargen-tmpfs-${name}-`));
    try {
      run('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE},mode=0755`, 'avatargen-test', mountPoint]);
    } catch (error) {
      rmSync(mountPoint, { recursive: true, force: true });
      throw new Error(`outages-storage needs root to mount a tmpfs: mount -t tmpfs at ${mountPoint} failed: ${errorText(error)}`);
    }
    mounts.push(mountPoint);
    // Private, so that makeReadOnly can move a mount inside it whatever the parent's propagation.
    run('mount', ['--make-private', mountPoint]);
  }
});

afterAll(async () => {
  // First end any fault a failed test left behind, so the pipelines can stop promptly.
  for (const filler of fillers) await filler.end().catch(() => undefined);
  for (const mountPoint of mounts) {
    try {
      run('umount', ['-l', join(mountPoint, 'storage')]); // makeReadOnly's bind mount, if a failure left it
    } catch {
      // not mounted
    }
    try {
      run('mount', ['-o', 'remount,rw', mountPoint]);
    } catch {
      // already read-write
    }
    await rm(join(mountPoint, FILLER), { force: true }).catch(() => undefined);
  }
  await s3?.restart().catch(() => undefined);
  await Promise.all(gens.map((gen) => gen.close().catch(() => undefined)));
  await s3?.close().catch(() => undefined);
  for (const mountPoint of mounts) {
    unmountAll(mountPoint);
    rmSync(mountPoint, { recursive: true, force: true });
  }
  mounts.length = 0;
  for (const db of databases) await db.drop().catch(() => undefined);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}, 120_000);

// The three faults run side by side (each with its own database, pipeline and storage): the file
// takes about as long as its longest outage rather than the sum of them.
describe.concurrent('storage faults during the image stage', () => {
  it('filesystem storage read-only for 60 s: the task completes with every image; storage equals the rows', async () => {
    const site = await fsSite(mounts[0] as string, 'fs_ro');
    const started = await startTask(site.gen, 'Lighthouse keepers in Maine');
    await makeReadOnly(site.mountPoint, site.root);
    expect(execFileSync('findmnt', ['-n', '-o', 'OPTIONS', '--mountpoint', site.mountPoint]).toString()).toMatch(/^ro,/);
    const atFault = (await site.gen.tasks.get(started.id)).progress.imagesStored;
    const { after } = await holdFault(site.gen, started.id, OUTAGE_MS);
    await remount(site.mountPoint, 'rw');
    const retries = retryLines(site.lines, started.id);
    expect(
      retries.some((e) => /EROFS/.test(e)),
      retries.slice(0, 3).join('\n'),
    ).toBe(true);

    const rows = await expectComplete(site.gen, site.db, started.id);
    const swept = await expectStorageEqualsRows(site, rows.keys);
    expectNoDatabaseOutage(site.lines);
    console.info(
      `[outages-storage] read-only: ${atFault} of ${COUNT * IMAGES} images stored at the fault, ${after.progress.imagesStored} at its end, ` +
        `${retries.length} storage retries, ${swept} temporary files swept`,
    );
  }, 240_000);

  it('filesystem storage full for 60 s: the task completes with every image; storage equals the rows', async () => {
    const site = await fsSite(mounts[1] as string, 'fs_full');
    const started = await startTask(site.gen, 'Bakers in Lyon');
    const filler = await fillUp(site.mountPoint);
    fillers.push(filler);
    const { bavail, bsize } = await statfs(site.mountPoint);
    expect(bavail * bsize).toBeLessThan(1 << 20); // of 64 MiB
    const atFault = (await site.gen.tasks.get(started.id)).progress.imagesStored;
    const { after } = await holdFault(site.gen, started.id, OUTAGE_MS);
    await filler.end();
    const retries = retryLines(site.lines, started.id);
    expect(
      retries.some((e) => /ENOSPC/.test(e)),
      retries.slice(0, 3).join('\n'),
    ).toBe(true);

    const rows = await expectComplete(site.gen, site.db, started.id);
    const swept = await expectStorageEqualsRows(site, rows.keys);
    expectNoDatabaseOutage(site.lines);
    console.info(
      `[outages-storage] full: ${atFault} of ${COUNT * IMAGES} images stored at the fault, ${after.progress.imagesStored} at its end, ` +
        `${retries.length} storage retries, ${swept} temporary files swept`,
    );
  }, 240_000);

  it('S3 (s3rver) killed for 30 s and started again on its port and folder: the task completes; the bucket holds exactly the rows', async () => {
    s3 = await startS3rver([BUCKET]);
    const db = await createTestDatabase('avatargen_e2e_s3_faults');
    databases.push(db);
    const memory = memoryLogger();
    const gen = await createAvatarGen({
      config: {
        ...CONFIG,
        DATABASE_URL: db.url,
        DATA_DIR: dataDir,
        S3_ENDPOINT: s3.endpoint,
        S3_ACCESS_KEY: S3RVER_KEY,
        S3_SECRET_KEY: S3RVER_KEY,
        S3_BUCKET_NAME: BUCKET,
      },
      logger: memory.logger,
      plugins: [localPlugin({ imageSize: 128 }), imageOpencvPlugin({ threads: 1 }), s3Plugin({ faces: false })],
      pipeline: PIPELINE,
    });
    gens.push(gen);
    await gen.worker.start();

    const started = await startTask(gen, 'Ferry crews in Oslo');
    await s3.stop();
    const atFault = (await gen.tasks.get(started.id)).progress.imagesStored;
    const { after } = await holdFault(gen, started.id, S3_OUTAGE_MS);
    await s3.restart();
    const retries = retryLines(memory.lines, started.id);
    expect(retries.length, JSON.stringify(memory.lines.slice(-5))).toBeGreaterThan(0);

    const rows = await expectComplete(gen, db, started.id);
    expectNoDatabaseOutage(memory.lines);
    // The bucket, listed with a client of our own, holds exactly the objects the rows name.
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY },
    });
    const keys: string[] = [];
    try {
      let token: string | undefined;
      for (let page = 0; page < 100; page++) {
        const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, ContinuationToken: token }));
        keys.push(...(listed.Contents ?? []).map((o) => o.Key as string));
        token = listed.NextContinuationToken;
        if (!listed.IsTruncated) break;
      }
    } finally {
      client.destroy();
    }
    expect(keys.sort()).toEqual(rows.keys);
    console.info(
      `[outages-storage] s3rver: ${atFault} of ${COUNT * IMAGES} images stored at the kill, ${after.progress.imagesStored} at the restart, ` +
        `${retries.length} storage retries`,
    );
  }, 240_000);
});
