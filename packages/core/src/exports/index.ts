import { Readable } from 'node:stream';
import { stringify } from 'csv-stringify';
import { stringify as stringifySync } from 'csv-stringify/sync';
import type { AvatarGenConfig } from '../config.js';
import { StorageError } from '../errors.js';
import { extensionFor } from '../image-info.js';
import type { ObjectStorage } from '../ports.js';
import type { PersonasService } from '../services/personas.js';
import type { QualityReport, QualityService } from '../services/quality.js';
import type { Scope, TasksService } from '../services/tasks.js';
import type { PersonaView, TaskView } from '../services/views.js';
import { readObject } from '../storage/read.js';
import { type DatasetCard, datasetCard, renderCardMarkdown } from './card.js';
import { folderName } from './names.js';
import { DatasetZipWriter, type HashedFile, hashed } from './zip.js';

export * from './card.js';
export { entryName, FOLDER_NAME_MAX, folderName } from './names.js';
export type { ManifestEntry } from './zip.js';

/** The site's public base URL: PUBLIC_URL, else the address the website listens on. */
export function publicBaseUrl(config: Pick<AvatarGenConfig, 'PUBLIC_URL' | 'APP_HOST' | 'APP_PORT'>): string {
  if (config.PUBLIC_URL) return config.PUBLIC_URL.replace(/\/+$/, '');
  const host = config.APP_HOST.includes(':') ? `[${config.APP_HOST}]` : config.APP_HOST;
  return `http://${host}:${config.APP_PORT}`;
}

/** A storage URL as a link that works outside the site: a path ('/media/...') is put under `base`. */
export function absoluteUrl(url: string, base: string): string {
  if (URL.canParse(url)) return url;
  return `${base.replace(/\/+$/, '')}/${url.replace(/^\/+/, '')}`;
}

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
  'current_country',
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

/**
 * Where a persona's pictures are: absolute URLs in the JSON and CSV exports, the archive's own
 * files (relative to the persona's folder) in the ZIP. `images` follows `persona.images`.
 */
interface PictureLinks {
  base: string | null;
  images: string[];
}

function urlLinks(p: PersonaView, publicBase: string): PictureLinks {
  return {
    base: p.baseImage ? absoluteUrl(p.baseImage.url, publicBase) : null,
    images: p.images.map((i) => absoluteUrl(i.url, publicBase)),
  };
}

/** The persona's pictures in its ZIP folder: the base selfie as 00, then 01, 02... */
function zipLinks(p: PersonaView): PictureLinks {
  return {
    base: p.baseImage ? `images/00.${p.baseImage.key.split('.').pop() ?? 'bin'}` : null,
    images: p.images.map((i) => `images/${String(i.index + 1).padStart(2, '0')}.${extensionFor(i.contentType)}`),
  };
}

