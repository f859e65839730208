import { StorageError } from '../errors.js';
import type { ObjectStorage } from '../ports.js';
import { taskFolder, thumbnailSource } from './keys.js';

/** Keys per deleteMany call when deleteUnderPrefix falls back to list + deleteMany (S3's limit). */
export const DELETE_PAGE_SIZE = 1000;

// C0 controls, DEL and C1 controls.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Checks a prefix about to be deleted, like a key: not empty (deleting everything needs an
 * explicit prefix), no leading "/", no empty, "." or ".." segment (a trailing "/" is allowed) and
 * no control character. Throws a non-retryable StorageError with keyRefused.
 */
export function assertDeletablePrefix(operation: string, prefix: unknown): asserts prefix is string {
  const refuse = (reason: string): never => {
    throw new StorageError(operation, JSON.stringify(String(prefix)).slice(0, 200), `invalid prefix: ${reason}`, { keyRefused: true });
  };
  if (typeof prefix !== 'string') refuse('not a string');
  const value = prefix as string;
  if (value === '' || value === '/') refuse('empty (deleting everything needs an explicit prefix)');
  if (CONTROL.test(value)) refuse('contains a control character');
  if (value.startsWith('/')) refuse('starts with "/"');
  const segments = value.split('/');
  if (segments.length > 1 && segments[segments.length - 1] === '') segments.pop();
  for (const segment of segments) {
    if (segment === '') refuse('has an empty segment');
    if (segment === '.' || segment === '..') refuse(`has a "${segment}" segment`);
  }
}

/**
 * Deletes every object whose key starts with `prefix` and returns how many: through the storage's
 * deletePrefix() when it has one, otherwise by listing and deleting DELETE_PAGE_SIZE keys at a time.
 * `tasks/<id>/` names a task's folder; without the trailing "/" it would also match `tasks/<id>0/`.
 * Errors are the storage's (retryable ones may be tried again: what is gone stays gone).
 */
export async function deleteUnderPrefix(storage: ObjectStorage, prefix: string): Promise<number> {
  assertDeletablePrefix('deletePrefix', prefix);
  if (storage.deletePrefix) return storage.deletePrefix(prefix);
  let deleted = 0;
  let page: string[] = [];
  for await (const object of storage.list(prefix)) {
    page.push(object.key);
    if (page.length === DELETE_PAGE_SIZE) {
      await storage.deleteMany(page);
      deleted += page.length;
      page = [];
    }
  }
  if (page.length > 0) {
    await storage.deleteMany(page);
    deleted += page.length;
  }
  return deleted;
}

/**
 * Deletes the cached thumbnails (any width) of the images a test picks, in one task's folder: a
 * regenerated persona's or picture's old thumbnails would otherwise stay until the task is deleted.
 */
export async function deleteThumbnails(storage: ObjectStorage, storagePrefix: string, of: (source: string) => boolean): Promise<number> {
  const keys: string[] = [];
  for await (const object of storage.list(`${taskFolder(storagePrefix)}thumbs/`)) {
    const source = thumbnailSource(object.key);
    if (source && of(source)) keys.push(object.key);
  }
  for (let i = 0; i < keys.length; i += DELETE_PAGE_SIZE) await storage.deleteMany(keys.slice(i, i + DELETE_PAGE_SIZE));
  return keys.length;
}
