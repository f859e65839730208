import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { stringify } from 'csv-stringify';
import { stringify as stringifySync } from 'csv-stringify/sync';
import { StorageError } from '../errors.js';
import { extensionFor } from '../image-info.js';
import type { ObjectStorage } from '../ports.js';
import { readObject } from '../storage/read.js';
import type { PersonasService } from '../services/personas.js';
import type { Scope, TasksService } from '../services/tasks.js';
import type { PersonaView, TaskView } from '../services/views.js';
import { DatasetZip, JoinedChunks } from './zip.js';

/** Columns of the CSV export, in order. */
export const CSV_COLUMNS = [
  'id',
  'first_name',
  'last_name',
  'gender',
  'ethnicity',
  'age',
  'job_title',
  'workplace',
  'edu_establishment',
  'edu_study',
  'current_city',
  'current_state',
  'prev_city',
  'prev_state',
  'bio_facebook',
  'bio_instagram',
  'bio_x',
  'bio_tiktok',
  'about',
  'base_image_url',
  'image_urls',
] as const;

/**
 * Neutralises spreadsheet formulas: a cell that starts with =, +, -, @, tab or CR is prefixed
 * with a quote so Excel and LibreOffice show it as text instead of running it.
 */
export function neutralizeCell(value: string): string {
  return /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
}

function csvRow(p: PersonaView): Record<(typeof CSV_COLUMNS)[number], string | number | null> {
  return {
    id: p.id,
    first_name: p.firstName,
    last_name: p.lastName,
    gender: p.gender,
    ethnicity: p.ethnicity,
    age: p.age,
    job_title: p.jobTitle,
    workplace: p.workplace,
    edu_establishment: p.eduEstablishment,
    edu_study: p.eduStudy,
    current_city: p.currentCity,
    current_state: p.currentState,
    prev_city: p.prevCity,
    prev_state: p.prevState,
    bio_facebook: p.bios.facebook,
    bio_instagram: p.bios.instagram,
    bio_x: p.bios.x,
    bio_tiktok: p.bios.tiktok,
    about: p.about,
    base_image_url: p.baseImage?.url ?? '',
    image_urls: p.images.map((i) => i.url).join(' '),
  };
}

const csvOptions = {
  header: true,
  columns: [...CSV_COLUMNS],
  bom: true,
  // Every field quoted: a spreadsheet that splits lines on ';' (the default list separator in
  // many locales) must not find a new cell, starting with '=', inside an unquoted field.
  quoted: true,
  cast: { string: (value: string) => neutralizeCell(value) },
};

/** A persona as written to details.json and the JSON export: its data and image references. */
function personaRecord(p: PersonaView) {
  // The persona as people read it: no pipeline bookkeeping, image references without storage keys.
  const { taskId, batchNo, batchIndex, imagesStatus, imagesError, images, ...persona } = p;
  return { ...persona, images: images.map(({ index, url, width, height, style }) => ({ index, url, width, height, style })) };
}

/**
 * Folder name for a persona inside the ZIP: readable, safe on every file system, and unique
 * within the archive (compared case-insensitively; a repeat gets _2, _3...).
 */
