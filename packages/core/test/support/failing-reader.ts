import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { StorageError } from '../../src/errors.js';
import type { WorkerObjectReader } from '../../src/ports.js';

/**
 * A WorkerReaderSpec factory for tests: reads the files under `root` (the storage's folder),
 * except that the keys in `fail` fail with the given reason (an outage), the keys in `missing`
 * are not found, and reading `crashOn` ends the worker thread (as a native crash or an
 * out-of-memory would). Plain `fs`, so core's tests need no storage package in the worker.
 */
export function openFailingReader(options: { root: string; fail: Record<string, string>; missing: string[]; crashOn?: string }): WorkerObjectReader {
  return {
    read(key) {
      if (key === options.crashOn) process.exit(70);
      const reason = options.fail[key];
      if (reason) throw new StorageError('read', key, reason);
      if (options.missing.includes(key)) throw new StorageError('read', key, 'no such object', { notFound: true });
      try {
        return readFileSync(join(options.root, key));
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        throw new StorageError('read', key, code ?? 'read failed', { notFound: code === 'ENOENT', cause: error });
      }
    },
  };
}
