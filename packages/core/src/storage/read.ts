import { StorageError } from '../errors.js';
import type { ObjectStorage } from '../ports.js';

/** The same bytes as a Buffer, without copying them (a storage may hand out plain Uint8Arrays). */
const asBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/**
 * A whole object in memory: the storage's read() when it has one, otherwise its stream, gathered.
 * An object larger than `maxBytes` is a StorageError: the stream stops reading there, read()
 * (meant for objects of a few MB) is checked once it has returned.
 */
export async function readObject(storage: ObjectStorage, key: string, maxBytes = Number.POSITIVE_INFINITY): Promise<Buffer> {
  const tooLarge = () => new StorageError('read', key, `object larger than ${maxBytes} bytes`, { retryable: false });
  if (storage.read) {
    const bytes = asBuffer(await storage.read(key));
    if (bytes.length > maxBytes) throw tooLarge();
    return bytes;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  const stream = await storage.get(key);
  for await (const chunk of stream) {
    const buffer = asBuffer(chunk as Uint8Array);
    size += buffer.length;
    if (size > maxBytes) {
      stream.destroy();
      throw tooLarge();
    }
    chunks.push(buffer);
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
}
