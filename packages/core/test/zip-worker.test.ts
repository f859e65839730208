import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExportsService, type ObjectStorage, StorageError } from '../src/index.js';
import { type Harness, REQUEST, startHarness, waitForStatus } from './support/harness.js';
import { readAll, unzip } from './support/zip.js';

/**
 * ZIP exports built in a worker thread (the filesystem storage offers a worker reader): the same
 * archive as on the main thread, the same failures, bounded workers, and piece memory reused
 * only once written out.
 */
describe('ZIP export in a worker', () => {
  let h: Harness;
  let taskId: string;
  let storage: ObjectStorage;
  let keys: string[];
  const temp = mkdtempSync(join(tmpdir(), 'avatargen-zip-worker-'));
  /** The storage, counting the reads made on this thread. */
  let mainThreadReads = 0;
  const counted = (): ObjectStorage => ({
    ...storage,
    get: (key) => {
      mainThreadReads++;
      return storage.get(key);
    },
    read: (key) => {
      mainThreadReads++;
      return (storage.read as (key: string) => Promise<Uint8Array>)(key);
    },
  });
  const onMainThread = (): ObjectStorage => ({ ...storage, workerReader: undefined });

  beforeAll(async () => {
    h = await startHarness();
    const task = await h.gen.tasks.submit({ ...REQUEST, count: 10, imagesPerPersona: 4 });
    taskId = task.id;
    await waitForStatus(h.gen, taskId, ['completed']);
    storage = h.gen.port('objectStorage');
    keys = [];
    for await (const persona of h.gen.personas.all(taskId)) {
      if (persona.baseImage) keys.push(persona.baseImage.key);
      for (const image of persona.images) keys.push(image.key);
    }
    // Objects of 150-350 KB: the archive (~12 MB) spans many 1 MiB pieces, and objects
    // straddle them.
    for (const key of keys) writeFileSync(join(h.storageRoot, key), randomBytes(150_000 + Math.floor(Math.random() * 200_000)));
  });
  afterAll(async () => {
    await h.close();
    rmSync(temp, { recursive: true, force: true });
  });

  it('makes the same archive, byte for byte, as the main thread, without reading on this thread', async () => {
    expect(storage.workerReader).toBeTypeOf('function');
    const here = await readAll(await new ExportsService(h.gen.tasks, h.gen.personas, onMainThread()).zip(taskId));
    mainThreadReads = 0;
    const inWorker = await readAll(await new ExportsService(h.gen.tasks, h.gen.personas, counted()).zip(taskId));
    expect(mainThreadReads).toBe(0);
    expect(inWorker.length).toBeGreaterThan(10_000_000);
    expect(inWorker.equals(here)).toBe(true);
  });

  it('reuses piece memory only after the destination has written it out', async () => {
    const expected = await readAll(await new ExportsService(h.gen.tasks, h.gen.personas, onMainThread()).zip(taskId));
    // Like a socket to a slow client: a piece's bytes are read when its write completes, a few
    // milliseconds later, with more pieces queued behind it.
    const received: Buffer[] = [];
    const slowClient = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _encoding, done) {
        setTimeout(() => {
          received.push(Buffer.from(chunk)); // a copy, taken at completion
          done();
        }, 5);
      },
    });
    const zip = await h.gen.exports.zip(taskId);
    expect(zip.reuseAfter(slowClient)).toBe(true);
    const seen: Buffer[] = [];
    const written = pipeline(zip, slowClient);
    zip.on('data', (chunk: Buffer) => seen.push(chunk));
    await written;
    expect(Buffer.concat(received).equals(expected)).toBe(true);
    // Pieces given back to the worker are detached here (their memory moved): some were.
    expect(seen.length).toBeGreaterThan(5);
    expect(seen.filter((chunk) => chunk.length === 0).length).toBeGreaterThan(0);
    // Main-thread exports have no such memory.
    const here = await new ExportsService(h.gen.tasks, h.gen.personas, onMainThread()).zip(taskId);
    expect(here.reuseAfter(new Writable())).toBe(false);
    here.destroy();
  });

  it('lists objects the reader cannot find, and fails the download on any other storage failure', async () => {
    const spec = storage.workerReader?.() as NonNullable<ReturnType<NonNullable<ObjectStorage['workerReader']>>>;
    const failing = (fail: Record<string, string>, missing: string[]): ObjectStorage => ({
      ...counted(),
      workerReader: () => ({
        module: new URL('./support/failing-reader.ts', import.meta.url).href,
        factory: 'openFailingReader',
        options: { root: (spec.options as { root: string }).root, fail, missing },
      }),
    });
    mainThreadReads = 0;
    const withMissing = await readAll(await new ExportsService(h.gen.tasks, h.gen.personas, failing({}, [keys[3] as string])).zip(taskId));
    expect(mainThreadReads).toBe(0);
    const files = await unzip(withMissing);
    const manifest = JSON.parse((files.get('manifest.json') as Buffer).toString('utf8'));
    expect(manifest.missing).toHaveLength(1);
    expect(files.has(manifest.missing[0])).toBe(false);
    expect(files.size).toBe(2 + 10 * 2 + keys.length - 1 + 1); // the card (DATASET.md, dataset.json), details.json and .csv, the objects found, the manifest

    const download = await new ExportsService(h.gen.tasks, h.gen.personas, failing({ [keys[7] as string]: 'timed out' }, [])).zip(taskId);
    const error = await readAll(download).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).message).toBe(`read ${keys[7]}: timed out`);
    expect((error as StorageError).retryable).toBe(true);
  });

  it('fails the download when the worker thread dies, and the next export gets a worker again', async () => {
    const spec = storage.workerReader?.() as NonNullable<ReturnType<NonNullable<ObjectStorage['workerReader']>>>;
    const crashing: ObjectStorage = {
      ...storage,
      workerReader: () => ({
        module: new URL('./support/failing-reader.ts', import.meta.url).href,
        factory: 'openFailingReader',
        options: { root: (spec.options as { root: string }).root, fail: {}, missing: [], crashOn: keys[9] },
      }),
    };
    for (let i = 0; i < 3; i++) {
      await expect(readAll(await new ExportsService(h.gen.tasks, h.gen.personas, crashing).zip(taskId))).rejects.toThrow(/the worker stopped/);
    }
    mainThreadReads = 0;
    await readAll(await new ExportsService(h.gen.tasks, h.gen.personas, counted()).zip(taskId));
    expect(mainThreadReads).toBe(0);
  });

  it('closes the persona listing (and its database reads) when the client goes away mid-export', async () => {
    let listings = 0;
    let closed = 0;
    const personas = Object.create(h.gen.personas) as typeof h.gen.personas;
    personas.all = async function* (id, scope, pageSize) {
      listings++;
      try {
        yield* h.gen.personas.all(id, scope, pageSize);
      } finally {
        closed++;
      }
    };
    const zip = await new ExportsService(h.gen.tasks, personas, storage).zip(taskId);
    await new Promise<void>((resolve) => zip.once('data', () => resolve()));
    zip.destroy();
    for (let waited = 0; closed === 0 && waited < 2000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
    expect([listings, closed]).toEqual([1, 1]);
  });

  it('fails the download with the reason when the worker cannot open the reader', async () => {
    const broken: ObjectStorage = { ...storage, workerReader: () => ({ module: new URL('./support/failing-reader.ts', import.meta.url).href, factory: 'noSuchFactory', options: {} }) };
    await expect(readAll(await new ExportsService(h.gen.tasks, h.gen.personas, broken).zip(taskId))).rejects.toThrow(
      /ZIP export failed: .*failing-reader\.ts has no function noSuchFactory/,
    );
  });

  it('stops the worker when the client goes away, and keeps two workers at most', async () => {
    for (let i = 0; i < 3; i++) {
      const zip = await new ExportsService(h.gen.tasks, h.gen.personas, counted()).zip(taskId);
      await new Promise<void>((resolve) => zip.once('data', () => resolve()));
      zip.destroy();
      await new Promise((resolve) => zip.once('close', resolve));
    }
    await new Promise((resolve) => setTimeout(resolve, 100)); // the terminated workers' exit events
    // Had an abandoned worker stayed counted, this export would run on the main thread.
    mainThreadReads = 0;
    const expected = await readAll(await new ExportsService(h.gen.tasks, h.gen.personas, counted()).zip(taskId));
    expect(mainThreadReads).toBe(0);

    // Three at once: two in workers, the third on the main thread; all three whole.
    mainThreadReads = 0;
    const three = await Promise.all([1, 2, 3].map(async () => new ExportsService(h.gen.tasks, h.gen.personas, counted()).zip(taskId)));
    const bodies = await Promise.all(three.map(readAll));
    for (const body of bodies) expect(body.equals(expected)).toBe(true);
    expect(mainThreadReads).toBe(keys.length);
  });

  it('holds back the worker while the client does not read', async () => {
    const zip = await h.gen.exports.zip(taskId);
    zip.pause();
    await new Promise((resolve) => setTimeout(resolve, 500));
    // a few pieces at most: the 1 MiB stream buffer, and what the worker may send ahead
    expect(zip.readableLength).toBeLessThanOrEqual(4 * 1024 * 1024);
    const file = join(temp, 'slow.zip');
    await pipeline(zip, createWriteStream(file));
    const expected = await readAll(await new ExportsService(h.gen.tasks, h.gen.personas, onMainThread()).zip(taskId));
    expect((await readAll(createReadStream(file))).equals(expected)).toBe(true);
  });
});
