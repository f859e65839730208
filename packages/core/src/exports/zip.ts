import { Transform, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';
import type { ZipArchiveEntry } from 'compress-commons';
import ZipStream from 'zip-stream';

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
