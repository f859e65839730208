import { closeSync, fstatSync, openSync, readSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
// A worker thread loads this module alone (its own tsup entry): it imports only core's errors,
// never the whole of core (MikroORM, pg-boss...), which would cost each worker ~100 MB and a second.
import type { WorkerObjectReader } from '@avatargen/core';
import { StorageError } from '@avatargen/core/errors';
import { linkRefused, OPEN_FLAGS, readFailure, storageKeySegments } from './paths.js';

export interface FilesystemReaderOptions {
  /** The filesystem storage's root folder. */
  root: string;
}

/**
 * The filesystem storage's reader for a worker thread (its WorkerReaderSpec names this factory).
 * It reads with blocking calls: in a worker that costs nothing, and it skips the five trips
 * through libuv's thread pool that each asynchronous read makes. Same rules as the storage's
 * read(): keys checked, no symbolic link followed, a missing file is notFound.
 */
export function openFilesystemReader(options: FilesystemReaderOptions): WorkerObjectReader {
  if (typeof options?.root !== 'string' || options.root === '') {
    throw new StorageError('init', undefined, 'a root folder is required', { retryable: false });
  }
  const root = resolve(options.root);
  let realRoot: string | undefined;
  return {
    read(key: string, scratch: Buffer): Buffer {
      const segments = storageKeySegments('read', key);
      const target = join(root, ...segments);
      let fd: number | undefined;
      try {
        // realpath(3) in one call, as the storage's async realpath does; the JavaScript
        // realpathSync makes an lstat per folder.
        realRoot ??= realpathSync.native(root);
        if (realpathSync.native(target) !== join(realRoot, ...segments)) throw linkRefused('read', key);
        fd = openSync(target, OPEN_FLAGS);
        const stats = fstatSync(fd);
        if (!stats.isFile()) throw new StorageError('read', key, 'no such object', { notFound: true });
        const buffer = stats.size <= scratch.length ? scratch.subarray(0, stats.size) : Buffer.allocUnsafe(stats.size);
        let filled = 0;
        while (filled < buffer.length) {
          const bytesRead = readSync(fd, buffer, filled, buffer.length - filled, filled);
          if (bytesRead === 0) break; // truncated meanwhile: what is there
          filled += bytesRead;
        }
        return buffer.subarray(0, filled);
      } catch (error) {
        throw readFailure('read', key, error);
      } finally {
        if (fd !== undefined) closeSync(fd);
      }
    },
  };
}
