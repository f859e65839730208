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
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

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
    return make(`refused by ${info.host} (${name}${status ? `, HTTP ${status}` : ''}): check the S3 access key, secret key and bucket permissions`, false);
  }
  if (name === 'TimeoutError' || e.code === 'ETIMEDOUT') {
    return make(`no answer from ${info.host} in time${tries}`, true);
  }
  if (e.code && NETWORK_CODES.has(e.code)) return make(`cannot reach ${info.host} (${e.code})${tries}`, true);
  if (status !== undefined && (status >= 500 || status === 429)) {
    return make(`${info.host} answered ${name} (HTTP ${status})${tries}${detail ? `: ${detail}` : ''}`, true);
  }
  if (status !== undefined) return make(`${name} (HTTP ${status})${detail ? `: ${detail}` : ''}`, false);
  return make(`${name}${e.code ? ` ${e.code}` : ''}${detail ? `: ${detail}` : ''}`, e.$fault === 'server');
}
