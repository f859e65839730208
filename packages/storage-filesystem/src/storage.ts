import { randomBytes } from 'node:crypto';
import { constants, type Dirent } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readdir, realpath, rename, rmdir, unlink } from 'node:fs/promises';
import { join, parse, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { assertDeletablePrefix, type Bytes, type ObjectStorage, type PutOptions, StorageError, type StoredObject } from '@avatargen/core';
import { fsFailure, isNotFound, linkRefused, OPEN_FLAGS, readFailure, storageKeySegments, systemMessage, TEMP_PREFIX } from './paths.js';

export interface FilesystemStorageOptions {
  /** Folder that holds the objects; created on the first write. */
  root: string;
  /** Path (or URL) under which the host serves `root`. Default `/media`. */
  publicBaseUrl?: string;
  /**
   * A temporary file (`.avatargen-tmp-*`) not modified for this long is left over from a write that
   * died (a killed process, or a failed write whose clean-up failed too, as on a read-only file
   * system) and is removed by the sweep. Several processes may share the folder, so a fresh one
   * may be another process's write in progress: it is kept. Default 10 minutes.
   */
  tempMaxAgeMs?: number;
  /** How often the storage sweeps its temporary files; 0 sweeps only at start. Default 1 hour. */
  sweepIntervalMs?: number;
  /** Where a failed background sweep is reported (a pino logger fits); without one it is ignored. */
  logger?: { warn(object: Record<string, unknown>, message: string): void };
}

/** The filesystem storage: an ObjectStorage with prefix deletion, its temp-file sweep and close(). */
export interface FilesystemStorage extends ObjectStorage {
  /** The root folder, resolved. */
  readonly root: string;
  /** The whole object in one buffer (always there, unlike ObjectStorage's optional read). */
  read(key: string): Promise<Uint8Array>;
  /**
   * Removes every object whose key starts with `prefix`, and under it the temporary files (whatever
   * their age: the caller means everything there) and the folders left empty; returns how many
   * objects. Nothing outside the prefix is touched. The prefix is checked like a key and must not
   * be empty. `tasks/t1/` names a folder; `tasks/t1` would also take `tasks/t10/`.
   */
  deletePrefix(prefix: string): Promise<number>;
  /**
   * Removes the temporary files not modified for `maxAgeMs` (default: the storage's
   * `tempMaxAgeMs`) anywhere under the root; returns how many. Runs by itself at start and every
   * `sweepIntervalMs`; `doctor` and tests call it directly. Symbolic links are not followed.
   */
  sweepTempFiles(options?: { maxAgeMs?: number }): Promise<number>;
  /** Stops the periodic sweep and waits for a running one. The storage itself keeps working. */
  close(): Promise<void>;
}

export const DEFAULT_TEMP_MAX_AGE_MS = 10 * 60_000;
export const DEFAULT_SWEEP_INTERVAL_MS = 60 * 60_000;
/** setInterval's largest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Largest single read of get(): objects up to this size come out as one chunk. */
const READ_CHUNK = 1024 * 1024;

/**
 * ObjectStorage on a local folder, the zero-setup default. Writes are atomic (a temporary file in
 * the same folder, synced, then renamed), so a reader never sees half an object; a failed write
 * removes its temporary file, and a sweep removes those left by a crash or a broken disk. Failures
 * of the file system (read-only, full, no permission, I/O errors...) are retryable StorageErrors
 * naming the operation, the key and the system's code, never the folder's path. A key never
 * reaches outside the root: bad keys are refused and no path through a symbolic link is followed.
 * The content type is not kept: the host derives it from the key's extension.
 */
export function createFilesystemStorage(options: FilesystemStorageOptions): FilesystemStorage {
  if (!options?.root) throw new StorageError('init', undefined, 'a root folder is required', { retryable: false });
  const tempMaxAgeMs = options.tempMaxAgeMs ?? DEFAULT_TEMP_MAX_AGE_MS;
  const sweepIntervalMs = options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
  if (!(Number.isFinite(tempMaxAgeMs) && tempMaxAgeMs >= 0)) {
    throw new StorageError('init', undefined, 'tempMaxAgeMs must be a number of milliseconds, 0 or more', { retryable: false });
  }
  if (!(Number.isInteger(sweepIntervalMs) && sweepIntervalMs >= 0 && sweepIntervalMs <= MAX_TIMER_MS)) {
    throw new StorageError('init', undefined, `sweepIntervalMs must be a whole number from 0 to ${MAX_TIMER_MS}`, { retryable: false });
  }
  const root = resolve(options.root);
  const rootWithSep = root.endsWith(sep) ? root : root + sep;
  const publicBase = (options.publicBaseUrl ?? '/media').replace(/\/+$/, '');

  /** Refuses a path that passes through a symbolic link below the root (it could point anywhere). */
  async function assertNoSymlink(operation: string, key: string, segments: string[], count: number): Promise<void> {
    let current = root;
    for (let i = 0; i < count; i++) {
      current = join(current, segments[i] as string);
      let stats: Awaited<ReturnType<typeof lstat>>;
      try {
        stats = await lstat(current);
      } catch (error) {
        if (isNotFound(error)) return;
        throw fsFailure(operation, key, error);
      }
      if (stats.isSymbolicLink()) {
        throw linkRefused(operation, key);
      }
    }
  }

  /** The root with its own links resolved (it may itself sit below one, as /tmp does on macOS). */
  let realRootPath: Promise<string> | undefined;
  const realRoot = () => {
    realRootPath ??= realpath(root).catch((error: unknown) => {
      realRootPath = undefined; // the root may be made later
      throw error;
    });
    return realRootPath;
  };

  function pathOf(segments: string[]): string {
    const full = resolve(root, ...segments);
    // Belt and braces: the segment rules already make this impossible.
    if (!full.startsWith(rootWithSep))
      throw new StorageError('resolve', segments.join('/'), 'invalid key: outside the root', { keyRefused: true });
    return full;
  }

  /**
   * `mkdir -p`. Node's recursive mkdir passes on only a few codes (EACCES, ENOSPC, EPERM...) and
   * reports most others as ENOENT, EROFS and EIO among them: on ENOENT the folders are created one
   * level at a time to find the real code.
   */
  async function makeFolders(folder: string): Promise<void> {
    try {
      await mkdir(folder, { recursive: true });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    let current = parse(folder).root;
    for (const part of folder.slice(current.length).split(sep)) {
      current = join(current, part);
      try {
        await mkdir(current);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
    }
  }

  /** Writes the body; an error of the caller's stream (not of the file system) comes out as SourceFailure. */
  async function writeAll(handle: FileHandle, body: Bytes | Readable): Promise<void> {
    if (body instanceof Uint8Array) {
      await handle.writeFile(body);
      return;
    }
    let writing = false;
    try {
      for await (const chunk of body) {
        writing = true;
        await handle.write(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array));
        writing = false;
      }
    } catch (error) {
      throw writing ? error : new SourceFailure(error);
    }
  }

  async function removeEmptyParents(segments: string[]): Promise<void> {
    for (let depth = segments.length - 1; depth > 0; depth--) {
      try {
        await rmdir(join(root, ...segments.slice(0, depth)));
      } catch {
        return; // not empty (or already gone): stop climbing
      }
    }
  }

  async function* walk(dir: string, keyPrefix: string): AsyncGenerator<StoredObject> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (isNotFound(error)) return;
      throw fsFailure('list', keyPrefix || undefined, error);
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (entry.name.startsWith(TEMP_PREFIX)) continue;
      const path = join(dir, entry.name);
      const key = keyPrefix + entry.name;
      if (entry.isDirectory()) {
        yield* walk(path, `${key}/`);
      } else if (entry.isFile()) {
        try {
          const stats = await lstat(path);
          yield { key, size: stats.size };
        } catch (error) {
          if (!isNotFound(error)) throw fsFailure('list', key, error);
        }
      }
      // symbolic links and special files are not objects: skipped
    }
  }

  async function remove(key: string): Promise<void> {
    const segments = storageKeySegments('delete', key);
    const target = pathOf(segments);
    await assertNoSymlink('delete', key, segments, segments.length - 1);
    try {
      await unlink(target);
    } catch (error) {
      if (isNotFound(error)) return;
      throw fsFailure('delete', key, error);
    }
    await removeEmptyParents(segments);
  }

  /**
   * Removes the temporary files under `dir` last modified at or before `cutoff` (ms since the
   * epoch). Keeps going past a folder it cannot read or a file it cannot remove, and throws the
   * first such error at the end. Links are not followed.
   */
  async function sweepFolder(dir: string, keyPrefix: string, cutoff: number, state: { removed: number; error?: StorageError }) {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (!isNotFound(error)) state.error ??= fsFailure('sweepTempFiles', keyPrefix || undefined, error);
      return;
    }
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        await sweepFolder(path, `${keyPrefix}${entry.name}/`, cutoff, state);
      } else if (entry.isFile() && entry.name.startsWith(TEMP_PREFIX)) {
        try {
          if ((await lstat(path)).mtimeMs > cutoff) continue;
          await unlink(path);
          state.removed++;
        } catch (error) {
          // gone meanwhile: renamed into place by its writer, or swept by another process
          if (!isNotFound(error)) state.error ??= fsFailure('sweepTempFiles', keyPrefix + entry.name, error);
        }
      }
    }
  }

  async function sweepTempFiles(sweep: { maxAgeMs?: number } = {}): Promise<number> {
    const maxAgeMs = sweep.maxAgeMs ?? tempMaxAgeMs;
    const state: { removed: number; error?: StorageError } = { removed: 0 };
    await sweepFolder(root, '', Date.now() - maxAgeMs, state);
    if (state.error) throw state.error;
    return state.removed;
  }

  // The sweep runs in the background: once at creation (construction does not wait for it) and
  // then every sweepIntervalMs on an unref'd timer, which never keeps the process alive; close()
  // stops it. A failure is logged, never thrown: the next sweep tries again.
  let background: Promise<unknown> | undefined;
  const sweepInBackground = () => {
    background ??= sweepTempFiles()
      .catch((error: unknown) =>
        options.logger?.warn({ err: error }, `filesystem storage: temp file sweep failed: ${(error as Error).message}`),
      )
      .finally(() => {
        background = undefined;
      });
  };
  sweepInBackground();
  const timer = sweepIntervalMs > 0 ? setInterval(sweepInBackground, sweepIntervalMs).unref() : undefined;

  /**
   * Removes the objects and temporary files under `dir` whose keys start with `prefix`, and the
   * folders emptied on the way; returns how many objects. Entries other than files and folders
   * (links, FIFOs) are left alone, and so is the folder holding them.
   */
  async function clearFolder(dir: string, keyPrefix: string, prefix: string): Promise<number> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (isNotFound(error)) return 0;
      throw fsFailure('deletePrefix', keyPrefix || prefix, error);
    }
    let removed = 0;
    for (const entry of entries) {
      const key = keyPrefix + entry.name;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        // In the prefix's own folder only the names that continue the prefix match.
        if (!`${key}/`.startsWith(prefix)) continue;
        removed += await clearFolder(path, `${key}/`, prefix);
        await rmdir(path).catch(() => undefined); // not empty: written to meanwhile, or holds a link
      } else if (entry.isFile() && key.startsWith(prefix)) {
        try {
          await unlink(path);
          if (!entry.name.startsWith(TEMP_PREFIX)) removed++;
        } catch (error) {
          if (!isNotFound(error)) throw fsFailure('deletePrefix', key, error);
        }
      }
    }
    return removed;
  }

  /** An object's file, opened for reading after checking that no link leads to it. */
  async function openObject(operation: string, key: string): Promise<{ handle: FileHandle; size: number }> {
    const segments = storageKeySegments(operation, key);
    const target = pathOf(segments);
    try {
      // One realpath instead of an lstat per folder: each file system call is a trip through
      // libuv's thread pool, and an export makes thousands of them.
      if ((await realpath(target)) !== join(await realRoot(), ...segments)) {
        throw linkRefused(operation, key);
      }
      const handle = await open(target, OPEN_FLAGS);
      const stats = await handle.stat().catch(async (error: unknown) => {
        await handle.close();
        throw error;
      });
      if (!stats.isFile()) {
        await handle.close();
        throw new StorageError(operation, key, 'no such object', { notFound: true });
      }
      return { handle, size: stats.size };
    } catch (error) {
      throw readFailure(operation, key, error);
    }
  }

  return {
    root,

    async put(key: string, body: Bytes | Readable, _options: PutOptions): Promise<void> {
      const segments = storageKeySegments('put', key);
      const target = pathOf(segments);
      await assertNoSymlink('put', key, segments, segments.length);
      const folder = join(root, ...segments.slice(0, -1));
      const temp = join(folder, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
      let created = false;
      try {
        await makeFolders(folder);
        // mkdir may have raced with someone planting a link: check again before writing.
        await assertNoSymlink('put', key, segments, segments.length);
        const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
        created = true;
        try {
          await writeAll(handle, body);
          await handle.sync();
        } catch (error) {
          await handle.close().catch(() => undefined);
          throw error;
        }
        await handle.close(); // may report a write error late (network file systems)
        await rename(temp, target);
      } catch (error) {
        // Best effort: where the write failed, the unlink may fail too (a read-only or broken file
        // system); the sweep removes the file later. It is never listed meanwhile.
        if (created) await unlink(temp).catch(() => undefined);
        if (body instanceof Readable) body.destroy();
        if (error instanceof SourceFailure) {
          throw new StorageError('put', key, `the source stream failed: ${systemMessage(error.error)}`, {
            cause: error.error,
            retryable: false,
          });
        }
        throw fsFailure('put', key, error);
      }
    },

    async get(key: string): Promise<Readable> {
      const { handle, size } = await openObject('get', key);
      if (size === 0) {
        await handle.close();
        return Readable.from([]);
      }
      // Up to 1 MiB in one read and no read for the end of the file: a typical image is one chunk.
      return handle.createReadStream({ autoClose: true, start: 0, end: size - 1, highWaterMark: Math.min(size, READ_CHUNK) });
    },

    async read(key: string): Promise<Uint8Array> {
      const { handle, size } = await openObject('read', key);
      try {
        const buffer = Buffer.allocUnsafe(size);
        let filled = 0;
        while (filled < size) {
          const { bytesRead } = await handle.read(buffer, filled, size - filled, filled);
          if (bytesRead === 0) break; // truncated meanwhile: what is there
          filled += bytesRead;
        }
        return filled === size ? buffer : buffer.subarray(0, filled);
      } catch (error) {
        throw fsFailure('read', key, error);
      } finally {
        await handle.close();
      }
    },

    delete: remove,

    async deleteMany(keys: readonly string[]): Promise<void> {
      // Validate them all first, so a bad key deletes nothing.
      for (const key of keys) storageKeySegments('delete', key);
      for (const key of keys) await remove(key);
    },

    async *list(prefix: string): AsyncIterable<StoredObject> {
      // Like S3: every key that starts with `prefix`; walk only the folder the prefix names.
      const cut = prefix.lastIndexOf('/');
      const folderKey = cut >= 0 ? prefix.slice(0, cut) : '';
      const segments = folderKey === '' ? [] : storageKeySegments('list', folderKey);
      if (prefix.includes('\\') || /[\u0000-\u001f\u007f]/.test(prefix)) storageKeySegments('list', prefix);
      await assertNoSymlink('list', prefix, segments, segments.length);
      const start = segments.length === 0 ? root : pathOf(segments);
      for await (const object of walk(start, folderKey === '' ? '' : `${folderKey}/`)) {
        if (object.key.startsWith(prefix)) yield object;
      }
    },

    async deletePrefix(prefix: string): Promise<number> {
      assertDeletablePrefix('deletePrefix', prefix);
      // And by this storage's own key rules (no backslash, no temp-file name...).
      storageKeySegments('deletePrefix', prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
      const cut = prefix.lastIndexOf('/');
      const folderSegments = cut > 0 ? prefix.slice(0, cut).split('/') : [];
      await assertNoSymlink('deletePrefix', prefix, folderSegments, folderSegments.length);
      const start = folderSegments.length === 0 ? root : pathOf(folderSegments);
      const removed = await clearFolder(start, folderSegments.length === 0 ? '' : `${folderSegments.join('/')}/`, prefix);
      // "tasks/t1/" names its folder: it goes too when empty. Folders above the prefix stay.
      if (prefix.endsWith('/')) await rmdir(start).catch(() => undefined);
      return removed;
    },

    sweepTempFiles,

    async close(): Promise<void> {
      clearInterval(timer);
      await background;
    },

    publicUrl(key: string): string {
      const segments = storageKeySegments('publicUrl', key);
      return `${publicBase}/${segments.map(encodeURIComponent).join('/')}`;
    },
  };
}

/** An error thrown by the body stream a caller handed to put(): the caller's failure, not the disk's. */
class SourceFailure {
  constructor(readonly error: unknown) {}
}
