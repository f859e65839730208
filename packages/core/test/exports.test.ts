import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JoinedChunks } from '../src/exports/zip.js';
import { CSV_COLUMNS, ExportsService, folderName, neutralizeCell, NotFoundError, type ObjectStorage, StorageError } from '../src/index.js';
import { type Harness, REQUEST, startHarness, waitForStatus } from './support/harness.js';
import { readAll, unzip } from './support/zip.js';

describe('exports', () => {
  let h: Harness;
  let taskId: string;
  const names: Array<[string, string]> = [
    ['Maria', 'Garcia'],
    ['Maria', 'Garcia'],
    ['=HYPERLINK("http://evil")', 'Smith'],
    ['../..', 'etc'],
    ['Zoë', 'Ångström\u0007'],
  ];
  beforeAll(async () => {
    h = await startHarness({
      fakes: {
        shapeBatch: (_seed, personas) =>
          personas.map((p, i) => {
            const [firstName, lastName] = names[i] ?? [p.firstName, p.lastName];
            return {
              ...p,
              firstName,
              lastName,
              about: i === 1 ? '+1 555 0100, -dash, @handle, \ttab' : p.about,
              currentCity: i === 3 ? 'Berlin;=1+1' : p.currentCity,
            };
          }),
      },
    });
    const task = await h.gen.tasks.submit({ ...REQUEST, count: 10, imagesPerPersona: 4 });
    taskId = task.id;
    await waitForStatus(h.gen, taskId, ['completed']);
  });
  afterAll(() => h.close());

  it('neutralises formula cells and makes safe, unique folder names', () => {
    expect(['=1+1', '+1', '-1', '@x', '\tx', '\rx', 'ok'].map(neutralizeCell)).toEqual([
      "'=1+1",
      "'+1",
      "'-1",
      "'@x",
      "'\tx",
      "'\rx",
      'ok',
    ]);
    const taken = new Set<string>();
    expect(['Maria Garcia', 'maria garcia', '../../etc/passwd', '..', 'a/b\\c', 'x\u0000y'].map((n) => folderName(n, taken))).toEqual([
      'Maria_Garcia',
      'maria_garcia_2',
      'etc-passwd',
      'persona',
      'a-b-c',
      'xy',
    ]);
  });

  it('writes JSON with the task and every persona', async () => {
    const json = await h.gen.exports.json(taskId);
    expect(json.task.id).toBe(taskId);
    expect(json.personas).toHaveLength(10);
    expect(json.personas[0]?.images).toHaveLength(4);
  });

  it('writes a CSV with one row per persona and no live formulas', async () => {
    const text = (await readAll(await h.gen.exports.csv(taskId))).toString('utf8');
    const rows: Record<string, string>[] = parse(text, { columns: true, bom: true });
    expect(rows).toHaveLength(10);
    expect(Object.keys(rows[0] ?? {})).toEqual([...CSV_COLUMNS]);
    const evil = rows.find((r) => r.last_name === "Smith");
    expect(evil?.first_name).toBe(`'=HYPERLINK("http://evil")`);
    expect(rows[1]?.about).toBe("'+1 555 0100, -dash, @handle, \ttab");
    for (const row of rows) {
      for (const cell of Object.values(row)) expect(cell).not.toMatch(/^[=+\-@\t\r]/);
    }
    expect(rows[0]?.image_urls?.split(' ')).toHaveLength(4);
    expect(rows[3]?.current_city).toBe('Berlin;=1+1');
    // A spreadsheet that splits on ';' finds a new cell only at a ';' outside quotes: there is none.
    let quoted = false;
    const outside: string[] = [];
    for (const char of text) {
      if (char === '"') quoted = !quoted;
      else if (!quoted && char === ';') outside.push(char);
    }
    expect(outside).toEqual([]);
  });

  it('streams a ZIP of profiles with a sha256 manifest', async () => {
    const files = await unzip(await readAll(await h.gen.exports.zip(taskId)));
    const manifest = JSON.parse((files.get('manifest.json') as Buffer).toString('utf8'));
    expect(manifest.missing).toEqual([]);
    const paths = [...files.keys()].filter((p) => p !== 'manifest.json');
    expect(manifest.files.map((f: { path: string }) => f.path).sort()).toEqual([...paths].sort());
    for (const entry of manifest.files) {
      const data = files.get(entry.path) as Buffer;
      expect(data.length).toBe(entry.size);
      expect(createHash('sha256').update(data).digest('hex')).toBe(entry.sha256);
    }
    // the dataset card first, at the top
    expect(paths.slice(0, 2)).toEqual(['DATASET.md', 'dataset.json']);
    const folders = [...new Set(paths.slice(2).map((p) => p.split('/').slice(0, 2).join('/')))];
    expect(folders).toHaveLength(10);
    expect(folders).toContain('profiles/Maria_Garcia');
    expect(folders).toContain('profiles/Maria_Garcia_2');
    expect(folders).toContain('profiles/etc');
    expect(folders).toContain('profiles/Zoë_Ångström');
    expect(paths.every((p) => !p.includes('..') && !p.startsWith('/'))).toBe(true);
    const maria = paths.filter((p) => p.startsWith('profiles/Maria_Garcia/')).sort();
    expect(maria).toEqual([
      'profiles/Maria_Garcia/details.csv',
      'profiles/Maria_Garcia/details.json',
      'profiles/Maria_Garcia/images/00.png',
      'profiles/Maria_Garcia/images/01.png',
      'profiles/Maria_Garcia/images/02.png',
      'profiles/Maria_Garcia/images/03.png',
      'profiles/Maria_Garcia/images/04.png',
    ]);
    const details = JSON.parse((files.get('profiles/Maria_Garcia/details.json') as Buffer).toString('utf8'));
    expect(details.firstName).toBe('Maria');
  });

  it('lists a missing object in the manifest, and fails the download when storage fails', async () => {
    const page = await h.gen.personas.list(taskId, { perPage: 1 });
    const [gone, broken] = page.personas[0]?.images ?? [];
    rmSync(join(h.storageRoot, gone?.key as string));
    // built in a worker (the filesystem storage has a worker reader) and on this thread
    const storageHere: ObjectStorage = { ...h.gen.port('objectStorage'), workerReader: undefined };
    for (const exports of [h.gen.exports, new ExportsService(h.gen.tasks, h.gen.personas, storageHere)]) {
      const files = await unzip(await readAll(await exports.zip(taskId)));
      const manifest = JSON.parse((files.get('manifest.json') as Buffer).toString('utf8'));
      expect(manifest.missing).toHaveLength(1);
      expect(manifest.missing[0]).toMatch(/^profiles\/.+\/images\/0[1-4]\.png$/);
      expect(files.has(manifest.missing[0])).toBe(false);
    }
    // A storage that fails to read an object (an outage, not a missing key) fails the download.
    const storage = h.gen.port('objectStorage');
    const failing: ObjectStorage = {
      ...storage,
      list: (prefix) => storage.list(prefix),
      publicUrl: (key) => storage.publicUrl(key),
      get: (key) =>
        key === broken?.key ? Promise.reject(new StorageError('get', key, 'connection reset')) : storage.get(key),
      read: undefined,
      workerReader: undefined, // on the main thread; the worker's path is tested below
    };
    const exports = new ExportsService(h.gen.tasks, h.gen.personas, failing);
    await expect(readAll(await exports.zip(taskId))).rejects.toThrow(/connection reset/);
    // the same through read(), which the export prefers when the storage has it
    const failingRead: ObjectStorage = {
      ...failing,
      read: (key) =>
        key === broken?.key ? Promise.reject(new StorageError('read', key, 'timed out')) : (storage.read as (key: string) => Promise<Uint8Array>)(key),
    };
    await expect(readAll(await new ExportsService(h.gen.tasks, h.gen.personas, failingRead).zip(taskId))).rejects.toThrow(/timed out/);
  });

  it('checks access before exporting', async () => {
    await expect(h.gen.exports.zip(taskId, { userId: 999 })).rejects.toBeInstanceOf(NotFoundError);
    await expect(h.gen.exports.csv(taskId, { userId: 999 })).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe('JoinedChunks', () => {
  it('joins small chunks, passes large ones on uncopied, and keeps the order', async () => {
    const joined = new JoinedChunks(1024 * 1024);
    const small = (n: number, fill: number) => Buffer.alloc(n, fill);
    const large = Buffer.alloc(40 * 1024, 9);
    const input = [small(30, 1), small(4, 2), small(12, 3), large, small(5, 4), ...Array.from({ length: 5 }, (_, i) => small(4000, 10 + i)), small(7, 5)];
    const out: Buffer[] = [];
    joined.on('data', (chunk: Buffer) => out.push(chunk));
    const ended = new Promise((resolve) => joined.on('end', resolve));
    for (const chunk of input) joined.write(chunk);
    joined.end();
    await ended;
    expect(Buffer.concat(out).equals(Buffer.concat(input))).toBe(true);
    // the three small ones joined, the large one as it came, 16 KiB gathered (5 + 5 x 4000), the rest at the end
    expect(out.map((c) => c.length)).toEqual([46, 40 * 1024, 20_005, 7]);
    expect(out[1]).toBe(large);
  });
});
