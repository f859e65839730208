import { CancelledError, StorageError } from '@avatargen/core';
import type { ClientInfo } from './client.js';

interface SdkErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number; attempts?: number };
  $retryable?: unknown;
}

const AUTH_NAMES = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'AllAccessDisabled',
]);
/** No connection could be made: the server is down, unreachable or not resolvable (yet). */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'ENOTFOUND', 'EAI_AGAIN']);
/** A connection broke during the call (the server died or restarted, a proxy dropped it). */
const BROKEN_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ENETRESET', 'ERR_STREAM_PREMATURE_CLOSE']);
/**
 * S3 error codes worth another try whatever their HTTP status (RequestTimeout comes as a 400:
 * the server gave up waiting for the request body).
 */
const RETRYABLE_NAMES = new Set([
  'RequestTimeout',
  'SlowDown',
  'InternalError',
  'ServiceUnavailable',
  'Throttling',
  'ThrottlingException',
  'RequestThrottled',
  'TooManyRequests',
  'OperationAborted',
]);

/** The S3 error code of an SDK error (NoSuchKey, NotImplemented...), or undefined. */
export function errorName(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null ? (error as SdkErrorShape).name : undefined;
}

export function httpStatus(error: unknown): number | undefined {
  return typeof error === 'object' && error !== null ? (error as SdkErrorShape).$metadata?.httpStatusCode : undefined;
}

export function isNotFound(error: unknown): boolean {
  const name = errorName(error);
  return name === 'NoSuchKey' || name === 'NotFound' || (httpStatus(error) === 404 && name !== 'NoSuchBucket');
}

export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) out = out.split(secret).join('[redacted]');
  return out;
}

/**
 * Turns whatever the SDK threw into a StorageError naming the operation and key. The SDK error is
 * not kept as `cause` (it carries request details); its name, code and status go into the message.
 */
export function toStorageError(
  info: ClientInfo & { bucket: string },
  operation: string,
  key: string | undefined,
  error: unknown,
  signal?: AbortSignal,
): StorageError | CancelledError {
  if (error instanceof StorageError || error instanceof CancelledError) return error;
  if (signal?.aborted) return new CancelledError();
  const e = (typeof error === 'object' && error !== null ? error : { message: String(error) }) as SdkErrorShape;
  const name = e.name ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  const attempts = e.$metadata?.attempts;
  const tries = attempts && attempts > 1 ? ` after ${attempts} attempts` : '';
  const detail = redact((e.message ?? '').slice(0, 300), info.secrets);
  const make = (message: string, retryable: boolean, notFound = false) =>
    new StorageError(operation, key, redact(message, info.secrets), { retryable, notFound, status, source: 'storage-s3' });

  if (name === 'AbortError') return new CancelledError();
  if (isNotFound(error)) return make('not found', false, true);
  if (name === 'NoSuchBucket') return make(`bucket "${info.bucket}" does not exist on ${info.host}`, false);
  if (AUTH_NAMES.has(name) || status === 401 || status === 403) {
    return make(
      `refused by ${info.host} (${name}${status ? `, HTTP ${status}` : ''}): check the S3 access key, secret key and bucket permissions`,
      false,
    );
  }
  // Before the timeout check: the SDK names a connection reset a TimeoutError too.
  if (e.code && UNREACHABLE_CODES.has(e.code)) return make(`cannot reach ${info.host} (${e.code})${tries}`, true);
  if (e.code && BROKEN_CODES.has(e.code)) return make(`the connection to ${info.host} broke (${e.code})${tries}`, true);
  if (name === 'TimeoutError' || e.code === 'ETIMEDOUT') {
    return make(`no answer from ${info.host} in time${tries}`, true);
  }
  if (status !== undefined && (status >= 500 || status === 429 || RETRYABLE_NAMES.has(name))) {
    return make(`${info.host} answered ${name} (HTTP ${status})${tries}${detail ? `: ${detail}` : ''}`, true);
  }
  if (status !== undefined) return make(`${name} (HTTP ${status})${detail ? `: ${detail}` : ''}`, false);
  // No HTTP answer and no known code: trust the SDK's own judgement where it gives one.
  return make(`${name}${e.code ? ` ${e.code}` : ''}${detail ? `: ${detail}` : ''}`, e.$fault === 'server' || Boolean(e.$retryable));
}
