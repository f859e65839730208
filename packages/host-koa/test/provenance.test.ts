import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { DIGITAL_SOURCE_TYPE, GENERATOR, insertXmp, openDatabase, renderXmp, SettingsService } from '@avatargen/core';
import { createTestDatabase, readXmpOfFilesWithExiftool, readXmpWithExiftool, type TestDatabase } from '@avatargen/core/testing';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImageProcessor } from '@avatargen/image-opencv';
import { createFilesystemStorage } from '@avatargen/storage-filesystem';
import type { AvatarGen } from '@avatargen/core';
import { type Io, main } from '../src/cli.js';
import { ThumbnailCache } from '../src/thumbs.js';
import { readZip } from './support/zip.js';

/**
 * Provenance marks end to end: real tasks (provider-local, the real sharp pool, filesystem
 * storage, PostgreSQL), read back by exiftool from storage and from the ZIP, then `verify`.
 */
let db: TestDatabase;
let dir: string;

function io() {
  const out: string[] = [];
  const err: string[] = [];
  const value: Io = {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    errRaw: (text) => err.push(text),
    isTTY: false,
    env: { DATABASE_URL: db.url, DATA_DIR: join(dir, 'data'), LOG_LEVEL: 'silent', IMAGE_PROCESSOR_THREADS: '2' },
    cwd: dir,
  };
  return { io: value, out, err };
}

/** Task ids by whether they were made with marks on. */
const tasks: { marked?: string; unmarked?: string } = {};

/** Runs `avatargen generate` and returns the task id, the ZIP's entries and the stored objects of the task. */
async function generate() {
  const run = io();
  expect(await main(['generate', '-d', 'Lighthouse keepers in Brittany', '-n', '10', '-i', '4'], run.io), run.err.join('\n')).toBe(0);
  const taskId = /Task (\S+) of/.exec(run.err.join('\n'))?.[1] as string;
  const entries = await readZip(await readFile(run.out[0] as string));
  const root = join(dir, 'data', 'storage', 'tasks', taskId);
  const stored = readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => ({ key: relative(root, join(e.parentPath, e.name)), path: join(e.parentPath, e.name) }));
  return { taskId, entries, stored };
}

const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

