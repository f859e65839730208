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
