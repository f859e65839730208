import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';
import type { ZipArchiveEntry } from 'compress-commons';
import ZipStream from 'zip-stream';
import type { WorkerReaderSpec } from '../ports.js';
import { entryName } from './names.js';

type Done = (error: Error | null, entry?: ZipArchiveEntry) => void;

const METHOD_STORED = 0;

/**
 * zip-stream with node's own CRC-32 for stored (not deflated) buffers. compress-commons computes
 * it with the JavaScript `crc-32` package, about 3.5x slower than zlib's, and the stored images
 * are nearly all of an export's bytes: that checksum alone was a tenth of the host's CPU time
 * during a large export. The stored branch below is compress-commons 7's own (the version is
 * pinned); anything else goes to it unchanged. exports.test checks every entry's CRC.
 */
export class DatasetZip extends ZipStream {
  // typed as string | Stream by @types/compress-commons; a Buffer at run time
  override _appendBuffer(entry: ZipArchiveEntry, source?: unknown, callback?: Done): void {
    if (!Buffer.isBuffer(source) || source.length === 0 || entry.getMethod() !== METHOD_STORED) {
      super._appendBuffer(entry, source as never, callback);
      return;
    }
    entry.setSize(source.length);
    entry.setCompressedSize(source.length);
    entry.setCrc(crc32(source));
    this._writeLocalFileHeader(entry);
    this.write(source);
    this._afterAppend(entry);
    callback?.(null, entry);
  }
}

/** Chunks below this size are joined before they go on. */
const SMALL_CHUNK = 16 * 1024;

/**
 * The archive's output as a plain Node stream, with its many small writes joined: the ZIP writer
 * emits every header field as its own few-byte chunk (about 20 per entry), and each chunk costs
 * the same stream and socket work downstream as a whole image. Small chunks wait until 16 KiB
 * gather or a large chunk comes (which goes on as it is, after them): order is kept, and images
 * are never copied.
 */
export class JoinedChunks extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(highWaterMark: number) {
    super({ highWaterMark });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (chunk.length >= SMALL_CHUNK) {
      this.release();
      this.push(chunk);
    } else {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes >= SMALL_CHUNK) this.release();
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    this.release();
    callback();
  }

  private release(): void {
    if (this.pending.length === 0) return;
    this.push(this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes));
    this.pending = [];
    this.pendingBytes = 0;
  }
}

export interface ManifestEntry {
  path: string;
  size: number;
  sha256: string;
}

/** The task as manifest.json describes it. */
export interface ManifestTask {
  id: string;
  description: string;
  count: number;
  status: string;
}

/**
 * Writes a dataset's files into a DatasetZip and keeps its manifest: a sha256 per file, and the
 * objects the storage no longer had. Used on the main thread and in the ZIP worker alike. Every
 * path goes through entryName once, and that one string is both the entry's name and the
 * manifest's path: the manifest never lists a name the archive does not hold.
 */
export class DatasetZipWriter {
  readonly archive = new DatasetZip({ zlib: { level: 6 } });
  private readonly files: ManifestEntry[] = [];
  private readonly missing: string[] = [];

  constructor(private readonly date: Date) {}

  /** Adds a file: deflated when `compress`, else stored (images are compressed already). */
  add(path: string, data: Buffer, compress: boolean): Promise<void> {
    const name = entryName(path);
    this.files.push({ path: name, size: data.length, sha256: createHash('sha256').update(data).digest('hex') });
    return this.entry(name, data, compress);
  }

  /** An object the storage no longer has: listed in the manifest instead of the archive. */
  addMissing(path: string): void {
    this.missing.push(entryName(path));
  }

  /** manifest.json, last, then the end of the archive. */
  async finish(task: ManifestTask): Promise<void> {
    const { id, description, count, status } = task;
    const manifest = { task: { id, description, count, status }, files: this.files, missing: this.missing };
    await this.entry('manifest.json', Buffer.from(JSON.stringify(manifest, null, 2)), true);
    this.archive.finalize();
  }

  private entry(name: string, data: Buffer, compress: boolean): Promise<void> {
    return new Promise((resolve, reject) =>
      this.archive.entry(data, { name, store: !compress, date: this.date }, (error) => (error ? reject(error) : resolve())),
    );
  }
}

/**
 * A file of the dataset, in archive order: text made on the main thread (deflated), or a stored
 * object (stored as it is). Text crosses to the worker as a string: a small Buffer would carry its
 * whole 8 KiB pool with it.
 */
export type DatasetFile = { path: string; text: string } | { path: string; key: string };

/** What the ZIP worker starts with. */
export interface ZipWorkerData {
  reader: WorkerReaderSpec;
  /** Every entry's date (the task's creation), in ms since the epoch. */
  date: number;
  /** Size of the pieces of archive sent back. */
  batchBytes: number;
}

/** Main thread to ZIP worker. */
export type ZipWorkerInput =
  | { type: 'files'; files: DatasetFile[] }
  | { type: 'finish'; task: ManifestTask }
  /** The last piece was taken: send more. */
  | { type: 'ack' }
  /** A piece's memory, written out and handed back to be filled again. */
  | { type: 'reuse'; buffer: ArrayBuffer };

/** ZIP worker to main thread. */
export type ZipWorkerOutput =
  | { type: 'piece'; buffer: ArrayBuffer; length: number }
  /** One `files` message is written; the next may come. */
  | { type: 'taken' }
  | { type: 'end' }
  /** `message` is a StorageError's reason when `storage` is set. */
  | { type: 'failed'; error: { message: string; storage?: { operation: string; key?: string; retryable: boolean; keyRefused: boolean } } };
