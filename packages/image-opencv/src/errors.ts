import { AvatarGenError, InvalidImageError, ValidationError } from '@avatargen/core';
import type { WorkerFailureKind } from './protocol.js';

export const SOURCE = 'image-opencv';

/** A pool call that did not finish within its time limit; the worker running it was replaced. */
export class ImageTimeoutError extends AvatarGenError {
  readonly operation: string;
  readonly timeoutMs: number;
  constructor(operation: string, timeoutMs: number) {
    super('timeout', `Image processing (${operation}) did not finish within ${timeoutMs} ms; its worker was stopped`, {
      source: SOURCE,
      // usually a busy machine: the same call may well pass later
      retryable: true,
    });
    this.operation = operation;
    this.timeoutMs = timeoutMs;
  }
}

/** Turns a failure reported by a worker back into the typed error callers can test with instanceof. */
export function rebuildError(kind: WorkerFailureKind, message: string, field?: string): Error {
  switch (kind) {
    case 'invalid-image':
      return new InvalidImageError(message, { source: SOURCE });
    case 'validation':
      return new ValidationError({ [field ?? 'options']: message });
    default:
      return new AvatarGenError('server', `Image processing failed: ${message}`, { source: SOURCE });
  }
}