beforeAll(async () => {
  db = await createTestDatabase('avatargen_provenance');
  dir = mkdtempSync(join(tmpdir(), 'avatargen-provenance-'));
  expect(await main(['migrate'], io().io)).toBe(0);
  expect(await main(['user', 'create', '--email', 'marks@example.com', '--admin'], io().io)).toBe(0);
});
afterAll(async () => {
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('provenance marks', () => {
  it('marks every stored picture, keeps the marks byte for byte in the ZIP, and verify finds them', async () => {
    const { taskId, entries, stored } = await generate();
    tasks.marked = taskId;
    // 10 base selfies (PNG from provider-local) and 40 styled cells (JPEG)
    expect(stored.filter((s) => /^\d+\/base\.png$/.test(s.key))).toHaveLength(10);
    expect(stored.filter((s) => /^\d+\/\d+\.jpg$/.test(s.key))).toHaveLength(40);
    const read = await readXmpOfFilesWithExiftool(stored.map((s) => s.path));
    for (const [i, { key }] of stored.entries()) {
      const tags = read[i] ?? {};
      expect(tags, key).toMatchObject({
        DigitalSourceType: DIGITAL_SOURCE_TYPE,
        CreatorTool: GENERATOR,
        DatasetId: taskId,
        PersonaId: Number(key.split('/')[0]),
      });
      expect(String(tags.Description)).toMatch(/synthetic person/i);
      // provider-local fills the persona, prompt and image ports (and names its makers); image-opencv processes
      expect(tags.Providers?.map((p) => `${p.Port}=${p.Plugin}${p.Model ? ` (${p.Model})` : ''}`)).toEqual([
        'personaProvider=@avatargen/provider-local (faker)',
        'imagePromptProvider=@avatargen/provider-local',
        'imageProvider=@avatargen/provider-local (dicebear-avataaars)',
        'imageProcessor=@avatargen/image-opencv',
      ]);
    }

    // the ZIP's pictures are the stored objects, byte for byte, and exiftool reads the mark from the extracted files
    const storedHashes = new Set(stored.map((s) => sha(readFileSync(s.path))));
    const extracted = join(dir, 'extracted');
    const pictures = [...entries].filter(([name]) => /\.(png|jpe?g|webp)$/.test(name));
    expect(pictures).toHaveLength(50);
    for (const [name, bytes] of pictures) {
      expect(storedHashes.has(sha(bytes)), name).toBe(true);
      mkdirSync(dirname(join(extracted, name)), { recursive: true });
      writeFileSync(join(extracted, name), bytes);
    }
    const fromZip = await readXmpOfFilesWithExiftool(pictures.map(([name]) => join(extracted, name)));
    expect(fromZip.map((t) => t.DigitalSourceType)).toEqual(Array(50).fill(DIGITAL_SOURCE_TYPE));

    const verify = io();
    expect(await main(['verify', extracted, '--json'], verify.io), verify.err.join('\n')).toBe(0);
    const report = JSON.parse(verify.out.join('\n'));
    expect(report).toMatchObject({ marked: 50, unmarked: 0 });
    for (const picture of report.pictures) {
      expect(picture).toMatchObject({ marked: true, generator: GENERATOR, datasetId: taskId, datasetExists: true, personaExists: true });
    }

    // an unmarked picture among them: reported, exit 1
    const plain = join(extracted, 'plain.webp');
    writeFileSync(
      plain,
      await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } })
        .webp()
        .toBuffer(),
    );
    const text = io();
    expect(await main(['verify', extracted], text.io)).toBe(1);
    expect(text.out).toContain(`UNMARKED ${plain}`);
    expect(text.out.at(-1)).toBe('50 of 51 pictures marked as AI-generated.');
    const one = io();
    expect(await main(['verify', plain, '--json'], one.io)).toBe(1);
    expect(JSON.parse(one.out.join('\n')).pictures).toEqual([
      { file: plain, marked: false, generator: null, datasetId: null, personaId: null, datasetExists: null, personaExists: null },
    ]);
  }, 120_000);

  it('verify tells a mark whose dataset and persona are not on this site', async () => {
    const picture = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } })
      .png()
      .toBuffer();
    const file = join(dir, 'foreign.png');
    writeFileSync(file, insertXmp(picture, 'image/png', renderXmp({ datasetId: 'made-elsewhere', personaId: 7, providers: [] })));
    const run = io();
    // marked (exit 0), but nothing of it exists here
    expect(await main(['verify', file], run.io)).toBe(0);
    expect(run.out[0]).toBe(`marked   ${file}: dataset made-elsewhere (not on this site), persona 7 (not on this site)`);
  });

  it('a site with marks off writes none', async () => {
    const orm = await openDatabase({ url: db.url });
    try {
      await new SettingsService(orm).update({ provenance_marks: false });
    } finally {
      await orm.close();
    }
    const { taskId, entries, stored } = await generate();
    tasks.unmarked = taskId;
    expect(stored).toHaveLength(50);
    const read = await readXmpOfFilesWithExiftool(stored.map((s) => s.path));
    expect(read.map((t) => t.DigitalSourceType)).toEqual(Array(50).fill(undefined));
    const extracted = join(dir, 'unmarked');
    for (const [name, bytes] of entries) {
      if (!/\.(png|jpe?g|webp)$/.test(name)) continue;
      mkdirSync(dirname(join(extracted, name)), { recursive: true });
      writeFileSync(join(extracted, name), bytes);
    }
    const run = io();
    expect(await main(['verify', extracted], run.io)).toBe(1);
    expect(run.out.at(-1)).toBe('0 of 50 pictures marked as AI-generated.');
  }, 120_000);

  it('thumbnails carry the mark of their original; unmarked originals get one from the key only while marks are on', async () => {
    const orm = await openDatabase({ url: db.url });
    const settings = new SettingsService(orm);
    const storage = createFilesystemStorage({ root: join(dir, 'data', 'storage') });
    const processor = createImageProcessor({ threads: 1 });
    // the parts ThumbnailCache uses, real ones: the site's storage, the sharp pool, the settings in PostgreSQL
    const ports: Record<string, unknown> = { objectStorage: storage, imageProcessor: processor };
    const gen = {
      port: (name: string) => ports[name],
      settings,
      plugins: { ports: { imageProvider: { plugin: '@avatargen/provider-local', decoratedBy: [] } } },
      logger: { warn: () => undefined },
    } as unknown as AvatarGen;
    try {
      const thumbOf = async (key: string) => {
        const thumbs = new ThumbnailCache(gen, 64);
        return readXmpWithExiftool(Buffer.from((await thumbs.get(key)) as Buffer), 'webp');
      };
      const personaOf = (taskId: string) =>
        readdirSync(join(dir, 'data', 'storage', 'tasks', taskId)).find((d) => /^\d+$/.test(d)) as string;
      const marked = personaOf(tasks.marked as string);
      // marks are off here: this mark can only come from the original's own packet
      expect(await thumbOf(`tasks/${tasks.marked}/${marked}/0.jpg`)).toMatchObject({
        DigitalSourceType: DIGITAL_SOURCE_TYPE,
        DatasetId: tasks.marked,
        PersonaId: Number(marked),
        Providers: expect.arrayContaining([{ Port: 'imageProvider', Plugin: '@avatargen/provider-local', Model: 'dicebear-avataaars' }]),
      });
      // marks are still off (the test before turned them off): an unmarked original gives an unmarked thumbnail
      const unmarked = personaOf(tasks.unmarked as string);
      expect((await thumbOf(`tasks/${tasks.unmarked}/${unmarked}/1.jpg`)).DigitalSourceType).toBeUndefined();
      await settings.update({ provenance_marks: true });
      expect(await thumbOf(`tasks/${tasks.unmarked}/${unmarked}/2.jpg`)).toMatchObject({
        DigitalSourceType: DIGITAL_SOURCE_TYPE,
        DatasetId: tasks.unmarked,
        PersonaId: Number(unmarked),
        Providers: [{ Port: 'imageProvider', Plugin: '@avatargen/provider-local' }],
      });
    } finally {
      await processor.close();
      await orm.close();
    }
  }, 60_000);
});