export function folderName(name: string, taken: Set<string>): string {
  let base = name
    .normalize('NFC')
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we strip
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, '')
    .replace(/[/\\:*?"<>|]/g, '-')
    .replace(/\s+/g, '_')
    .replace(/^[.\-_]+/, '')
    .replace(/\.+$/, '')
    .slice(0, 80);
  if (base === '' || /^\.+$/.test(base)) base = 'persona';
  let candidate = base;
  for (let n = 2; taken.has(candidate.toLowerCase()); n++) candidate = `${base}_${n}`;
  taken.add(candidate.toLowerCase());
  return candidate;
}

/** Objects read ahead of the ZIP writer. */
const PREFETCH = 8;
/** Bytes of finished ZIP waiting for a slow reader before we stop adding entries. */
const BUFFERED_MAX = 2 * 1024 * 1024;

export interface ManifestEntry {
  path: string;
  size: number;
  sha256: string;
}

/** Dataset exports: JSON, CSV and a streamed ZIP with a sha256 manifest. */
export class ExportsService {
  constructor(
    private readonly tasks: TasksService,
    private readonly personas: PersonasService,
    private readonly storage: ObjectStorage,
  ) {}

  /** The task and every persona, as one JSON document. */
  async json(taskId: string, scope: Scope = {}): Promise<{ task: TaskView; personas: ReturnType<typeof personaRecord>[] }> {
    const task = await this.tasks.get(taskId, scope);
    const personas = [];
    for await (const persona of this.personas.all(taskId, scope)) personas.push(personaRecord(persona));
    return { task, personas };
  }

  /** One row per persona, streamed. Access is checked before the stream is returned. */
  async csv(taskId: string, scope: Scope = {}): Promise<Readable> {
    await this.tasks.get(taskId, scope);
    const source = Readable.from(
      (async function* (personas: PersonasService) {
        for await (const persona of personas.all(taskId, scope)) yield csvRow(persona);
      })(this.personas),
    );
    const out = stringify(csvOptions);
    source.on('error', (error) => out.destroy(error));
    return source.pipe(out);
  }

  /**
   * The dataset as a ZIP, written as a stream (memory stays flat whatever the size):
   * profiles/<name>/details.json, details.csv, images/NN.<ext>, and manifest.json last with a
   * sha256 per file. Images are stored, not deflated (they are compressed already).
   */
  async zip(taskId: string, scope: Scope = {}): Promise<Readable> {
    const task = await this.tasks.get(taskId, scope);
    const archive = new DatasetZip({ zlib: { level: 6 } });
    // A plain Node stream for callers (zip-stream is built on readable-stream).
    const output = new JoinedChunks(256 * 1024);
    archive.on('error', (error: Error) => output.destroy(error));
    archive.pipe(output);
    let aborted = false;
    output.once('close', () => {
      aborted = true;
      archive.destroy();
    });
    const manifest: ManifestEntry[] = [];
    const missing: string[] = [];
    const add = async (path: string, data: Buffer, compress: boolean) => {
      manifest.push({ path, size: data.length, sha256: createHash('sha256').update(data).digest('hex') });
      await new Promise<void>((resolve, reject) =>
        archive.entry(data, { name: path, store: !compress, date: task.createdAt }, (error) => (error ? reject(error) : resolve())),
      );
      // Wait while the reader is behind: the archive takes whatever it is given.
      while (!aborted && archive.readableLength + archive.writableLength > BUFFERED_MAX) {
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    // Files go through a window in archive order: images are read a few ahead of the writer
    // (they are small), across persona boundaries, so storage latency overlaps with writing; the
    // window bounds memory whatever the dataset size.
    type Pending = { path: string; data: Promise<Buffer | null>; compress: boolean };
    const window: Pending[] = [];
    const flush = async (keep: number) => {
      while (window.length > keep && !aborted) {
        const next = window.shift() as Pending;
        const data = await next.data;
        if (data) await add(next.path, data, next.compress);
        else missing.push(next.path);
      }
    };
    // A missing object is listed in the manifest; any other storage failure fails the download
    // rather than handing out an archive that looks complete.
    const fetch = (key: string) => {
      const data = readObject(this.storage, key).catch((error: unknown) => {
        if (error instanceof StorageError && error.notFound) return null;
        throw error;
      });
      data.catch(() => undefined); // awaited in order by flush; no unhandled rejection if the client left first
      return data;
    };
    const write = async () => {
      const taken = new Set<string>();
      for await (const persona of this.personas.all(taskId, scope)) {
        if (aborted) return;
        const folder = `profiles/${folderName(`${persona.firstName} ${persona.lastName}`, taken)}`;
        const details = (path: string, text: string) => ({ path, data: Promise.resolve(Buffer.from(text)), compress: true });
        window.push(details(`${folder}/details.json`, JSON.stringify(personaRecord(persona), null, 2)));
        window.push(details(`${folder}/details.csv`, stringifySync([csvRow(persona)], csvOptions)));
        const objects: Array<{ path: string; key: string }> = [];
        if (persona.baseImage) {
          const ext = persona.baseImage.key.split('.').pop() ?? 'bin';
          objects.push({ path: `${folder}/images/00.${ext}`, key: persona.baseImage.key });
        }
        for (const image of persona.images) {
          const nn = String(image.index + 1).padStart(2, '0');
          objects.push({ path: `${folder}/images/${nn}.${extensionFor(image.contentType)}`, key: image.key });
        }
        for (const object of objects) {
          if (aborted) return;
          window.push({ path: object.path, data: fetch(object.key), compress: false });
          await flush(PREFETCH - 1);
        }
      }
      await flush(0);
      if (aborted) return;
      const body = { task: { id: task.id, description: task.description, count: task.count, status: task.status }, files: manifest, missing };
      await new Promise<void>((resolve, reject) =>
        archive.entry(Buffer.from(JSON.stringify(body, null, 2)), { name: 'manifest.json', date: task.createdAt }, (error) =>
          error ? reject(error) : resolve(),
        ),
      );
      archive.finalize();
    };
    write().catch((error) => output.destroy(error as Error));
    return output;
  }
}
