import { constants } from 'node:fs';
import { StorageError } from '@avatargen/core';

// Key rules and error mapping of the filesystem storage.

/** Temporary files of unfinished writes start with this; they are never listed and no key may use it. */
export const TEMP_PREFIX = '.avatargen-tmp-';
/** Most filesystems refuse longer names (bytes, not characters). */
const MAX_SEGMENT_BYTES = 255;
const MAX_KEY_LENGTH = 1024;

/**
 * Splits a key into path segments, refusing anything that could leave the root folder or that a
 * filesystem cannot hold: absolute paths, `..` and `.` segments, empty segments, backslashes,
 * NUL and other control characters, drive letters.
 */
export function storageKeySegments(operation: string, key: string): string[] {
  const fail = (reason: string): never => {
    throw new StorageError(operation, JSON.stringify(key).slice(0, 200), `invalid key: ${reason}`, { keyRefused: true });
  };
  if (typeof key !== 'string' || key.length === 0) fail('empty');
  if (key.length > MAX_KEY_LENGTH) fail(`longer than ${MAX_KEY_LENGTH} characters`);
  if (/[\u0000-\u001f\u007f]/.test(key)) fail('contains a control character');
  if (key.includes('\\')) fail('contains a backslash');
  if (key.startsWith('/')) fail('is an absolute path');
  if (/^[a-zA-Z]:/.test(key)) fail('starts with a drive letter');
  const segments = key.split('/');
  for (const segment of segments) {
    if (segment === '') fail('has an empty segment');
    if (segment === '.' || segment === '..') fail(`has a "${segment}" segment`);
    if (segment.startsWith(TEMP_PREFIX)) fail(`a segment starts with the reserved "${TEMP_PREFIX}"`);
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) fail(`a segment is longer than ${MAX_SEGMENT_BYTES} bytes`);
  }
  return segments;
}

export function isNotFound(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** The system's code and call (`EROFS open`), never the message: that one holds the full path. */
export function systemMessage(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  return e?.code ? `${e.code} ${e.syscall ?? ''}`.trim() : String(error);
}

/**
 * Codes that say the request itself cannot work (a file where a folder should be, or the other way
 * round, a name too long): asking again fails again. Every other code is retryable: EROFS, ENOSPC,
 * EDQUOT, EACCES, EPERM, EIO, EBUSY, EAGAIN, EMFILE, ENFILE, ESTALE... are states of the file
 * system (remounted read-only, full, permissions being fixed, a disk or network share failing,
 * descriptors running out) that an operator or time can end.
 */
const PERMANENT_CODES = new Set(['EISDIR', 'ENOTDIR', 'EEXIST', 'ENOTEMPTY', 'ENAMETOOLONG', 'ELOOP']);

/** A file system call failed: the operation, the key and the system's code, retryable unless permanent. */
export function fsFailure(operation: string, key: string | undefined, error: unknown): StorageError {
  if (error instanceof StorageError) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return new StorageError(operation, key, systemMessage(error), { cause: error, retryable: !(code && PERMANENT_CODES.has(code)) });
}

/**
 * The error for a failed open or read of an object's file: a missing file (or a folder where a
 * file should be) is notFound; anything else keeps the system's code, never the full path.
 */
export function readFailure(operation: string, key: string, error: unknown): StorageError {
  if (error instanceof StorageError) return error;
  if (isNotFound(error) || (error as NodeJS.ErrnoException).code === 'EISDIR') {
    return new StorageError(operation, key, 'no such object', { notFound: true, cause: error });
  }
  // O_NOFOLLOW met a link planted after the realpath check.
  if ((error as NodeJS.ErrnoException).code === 'ELOOP') return linkRefused(operation, key);
  return fsFailure(operation, key, error);
}

/**
 * How an object's file is opened for reading: never through a link, and without blocking on a
 * FIFO or device planted in the folder (the open would wait forever, and no thread could stop
 * it); such files are then refused as not found, since they are not regular files.
 */
export const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

export const linkRefused = (operation: string, key: string) =>
  new StorageError(operation, key, 'invalid key: the path goes through a symbolic link', { keyRefused: true });
