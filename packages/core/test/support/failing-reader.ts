import { StorageError } from '../../src/errors.js';
import type { WorkerObjectReader } from '../../src/ports.js';
import { openFilesystemReader } from '../../src/storage/filesystem-reader.js';

/**
 * A WorkerReaderSpec factory for tests: the filesystem reader, except that the keys in `fail`
 * fail with the given reason (an outage), the keys in `missing` are not found, and reading
 * `crashOn` ends the worker thread (as a native crash or an out-of-memory would).
 */
export function openFailingReader(options: { root: string; fail: Record<string, string>; missing: string[]; crashOn?: string }): WorkerObjectReader {
  const reader = openFilesystemReader({ root: options.root });
  return {
    read(key, scratch) {
      if (key === options.crashOn) process.exit(70);
      const reason = options.fail[key];
      if (reason) throw new StorageError('read', key, reason);
      if (options.missing.includes(key)) throw new StorageError('read', key, 'no such object', { notFound: true });
      return reader.read(key, scratch);
    },
  };
}
