import { StorageError } from '@avatargen/core';

/** S3 refuses keys longer than this many UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024;

/** A key (or list prefix) that cannot be stored safely; refused, never rewritten. */
export class InvalidKeyError extends StorageError {
  /** The refused key, as given. */
  readonly invalidKey: string;
  readonly reason: string;
  constructor(operation: string, key: string, reason: string) {
    super(operation, undefined, `invalid key ${printable(key.slice(0, 200))}: ${reason}`, { keyRefused: true });
    this.invalidKey = key;
    this.reason = reason;
  }
}

/** The key quoted, with every control character escaped, so none reaches a log line raw. */
function printable(key: string): string {
  return JSON.stringify(key).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

// C0 controls, DEL and C1 controls: invisible, and several break HTTP headers or log lines.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function problem(value: string, allowTrailingSlash: boolean): string | null {
  if (CONTROL.test(value)) return 'contains a control character';
  if (LONE_SURROGATE.test(value)) return 'is not valid Unicode';
  if (value.startsWith('/')) return 'starts with "/"';
  if (Buffer.byteLength(value, 'utf8') > MAX_KEY_BYTES) return `is longer than ${MAX_KEY_BYTES} bytes`;
  const segments = value.split('/');
  if (allowTrailingSlash && segments.length > 1 && segments[segments.length - 1] === '') segments.pop();
  for (const segment of segments) {
    if (segment === '') return 'has an empty path segment';
    if (segment === '.' || segment === '..') return `has a "${segment}" path segment`;
  }
  return null;
}

/** Checks an object key; throws InvalidKeyError naming the reason. */
export function assertValidKey(operation: string, key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new InvalidKeyError(operation, String(key), 'is not a string');
  if (key === '') throw new InvalidKeyError(operation, key, 'is empty');
  const reason = problem(key, false);
  if (reason) throw new InvalidKeyError(operation, key, reason);
}

/** Checks a listing prefix: like a key, but it may be empty or end with "/". */
export function assertValidPrefix(operation: string, prefix: unknown): asserts prefix is string {
  if (typeof prefix !== 'string') throw new InvalidKeyError(operation, String(prefix), 'is not a string');
  if (prefix === '') return;
  const reason = problem(prefix, true);
  if (reason) throw new InvalidKeyError(operation, prefix, reason);
}

/** Each segment percent-encoded, the "/" between them kept, so the URL path maps back to the key. */
export function encodeKeyPath(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}
