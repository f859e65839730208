import { Readable, type Writable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { stringify } from 'csv-stringify';
import { stringify as stringifySync } from 'csv-stringify/sync';
import { StorageError } from '../errors.js';
import { extensionFor } from '../image-info.js';
import type { ObjectStorage, WorkerReaderSpec } from '../ports.js';
import { readObject } from '../storage/read.js';
import type { PersonasService } from '../services/personas.js';
import type { Scope, TasksService } from '../services/tasks.js';
import type { PersonaView, TaskView } from '../services/views.js';
import { type DatasetCard, datasetCard, renderCardMarkdown } from './card.js';
import { folderName } from './names.js';
import { type DatasetFile, DatasetZipWriter, JoinedChunks, type ZipWorkerData, type ZipWorkerInput, type ZipWorkerOutput } from './zip.js';

export * from './card.js';
export { entryName, FOLDER_NAME_MAX, folderName } from './names.js';
export type { ManifestEntry } from './zip.js';

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
 * What a spreadsheet runs as a formula: a cell whose first visible character is =, +, - or @, or
 * their fullwidth forms (spreadsheets in East Asian locales take ＝ for =), behind any invisible prefix (whitespace,
 * controls, zero-width and bidi characters: they hide the formula from a reader, not from the
 * spreadsheet); and, as before, a cell that starts with a tab or CR.
 */
const FORMULA_START = /^(?:[\t\r]|[\s\p{Cc}\p{Cf}]*[=+\-@\uFF1D\uFF0B\uFF0D\uFF20])/u;

/**
 * Neutralises spreadsheet formulas: a cell that would start one (see FORMULA_START) is prefixed
 * with a quote so Excel and LibreOffice show it as text instead of running it.
 */
export function neutralizeCell(value: string): string {
  return FORMULA_START.test(value) ? `'${value}` : value;
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
 * Personas loaded at a time for a ZIP. A page stays in memory while its images are written (long
 * enough to reach the old generation): small pages keep the export's memory small.
 */
const EXPORT_PAGE = 20;
/** Objects read ahead of the ZIP writer on the main thread. */
const PREFETCH = 8;
/** Bytes of finished ZIP waiting for a slow reader before we stop adding entries. */
const BUFFERED_MAX = 2 * 1024 * 1024;

/** Size of the archive pieces a ZIP worker sends back. */
const PIECE_BYTES = 1024 * 1024;
/** Personas' file lists sent to a ZIP worker and not yet written. */
const GROUPS_AHEAD = 2;
/**
 * ZIP workers at once in this process. Each is a thread with its own heap (~10 MB); with two
 * cores more would only share them. An export past the limit is built on the main thread.
 */
const MAX_ZIP_WORKERS = 2;
let zipWorkers = 0;

// Under vitest or tsx this module is TypeScript and so is the worker. Built, both are JavaScript
// side by side in dist/.
const fromSource = import.meta.url.endsWith('.ts');
const ZIP_WORKER_URL = new URL(fromSource ? './zip-worker.ts' : './zip-worker.js', import.meta.url);

function startZipWorker(workerData: ZipWorkerData): Worker {
  if (!fromSource) return new Worker(ZIP_WORKER_URL, { workerData });
  // A worker thread does not inherit tsx's hooks, and `--import tsx` registers none there (Node
  // 20): the worker registers them itself, then loads the TypeScript.
  let tsx = 'tsx/esm/api';
  try {
    tsx = import.meta.resolve(tsx);
  } catch {} // resolved from the working folder then
  const boot = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(ZIP_WORKER_URL.href)}); })`;
  // A storage's reader (another package's TypeScript) imports workspace packages by name: their
  // sources too, as vitest resolves them (the `source` export condition), not their dist/.
  const execArgv = process.execArgv.includes('--conditions=source') ? process.execArgv : [...process.execArgv, '--conditions=source'];
  return new Worker(boot, { eval: true, workerData, execArgv });
}

/** The error a ZIP worker reported, as the main thread throws it. */
function workerFailure(error: Extract<ZipWorkerOutput, { type: 'failed' }>['error']): Error {
  if (!error.storage) return new Error(`ZIP export failed: ${error.message}`);
  const { operation, key, retryable, keyRefused } = error.storage;
  return new StorageError(operation, key, error.message, { retryable, keyRefused });
}

/** A ZIP export: a plain Readable, with one extra for callers that write it out themselves. */
export interface ZipExport extends Readable {
  /**
   * Lets the export fill its memory again once `destination` has written it out, instead of
   * taking new memory for every piece: less garbage, a steadier memory size. Call it when the
   * export is piped straight into `destination` (an HTTP response, a socket, a file stream), with
   * nothing in between that could still hold a piece. False when the export has no such memory
   * (built on the main thread); the caller may then join its chunks into larger writes.
   */
  reuseAfter(destination: Writable): boolean;
}

/** Dataset exports: JSON, CSV and a streamed ZIP with a sha256 manifest. */
export class ExportsService {
  constructor(
    private readonly tasks: TasksService,
    private readonly personas: PersonasService,
    private readonly storage: ObjectStorage,
  ) {}

  /** The dataset card, built from the database (see DatasetCard). */
  async card(taskId: string, scope: Scope = {}): Promise<DatasetCard> {
    const task = await this.tasks.get(taskId, scope);
    return datasetCard(task, await this.personas.demographics(taskId, scope));
  }

  /** The dataset card, the task and every persona, as one JSON document. */
  async json(
    taskId: string,
    scope: Scope = {},
  ): Promise<{ dataset: DatasetCard; task: TaskView; personas: ReturnType<typeof personaRecord>[] }> {
    const task = await this.tasks.get(taskId, scope);
    const dataset = datasetCard(task, await this.personas.demographics(taskId, scope));
    const personas = [];
    for await (const persona of this.personas.all(taskId, scope)) personas.push(personaRecord(persona));
    return { dataset, task, personas };
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
   * sha256 per file. Images are stored, not deflated (they are compressed already). Built in a
   * worker thread when the storage offers a worker reader, else on the main thread.
   */
  async zip(taskId: string, scope: Scope = {}): Promise<ZipExport> {
    const task = await this.tasks.get(taskId, scope);
    const card = datasetCard(task, await this.personas.demographics(taskId, scope));
    const files = this.files(taskId, scope, card);
    const reader = this.storage.workerReader?.();
    if (reader && zipWorkers < MAX_ZIP_WORKERS) return zipInWorker(task, files, reader);
    return this.zipHere(task, files);
  }

  /** The dataset's files in archive order, one persona's at a time. */
  private async *files(taskId: string, scope: Scope, card: DatasetCard): AsyncGenerator<DatasetFile[]> {
    // The card first, hashed in the manifest like every other file.
    yield [
      { path: 'DATASET.md', text: renderCardMarkdown(card) },
      { path: 'dataset.json', text: JSON.stringify(card, null, 2) },
    ];
    const taken = new Set<string>();
    for await (const persona of this.personas.all(taskId, scope, EXPORT_PAGE)) {
      const folder = `profiles/${folderName(`${persona.firstName} ${persona.lastName}`, taken)}`;
      const files: DatasetFile[] = [
        { path: `${folder}/details.json`, text: JSON.stringify(personaRecord(persona), null, 2) },
        { path: `${folder}/details.csv`, text: stringifySync([csvRow(persona)], csvOptions) },
      ];
      if (persona.baseImage) {
        const ext = persona.baseImage.key.split('.').pop() ?? 'bin';
        files.push({ path: `${folder}/images/00.${ext}`, key: persona.baseImage.key });
      }
      for (const image of persona.images) {
        const nn = String(image.index + 1).padStart(2, '0');
        files.push({ path: `${folder}/images/${nn}.${extensionFor(image.contentType)}`, key: image.key });
      }
      yield files;
    }
  }

  /** The ZIP built on this thread, reading objects through the storage's read() or get(). */
  private zipHere(task: TaskView, groups: AsyncGenerator<DatasetFile[]>): ZipExport {
    const writer = new DatasetZipWriter(task.createdAt);
    const { archive } = writer;
    // A plain Node stream for callers (zip-stream is built on readable-stream).
    const output = new JoinedChunks(256 * 1024);
    archive.on('error', (error: Error) => output.destroy(error));
    archive.pipe(output);
    let aborted = false;
    output.once('close', () => {
      aborted = true;
      archive.destroy();
    });
    // Files go through a window in archive order: images are read a few ahead of the writer
    // (they are small), across persona boundaries, so storage latency overlaps with writing; the
    // window bounds memory whatever the dataset size.
    type Pending = { path: string; data: Promise<Buffer | null>; compress: boolean };
    const window: Pending[] = [];
    const flush = async (keep: number) => {
      while (window.length > keep && !aborted) {
        const next = window.shift() as Pending;
        const data = await next.data;
        if (!data) {
          writer.addMissing(next.path);
          continue;
        }
        await writer.add(next.path, data, next.compress);
        // Wait while the reader is behind: the archive takes whatever it is given.
        while (!aborted && archive.readableLength + archive.writableLength > BUFFERED_MAX) {
          await new Promise((r) => setTimeout(r, 2));
        }
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
      for await (const files of groups) {
        for (const file of files) {
          if (aborted) return;
          if ('text' in file) {
            window.push({ path: file.path, data: Promise.resolve(Buffer.from(file.text)), compress: true });
          } else {
            window.push({ path: file.path, data: fetch(file.key), compress: false });
            await flush(PREFETCH - 1);
          }
        }
      }
      await flush(0);
      if (aborted) return;
      await writer.finish(task);
    };
    write().catch((error) => output.destroy(error as Error));
    return Object.assign(output, { reuseAfter: () => false });
  }
}

/**
 * The ZIP built by a worker thread: this thread only lists the files and hands the archive's
 * pieces to the caller; reading, hashing and ZIP framing run in the worker. A piece is
 * acknowledged when the caller's stream has room, so a slow client holds back the worker.
 */
function zipInWorker(task: TaskView, groups: AsyncGenerator<DatasetFile[]>, reader: WorkerReaderSpec): ZipExport {
  const workerData: ZipWorkerData = { reader, date: task.createdAt.getTime(), batchBytes: PIECE_BYTES };
  const worker = startZipWorker(workerData);
  zipWorkers++;
  const post = (message: ZipWorkerInput, transfer: ArrayBuffer[] = []) => worker.postMessage(message, transfer);
  // Pieces pushed to the caller and not yet given back, oldest first (see reuseAfter).
  const pushed: ArrayBuffer[] = [];
  let destination: Writable | undefined;
  const giveBack = () => {
    if (!destination || destination.writableLength > 0 || pushed.length === 0) return;
    // The destination has written out everything it was given. The pieces still buffered in
    // `output` (the newest) were not given to it yet.
    let unread = output.readableLength;
    let handedOn = pushed.length;
    while (unread > 0 && handedOn > 0) unread -= (pushed[--handedOn] as ArrayBuffer).byteLength;
    for (const buffer of pushed.splice(0, handedOn)) post({ type: 'reuse', buffer }, [buffer]);
  };
  let ended = false;
  let piecesWaiting = 0; // received, pushed, not yet acknowledged: the caller is behind
  let groupsInWorker = 0;
  let groupTaken: (() => void) | undefined;
  const output = new Readable({
    highWaterMark: PIECE_BYTES,
    read() {
      giveBack();
      for (; piecesWaiting > 0; piecesWaiting--) post({ type: 'ack' });
    },
    destroy(error, callback) {
      groupTaken?.(); // the feeder sees the stream is gone and stops
      worker.terminate().then(
        () => callback(error),
        () => callback(error),
      );
    },
  });
  worker.once('exit', () => {
    zipWorkers--;
    if (!ended) output.destroy(new Error('ZIP export failed: the worker stopped'));
  });
  worker.on('error', (error) => output.destroy(error));
  worker.on('message', (message: ZipWorkerOutput) => {
    switch (message.type) {
      case 'piece':
        giveBack();
        if (destination && message.length === message.buffer.byteLength) pushed.push(message.buffer);
        if (output.push(Buffer.from(message.buffer, 0, message.length))) post({ type: 'ack' });
        else piecesWaiting++;
        break;
      case 'taken':
        groupsInWorker--;
        groupTaken?.();
        break;
      case 'end':
        ended = true;
        output.push(null);
        void worker.terminate();
        break;
      case 'failed':
        output.destroy(workerFailure(message.error));
        break;
    }
  });
  const feed = async () => {
    for await (const files of groups) {
      if (output.destroyed) return;
      post({ type: 'files', files });
      groupsInWorker++;
      while (groupsInWorker >= GROUPS_AHEAD && !output.destroyed) {
        await new Promise<void>((resolve) => (groupTaken = resolve));
      }
    }
    if (output.destroyed) return;
    const { id, description, count, status } = task;
    post({ type: 'finish', task: { id, description, count, status } });
  };
  feed().catch((error) => output.destroy(error as Error));
  return Object.assign(output, {
    reuseAfter(target: Writable): boolean {
      destination = target;
      target.on('drain', giveBack);
      output.once('close', () => target.off('drain', giveBack));
      return true;
    },
  });
}
