/**
 * The ZIP worker: builds one dataset ZIP off the main thread. The main thread sends the files in
 * archive order (text it made, or storage keys); this thread reads the objects through the
 * storage's WorkerObjectReader, hashes them for the manifest, frames the archive, and sends it
 * back in pieces of `batchBytes`. Between two files, no more than PIECES_IN_FLIGHT pieces wait on
 * the main thread: memory stays flat however large the dataset and however slow the client, at a
 * few pieces plus the largest object (one object's pieces all go out as it is written).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { StorageError } from '../errors.js';
import type { WorkerObjectReader } from '../ports.js';
import { type DatasetFile, DatasetZipWriter, type ZipWorkerData, type ZipWorkerInput, type ZipWorkerOutput } from './zip.js';

const PIECES_IN_FLIGHT = 2;
/** Pieces kept for reuse; the rest are left to the garbage collector. */
const REUSABLE_MAX = 4;
/** Objects up to this size are read into one buffer used again and again (no garbage per image). */
const SCRATCH_BYTES = 4 * 1024 * 1024;

if (!parentPort) throw new Error('zip-worker runs in a worker thread');
const port = parentPort;
const { reader: spec, date, batchBytes } = workerData as ZipWorkerData;
const send = (message: ZipWorkerOutput, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

/** Pieces the main thread gave back once written out (see ZipExport.reuseAfter). */
const reusable: ArrayBuffer[] = [];
const newPiece = () => {
  const again = reusable.pop();
  return again ? Buffer.from(again) : Buffer.allocUnsafeSlow(batchBytes);
};
let piece = newPiece();
let filled = 0;
let inFlight = 0;
let wake: (() => void) | undefined;

function sendPiece(): void {
  if (filled === 0) return;
  const full = piece;
  send({ type: 'piece', buffer: full.buffer as ArrayBuffer, length: filled }, [full.buffer as ArrayBuffer]);
  inFlight++;
  piece = newPiece();
  filled = 0;
}

/** Archive bytes are copied into the current piece as the writer makes them. */
function collect(chunk: Buffer): void {
  for (let offset = 0; offset < chunk.length; ) {
    const n = Math.min(chunk.length - offset, batchBytes - filled);
    chunk.copy(piece, filled, offset, offset + n);
    filled += n;
    offset += n;
    if (filled === batchBytes) sendPiece();
  }
}

const writer = new DatasetZipWriter(new Date(date));
writer.archive.on('data', collect);
const ended = new Promise<void>((resolve, reject) => {
  writer.archive.once('end', resolve);
  writer.archive.once('error', reject);
});
ended.catch(() => undefined); // also awaited by 'finish'; an archive error fails the entry first

let scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);

/** A storage's reader may load its own copy of core's errors: known by name as well. */
const isStorageError = (error: unknown): error is StorageError =>
  error instanceof StorageError || (error instanceof Error && error.name === 'StorageError');

async function write(reader: WorkerObjectReader, files: DatasetFile[]): Promise<void> {
  for (const file of files) {
    if ('text' in file) {
      await writer.add(file.path, Buffer.from(file.text), true);
    } else {
      let bytes: Uint8Array;
      try {
        bytes = await reader.read(file.key, scratch);
      } catch (error) {
        // A missing object is listed in the manifest; any other failure fails the download.
        if (isStorageError(error) && error.notFound) {
          writer.addMissing(file.path);
          continue;
        }
        throw error;
      }
      await writer.add(file.path, Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), false);
      // The archive hands its chunks on as they are written; should one still wait inside it, it
      // holds on to the scratch buffer, so the next object gets a new one.
      if (writer.archive.readableLength > 0) scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);
    }
    while (inFlight >= PIECES_IN_FLIGHT) await new Promise<void>((resolve) => (wake = resolve));
  }
}

function describe(error: unknown): Extract<ZipWorkerOutput, { type: 'failed' }>['error'] {
  if (isStorageError(error)) {
    const { operation, key, retryable, keyRefused } = error;
    // StorageError puts "<operation> <key>: " before the reason; the main thread does it again.
    const prefix = `${operation}${key ? ` ${key}` : ''}: `;
    const reason = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
    return { message: reason, storage: { operation, key, retryable, keyRefused } };
  }
  return { message: error instanceof Error ? error.message : String(error) };
}

async function openReader(): Promise<WorkerObjectReader> {
  const module = (await import(spec.module)) as Record<string, unknown>;
  const factory = module[spec.factory];
  if (typeof factory !== 'function') throw new Error(`${spec.module} has no function ${spec.factory}`);
  return (await factory(spec.options)) as WorkerObjectReader;
}

// Messages are handled one after another, in order.
const reader = openReader();
let failed = false;
const fail = (error: unknown) => {
  failed = true;
  send({ type: 'failed', error: describe(error) });
};
let work: Promise<unknown> = reader.catch(fail);
port.on('message', (message: ZipWorkerInput) => {
  if (message.type === 'ack') {
    inFlight--;
    wake?.();
    wake = undefined;
    return;
  }
  if (message.type === 'reuse') {
    if (reusable.length < REUSABLE_MAX && message.buffer.byteLength === batchBytes) reusable.push(message.buffer);
    return;
  }
  work = work.then(async () => {
    if (failed) return;
    try {
      if (message.type === 'files') {
        await write(await reader, message.files);
        send({ type: 'taken' });
      } else {
        await writer.finish(message.task);
        await ended;
        sendPiece();
        await (await reader).close?.();
        send({ type: 'end' });
      }
    } catch (error) {
      fail(error);
    }
  });
});