function csvRow(p: PersonaView, links: PictureLinks): Record<(typeof CSV_COLUMNS)[number], string | number | null> {
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
    current_country: p.currentCountry ?? '',
    prev_city: p.prevCity,
    prev_state: p.prevState,
    bio_facebook: p.bios.facebook,
    bio_instagram: p.bios.instagram,
    bio_x: p.bios.x,
    bio_tiktok: p.bios.tiktok,
    about: p.about,
    base_image_url: links.base ?? '',
    image_urls: links.images.join(' '),
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

/** A picture as the exports describe it: `url` in the JSON export, `path` (inside the archive) in the ZIP. */
export type PictureRecord = ({ url: string } | { path: string }) & {
  index: number;
  width: number;
  height: number;
  style: PersonaView['images'][number]['style'];
};

/** A persona as written to details.json and the JSON export. */
export type PersonaRecord = Omit<
  PersonaView,
  'taskId' | 'batchNo' | 'batchIndex' | 'imagesStatus' | 'imagesError' | 'baseImage' | 'images'
> & {
  baseImage: { url: string } | { path: string } | null;
  images: PictureRecord[];
};

/** The persona as people read it: no pipeline bookkeeping and no storage keys. */
function personaRecord(p: PersonaView, links: PictureLinks, field: 'url' | 'path'): PersonaRecord {
  const { taskId, batchNo, batchIndex, imagesStatus, imagesError, baseImage, images, ...persona } = p;
  const link = (target: string) => (field === 'url' ? { url: target } : { path: target });
  return {
    ...persona,
    baseImage: links.base === null ? null : link(links.base),
    images: images.map(({ index, width, height, style }, i) => ({ index, ...link(links.images[i] as string), width, height, style })),
  };
}

/** The task in the JSON export: what was asked and how it went; no owner, no settings snapshot. */
export interface ExportedTask {
  id: string;
  description: string;
  language: { code: string; name: string };
  count: number;
  imagesPerPersona: number;
  status: string;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

function exportedTask(t: TaskView): ExportedTask {
  const { id, description, language, count, imagesPerPersona, status, createdAt, startedAt, finishedAt } = t;
  return { id, description, language, count, imagesPerPersona, status, createdAt, startedAt, finishedAt };
}

/** A file of the ZIP, in archive order: text (deflated) or a stored object (stored as it is). */
type DatasetFile = { path: string; text: string } | { path: string; key: string };

/** Personas loaded at a time for a ZIP: small pages keep the export's memory small. */
const EXPORT_PAGE = 20;
/**
 * Objects read (and hashed) ahead of the ZIP writer: storage latency (S3) overlaps with writing,
 * and the window bounds memory whatever the dataset size.
 */
const READ_AHEAD = 8;

/** Dataset exports: JSON, CSV and a streamed ZIP with a sha256 manifest. */
export class ExportsService {
  /**
   * `publicBase` is the site's public base URL (publicBaseUrl(config)): storage URLs that are
   * paths, such as the filesystem storage's '/media/...', are made absolute against it.
   */
  constructor(
    private readonly tasks: TasksService,
    private readonly personas: PersonasService,
    private readonly storage: ObjectStorage,
    private readonly publicBase = 'http://127.0.0.1:8085',
    /** Where the card's requested-vs-achieved and quality findings come from; without it they are null. */
    private readonly quality?: QualityService,
  ) {}

  /** The report kept when the task ended, else one made now. */
  private async qualityOf(taskId: string, scope: Scope): Promise<QualityReport | null> {
    if (!this.quality) return null;
    return this.quality.kept(taskId, scope);
  }

  /** The dataset card, built from the database (see DatasetCard). */
  async card(taskId: string, scope: Scope = {}): Promise<DatasetCard> {
    const task = await this.tasks.get(taskId, scope);
    return datasetCard(task, await this.personas.demographics(taskId, scope), await this.qualityOf(taskId, scope));
  }

  /** The dataset card, the task and every persona, as one JSON document; pictures as absolute URLs. */
  async json(
    taskId: string,
    scope: Scope = {},
  ): Promise<{ dataset: DatasetCard; task: ExportedTask; quality: ExportedQuality | null; personas: PersonaRecord[] }> {
    const task = await this.tasks.get(taskId, scope);
    const quality = await this.qualityOf(taskId, scope);
    const dataset = datasetCard(task, await this.personas.demographics(taskId, scope), quality);
    const personas = [];
    for await (const persona of this.personas.all(taskId, scope))
      personas.push(personaRecord(persona, urlLinks(persona, this.publicBase), 'url'));
    return { dataset, task: exportedTask(task), quality: quality && exportedQuality(quality), personas };
  }

  /** One row per persona, streamed; pictures as absolute URLs. Access is checked before the stream is returned. */
  async csv(taskId: string, scope: Scope = {}): Promise<Readable> {
    await this.tasks.get(taskId, scope);
    const source = Readable.from(
      (async function* (personas: PersonasService, publicBase: string) {
        for await (const persona of personas.all(taskId, scope)) yield csvRow(persona, urlLinks(persona, publicBase));
      })(this.personas, this.publicBase),
    );
    const out = stringify(csvOptions);
    source.on('error', (error) => out.destroy(error));
    return source.pipe(out);
  }

  /**
   * The dataset as a ZIP, written as a stream (memory stays flat whatever the size):
   * DATASET.md and dataset.json (the card), profiles/<name>/details.json, details.csv,
   * images/NN.<ext>, and manifest.json last with a sha256 per file. Images are stored, not
   * deflated (they are compressed already); details point at them inside the archive. A slow
   * reader holds back reading from the storage. A missing object is listed in the manifest; any
   * other storage failure destroys the stream with the StorageError.
   */
  async zip(taskId: string, scope: Scope = {}): Promise<Readable> {
    const task = await this.tasks.get(taskId, scope);
    const quality = await this.qualityOf(taskId, scope);
    const card = datasetCard(task, await this.personas.demographics(taskId, scope), quality);
    const writer = new DatasetZipWriter(task.createdAt);
    this.writeZip(writer, task, this.files(taskId, scope, card, quality)).catch((error: unknown) => writer.output.destroy(error as Error));
    return writer.output;
  }

  /** The dataset's files in archive order. */
  private async *files(taskId: string, scope: Scope, card: DatasetCard, quality: QualityReport | null): AsyncGenerator<DatasetFile> {
    yield { path: 'DATASET.md', text: renderCardMarkdown(card) };
    yield { path: 'dataset.json', text: JSON.stringify(card, null, 2) };
    const taken = new Set<string>();
    for await (const persona of this.personas.all(taskId, scope, EXPORT_PAGE)) {
      const folder = `profiles/${folderName(`${persona.firstName} ${persona.lastName}`, taken)}`;
      const links = zipLinks(persona);
      yield { path: `${folder}/details.json`, text: JSON.stringify(personaRecord(persona, links, 'path'), null, 2) };
      yield { path: `${folder}/details.csv`, text: stringifySync([csvRow(persona, links)], csvOptions) };
      if (persona.baseImage && links.base) yield { path: `${folder}/${links.base}`, key: persona.baseImage.key };
      for (const [i, image] of persona.images.entries()) yield { path: `${folder}/${links.images[i]}`, key: image.key };
    }
    if (quality) yield { path: 'quality.json', text: JSON.stringify(exportedQuality(quality), null, 2) };
  }

  /** Reads the objects a few ahead (in archive order) and writes every file into the archive. */
  private async writeZip(writer: DatasetZipWriter, task: TaskView, files: AsyncGenerator<DatasetFile>): Promise<void> {
    type Pending = { path: string; file: Promise<HashedFile | null>; compress: boolean };
    const window: Pending[] = [];
    const drain = async (keep: number) => {
      while (window.length > keep && !writer.closed) {
        const next = window.shift() as Pending;
        const file = await next.file;
        if (file) await writer.add(next.path, file, next.compress);
        else writer.addMissing(next.path);
      }
    };
    for await (const file of files) {
      if (writer.closed) return;
      if ('text' in file) {
        window.push({ path: file.path, file: Promise.resolve(hashed(Buffer.from(file.text))), compress: true });
      } else {
        window.push({ path: file.path, file: this.read(file.key), compress: false });
        await drain(READ_AHEAD - 1);
      }
    }
    await drain(0);
    if (!writer.closed) await writer.finish(task);
  }

  /** An object and its hash; null when the storage no longer has it. */
  private read(key: string): Promise<HashedFile | null> {
    const file = readObject(this.storage, key).then(hashed, (error: unknown) => {
      if (error instanceof StorageError && error.notFound) return null;
      throw error;
    });
    file.catch(() => undefined); // awaited in order; no unhandled rejection if the client left first
    return file;
  }
}

/** The quality report as exports carry it: personas by their `id` (as in the records), without the site's own fields. */
export type ExportedQuality = Omit<QualityReport, 'taskId' | 'settings'> & { thresholds: QualityReport['settings'] };

function exportedQuality(report: QualityReport): ExportedQuality {
  const { taskId: _taskId, settings, ...rest } = report;
  return { ...rest, thresholds: settings };
}
