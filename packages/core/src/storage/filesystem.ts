import { randomBytes } from 'node:crypto';
import { constants, type Dirent } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readdir, realpath, rename, rm, rmdir, unlink } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { StorageError } from '../errors.js';
import type { FilesystemReaderOptions } from './filesystem-reader.js';
import { definePlugin, type AvatarGenPlugin } from '../plugin.js';
import type { Bytes, ObjectStorage, PutOptions, StoredObject, WorkerReaderSpec } from '../ports.js';
import { isNotFound, linkRefused, OPEN_FLAGS, readFailure, storageKeySegments, systemMessage, TEMP_PREFIX } from './filesystem-paths.js';

export { storageKeySegments } from './filesystem-paths.js';

export interface FilesystemStorageOptions {
  /** Folder that holds the objects; created on the first write. */
  root: string;
  /** Path (or URL) under which the host serves `root`. Default `/media`. */
  publicBaseUrl?: string;
}

/** Largest single read of get(): objects up to this size come out as one chunk. */
const READ_CHUNK = 1024 * 1024;

// The worker-thread reader is its own small module (built as dist/filesystem-reader.js): a worker
// loads it without the rest of core. Under vitest or tsx this file is TypeScript, and so is it.
const READER_URL = new URL(import.meta.url.endsWith('.ts') ? './filesystem-reader.ts' : './filesystem-reader.js', import.meta.url).href;

/**
 * ObjectStorage on a local folder, the zero-setup default. Writes are atomic (a temporary file in
 * the same folder, synced, then renamed), so a reader never sees half an object. A key never
 * reaches outside the root: bad keys are refused and no path through a symbolic link is followed.
 * The content type is not kept: the host derives it from the key's extension.
 */
export function createFilesystemStorage(options: FilesystemStorageOptions): ObjectStorage {
  if (!options?.root) throw new StorageError('init', undefined, 'a root folder is required', { retryable: false });
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
        throw new StorageError(operation, key, systemMessage(error), { cause: error });
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
    if (!full.startsWith(rootWithSep)) throw new StorageError('resolve', segments.join('/'), 'invalid key: outside the root', { keyRefused: true });
    return full;
  }

  async function writeAll(target: string, body: Bytes | Readable): Promise<void> {
    const handle = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
    try {
      if (body instanceof Uint8Array) {
        await handle.writeFile(body);
      } else {
        for await (const chunk of body) {
          const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array);
          await handle.write(bytes);
        }
      }
      await handle.sync();
    } finally {
      await handle.close();
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
      throw new StorageError('list', keyPrefix || undefined, systemMessage(error), { cause: error });
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
          if (!isNotFound(error)) throw new StorageError('list', key, systemMessage(error), { cause: error });
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
      throw new StorageError('delete', key, systemMessage(error), { cause: error });
    }
    await removeEmptyParents(segments);
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
    async put(key: string, body: Bytes | Readable, _options: PutOptions): Promise<void> {
      const segments = storageKeySegments('put', key);
      const target = pathOf(segments);
      await assertNoSymlink('put', key, segments, segments.length);
      const folder = join(root, ...segments.slice(0, -1));
      const temp = join(folder, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
      try {
        await mkdir(folder, { recursive: true });
        // mkdir may have raced with someone planting a link: check again before writing.
        await assertNoSymlink('put', key, segments, segments.length);
        await writeAll(temp, body);
        await rename(temp, target);
      } catch (error) {
        await rm(temp, { force: true }).catch(() => undefined);
        if (error instanceof StorageError) throw error;
        const code = (error as NodeJS.ErrnoException).code;
        const retryable = code !== 'EISDIR' && code !== 'ENOTDIR' && code !== 'EEXIST' && code !== 'ENOTEMPTY';
        throw new StorageError('put', key, systemMessage(error), { cause: error, retryable });
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
        throw new StorageError('read', key, systemMessage(error), { cause: error });
      } finally {
        await handle.close();
      }
    },

    workerReader(): WorkerReaderSpec {
      return { module: READER_URL, factory: 'openFilesystemReader', options: { root } satisfies FilesystemReaderOptions };
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

    publicUrl(key: string): string {
      const segments = storageKeySegments('publicUrl', key);
      return `${publicBase}/${segments.map(encodeURIComponent).join('/')}`;
    },
  };
}

export interface FilesystemStoragePluginOptions {
  /** Default: `${DATA_DIR}/storage`. */
  root?: string;
  /** Default: `/media`. */
  publicBaseUrl?: string;
}

/** Fills `objectStorage` with a folder on this machine (the zero-setup default). */
export function filesystemStoragePlugin(options: FilesystemStoragePluginOptions = {}): AvatarGenPlugin {
  return definePlugin({
    name: 'filesystem-storage',
    provides: ['objectStorage'],
    register(context) {
      const root = options.root ?? join(context.config.DATA_DIR, 'storage');
      context.provide('objectStorage', createFilesystemStorage({ root, publicBaseUrl: options.publicBaseUrl }));
    },
  });
}
