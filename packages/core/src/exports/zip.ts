import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { Transform, type TransformCallback } from 'node:stream';
import ZipStream from 'zip-stream';
import { entryName } from './names.js';

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

/** A file's bytes with their sha256 for the manifest. */
export interface HashedFile {
  data: Buffer;
  sha256: string;
}

/**
 * The bytes and their sha256, hashed here on the main thread: WebCrypto's hash in the thread pool
 * costs the main thread more than hashing (it copies the bytes for the job; bench/README.md).
 */
export function hashed(data: Buffer): HashedFile {
  return { data, sha256: createHash('sha256').update(data).digest('hex') };
}

/** Chunks below this size are joined before they go on. */
const SMALL_CHUNK = 16 * 1024;

/**
 * The archive's bytes with its small chunks joined. zip-stream writes every header field as a
 * chunk of its own (about 30 per entry), and downstream each chunk costs as much as a whole image
 * (an HTTP chunk, a socket write, objects for the garbage collector). Small chunks wait until
 * 16 KiB gather or a large one comes, which goes on as it is, after them.
 */
class JoinedChunks extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor() {
    super({ highWaterMark: 256 * 1024 });
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
    this.push(Buffer.concat(this.pending, this.pendingBytes));
    this.pending = [];
    this.pendingBytes = 0;
  }
}

/**
 * Writes a dataset's files into a ZIP (zip-stream's public entry() and finalize()) and keeps its
 * manifest: a sha256 per file, and the objects the storage no longer had. Every path goes through
 * entryName once, and that one string is both the entry's name and the manifest's path.
 */
export class DatasetZipWriter {
  /** The archive as a plain Node stream (zip-stream is built on readable-stream). */
  readonly output = new JoinedChunks();
  private readonly archive = new ZipStream({ zlib: { level: 6 } });
  private readonly files: ManifestEntry[] = [];
  private readonly missing: string[] = [];
  private readonly stopped = new AbortController();

  constructor(private readonly date: Date) {
    this.archive.on('error', (error: Error) => this.output.destroy(error));
    this.archive.pipe(this.output);
    this.output.once('close', () => {
      this.stopped.abort();
      this.archive.destroy();
    });
  }

  /** True once the output is closed (the client left, or an error): stop adding. */
  get closed(): boolean {
    return this.stopped.signal.aborted;
  }

  /**
   * Adds a file: deflated when `compress`, else stored (images are compressed already). Resolves
   * once the archive has room again, so a slow reader holds back the caller.
   */
  async add(path: string, file: HashedFile, compress: boolean): Promise<void> {
    const name = entryName(path);
    this.files.push({ path: name, size: file.data.length, sha256: file.sha256 });
    await this.entry(name, file.data, compress);
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

  private async entry(name: string, data: Buffer, compress: boolean): Promise<void> {
    const { signal } = this.stopped;
    // An entry on its way into a destroyed archive never calls back: the output's close ends the wait.
    await new Promise<void>((resolve, reject) => {
      const stop = () => reject(signal.reason);
      if (signal.aborted) return stop();
      signal.addEventListener('abort', stop, { once: true });
      this.archive.entry(data, { name, store: !compress, date: this.date }, (error) => {
        signal.removeEventListener('abort', stop);
        if (error) reject(error);
        else resolve();
      });
    });
    // A stored buffer is written at once, whatever the reader's pace: wait until it has been read.
    if (this.archive.writableNeedDrain) await once(this.archive, 'drain', { signal });
  }
}
