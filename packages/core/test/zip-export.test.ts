import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import yauzl from 'yauzl';
import { ExportsService, type ObjectStorage, StorageError } from '../src/index.js';
import { type Harness, REQUEST, startHarness, waitForStatus } from './support/harness.js';
import { readAll, unzip } from './support/zip.js';

/** Every entry's name, compression method and general purpose flags. */
function entries(buffer: Buffer): Promise<Array<{ name: string; method: number; flags: number }>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buffer, { lazyEntries: true }, (error, zip) => {
      if (error || !zip) return reject(error);
      const found: Array<{ name: string; method: number; flags: number }> = [];
      zip.on('entry', (entry: yauzl.Entry) => {
        found.push({ name: entry.fileName, method: entry.compressionMethod, flags: entry.generalPurposeBitFlag });
        zip.readEntry();
      });
      zip.on('end', () => resolve(found));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

/** Waits until `value()` has not changed for a while (at most a few seconds). */
async function settled(value: () => number): Promise<number> {
  let last = -1;
  let same = 0;
  for (let i = 0; i < 100 && same < 6; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    same = value() === last ? same + 1 : 0;
    last = value();
  }
  return last;
}

/** ZIP exports of larger objects: streaming with backpressure, the archive's format, failures. */
describe('ZIP export', () => {
  let h: Harness;
  let taskId: string;
  let storage: ObjectStorage;
  let keys: string[];
  let reads = 0;
  /** The storage, counting reads. */
  const counted = (): ObjectStorage => ({
    ...storage,
    list: (prefix) => storage.list(prefix),
    publicUrl: (key) => storage.publicUrl(key),
    get: (key) => {
      reads++;
      return storage.get(key);
    },
    read: (key) => {
      reads++;
      return (storage.read as (key: string) => Promise<Uint8Array>)(key);
    },
  });

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
    // Objects of 150-350 KB: the archive (~12 MB) is far larger than any stream buffer.
    for (const key of keys) writeFileSync(join(h.storageRoot, key), randomBytes(150_000 + Math.floor(Math.random() * 200_000)));
  });
  afterAll(() => h.close());

  it('stores pictures with their sizes and CRC in the local header, and makes the same archive every time', async () => {
    const first = await readAll(await h.gen.exports.zip(taskId));
    expect(first.length).toBeGreaterThan(10_000_000);
    const files = await unzip(first); // checks every CRC-32
    expect(files.size).toBe(2 + 10 * 2 + keys.length + 2); // the card, details, pictures, quality.json and the manifest
    for (const entry of await entries(first)) {
      if (!entry.name.includes('/images/')) continue;
      expect(entry.method, entry.name).toBe(0); // stored
      expect(entry.flags & 0x8, entry.name).toBe(0); // no data descriptor: streaming unzippers can read it
    }
    expect((await readAll(await h.gen.exports.zip(taskId))).equals(first)).toBe(true);
  });

  it('holds back reading from the storage while the client does not read', async () => {
    reads = 0;
    const zip = await new ExportsService(h.gen.tasks, h.gen.personas, counted()).zip(taskId);
    zip.pause();
    const readWhilePaused = await settled(() => reads);
    expect(readWhilePaused).toBeGreaterThan(0);
    // the read-ahead window and what the stream buffers hold: a few objects of the 50
    expect(readWhilePaused).toBeLessThanOrEqual(16);
    expect(zip.readableLength).toBeLessThanOrEqual(2 * 1024 * 1024);
    // A slow client gets the whole archive.
    const received: Buffer[] = [];
    const slowClient = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _encoding, done) {
        received.push(chunk);
        setTimeout(done, 1);
      },
    });
    await pipeline(zip, slowClient);
    expect(reads).toBe(keys.length);
    const files = await unzip(Buffer.concat(received));
    expect(files.size).toBe(2 + 10 * 2 + keys.length + 1);
  });

  it('fails the download with the StorageError of a read that fails', async () => {
    const failing: ObjectStorage = {
      ...counted(),
      read: (key) =>
        key === keys[7]
          ? Promise.reject(new StorageError('read', key, 'timed out', { retryable: true }))
          : (storage.read as (key: string) => Promise<Uint8Array>)(key),
    };
    const error = await readAll(await new ExportsService(h.gen.tasks, h.gen.personas, failing).zip(taskId)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).message).toBe(`read ${keys[7]}: timed out`);
    expect((error as StorageError).retryable).toBe(true);
  });

  it('stops reading, and closes the persona listing, when the client goes away mid-export', async () => {
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
    reads = 0;
    const zip = await new ExportsService(h.gen.tasks, personas, counted()).zip(taskId);
    await new Promise<void>((resolve) => zip.once('data', () => resolve()));
    zip.destroy();
    await settled(() => closed);
    expect([listings, closed]).toEqual([1, 1]);
    expect(await settled(() => reads)).toBeLessThan(keys.length);
  });
});
