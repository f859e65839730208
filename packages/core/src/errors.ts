/**
 * Typed errors shared by core and plugins. Every error says whether trying the
 * same call again may help (`retryable`); messages must never carry a secret.
 */
export type ErrorKind =
  | 'auth'
  | 'rate-limit'
  | 'timeout'
  | 'network'
  | 'server'
  | 'bad-request'
  | 'not-found'
  | 'invalid-response'
  | 'moderation'
  | 'cancelled'
  | 'invalid-image'
  | 'storage'
  | 'config'
  | 'validation'
  | 'conflict';

export interface AvatarGenErrorOptions {
  retryable?: boolean;
  cause?: unknown;
  /** Which external service or plugin raised it, e.g. "flowise". */
  source?: string;
  /** HTTP status when the error came from an HTTP answer. */
  status?: number;
  /** Server-advised wait before a retry (Retry-After), in milliseconds. */
  retryAfterMs?: number;
}

export class AvatarGenError extends Error {
  readonly kind: ErrorKind;
  readonly retryable: boolean;
  readonly source?: string;
  readonly status?: number;
  readonly retryAfterMs?: number;

  constructor(kind: ErrorKind, message: string, options: AvatarGenErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.kind = kind;
    this.retryable = options.retryable ?? false;
    this.source = options.source;
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
  }
}

/** A call to an external provider failed (auth, rate limit, timeout, 5xx, bad answer...). */
export class ProviderError extends AvatarGenError {
  static auth(source: string, message: string, status?: number): ProviderError {
    return new ProviderError('auth', message, { source, status, retryable: false });
  }
  static rateLimited(source: string, message: string, retryAfterMs?: number): ProviderError {
    return new ProviderError('rate-limit', message, { source, status: 429, retryable: true, retryAfterMs });
  }
  static timeout(source: string, message: string): ProviderError {
    return new ProviderError('timeout', message, { source, retryable: true });
  }
  static network(source: string, message: string, cause?: unknown): ProviderError {
    return new ProviderError('network', message, { source, retryable: true, cause });
  }
  static server(source: string, message: string, status?: number): ProviderError {
    return new ProviderError('server', message, { source, status, retryable: true });
  }
  static badRequest(source: string, message: string, status?: number): ProviderError {
    return new ProviderError('bad-request', message, { source, status, retryable: false });
  }
  static notFound(source: string, message: string, status = 404): ProviderError {
    return new ProviderError('not-found', message, { source, status, retryable: false });
  }
}

/** The provider answered, but the answer cannot be used. Retrying may give a better answer. */
export class InvalidResponseError extends AvatarGenError {
  constructor(source: string, message: string, options: Omit<AvatarGenErrorOptions, 'source'> = {}) {
    super('invalid-response', message, { retryable: true, ...options, source });
  }
}

/** The image service refused the request on safety grounds. Not retryable with the same input. */
export class ModerationError extends AvatarGenError {
  constructor(source: string, message: string, options: Omit<AvatarGenErrorOptions, 'source'> = {}) {
    super('moderation', message, { ...options, source, retryable: false });
  }
}

/** The work was cancelled through an AbortSignal. */
export class CancelledError extends AvatarGenError {
  constructor(message = 'The operation was cancelled') {
    super('cancelled', message, { retryable: false });
  }
}

/** Bytes that are not an acceptable image (corrupt, truncated, empty, too large, wrong format). */
export class InvalidImageError extends AvatarGenError {
  constructor(message: string, options: AvatarGenErrorOptions = {}) {
    super('invalid-image', message, { ...options, retryable: false });
  }
}

/** An object storage operation failed; names the operation and the key, never a credential. */
export class StorageError extends AvatarGenError {
  readonly operation: string;
  readonly key?: string;
  readonly notFound: boolean;
  /**
   * The key itself is refused (an empty or `..` segment, a control character, a symbolic link on
   * the way...): no object can be behind it, and asking again cannot help. A web host answers 404.
   */
  readonly keyRefused: boolean;
  constructor(
    operation: string,
    key: string | undefined,
    message: string,
    options: AvatarGenErrorOptions & { notFound?: boolean; keyRefused?: boolean } = {},
  ) {
    super(options.notFound ? 'not-found' : 'storage', `${operation}${key ? ` ${key}` : ''}: ${message}`, {
      retryable: options.retryable ?? !(options.notFound || options.keyRefused),
      ...options,
    });
    this.operation = operation;
    this.key = key;
    this.notFound = options.notFound ?? false;
    this.keyRefused = options.keyRefused ?? false;
  }
}

/** Invalid configuration; the message names the variable, never its secret value. */
export class ConfigError extends AvatarGenError {
  readonly issues: string[];
  constructor(issues: string[]) {
    super('config', `Invalid configuration:\n  - ${issues.join('\n  - ')}`);
    this.issues = issues;
  }
}

/** Input that failed validation; `fields` maps a field name to a message a person can read. */
export class ValidationError extends AvatarGenError {
  readonly fields: Record<string, string>;
  constructor(fields: Record<string, string>, message?: string) {
    super(
      'validation',
      message ??
        Object.entries(fields)
          .map(([f, m]) => `${f}: ${m}`)
          .join('; '),
    );
    this.fields = fields;
  }
}

/** A record that does not exist (or that the caller may not see). */
export class NotFoundError extends AvatarGenError {
  constructor(message: string) {
    super('not-found', message);
  }
}

/** An operation that the current state does not allow (e.g. a task status transition). */
export class ConflictError extends AvatarGenError {
  constructor(message: string) {
    super('conflict', message);
  }
}

export function isRetryable(error: unknown): boolean {
  return error instanceof AvatarGenError ? error.retryable : false;
}

/** Throws CancelledError when the signal is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CancelledError();
}

/** Turns anything thrown into a short, secret-free message for logs and task error logs. */
export function describeError(error: unknown): string {
  if (error instanceof AvatarGenError) return error.message;
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/** SQLSTATEs of a server that is going away or not there yet: class 08 (connection) and 57P01-57P03. */
const UNAVAILABLE_SQLSTATE = /^(08...|57P0[123])$/;
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTFOUND',
]);
const UNAVAILABLE_MESSAGES =
  /Connection terminated|connection error and is not queryable|Timeout acquiring a connection|database system is (shutting down|starting up|in recovery mode)|the database is unavailable/i;

/**
 * True when the error says PostgreSQL cannot be reached right now (refused, restarting, shutting
 * down, connection lost) rather than that a query was wrong. Looks through wrapped causes, since
 * MikroORM, knex and pg-boss each wrap the driver's error; never through one of our own errors (a
 * ProviderError or StorageError is about that service). A web host answers 503 for these.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 6; depth++) {
    if (typeof current !== 'object') return false;
    // Our own errors say what failed: a provider or a storage that cannot be reached keeps the
    // socket error as its cause, and that is not the database being away.
    if (current instanceof AvatarGenError) return false;
    const e = current as { code?: unknown; message?: unknown; cause?: unknown; previous?: unknown; errors?: unknown };
    if (typeof e.code === 'string' && (UNAVAILABLE_CODES.has(e.code) || UNAVAILABLE_SQLSTATE.test(e.code))) return true;
    if (typeof e.message === 'string' && UNAVAILABLE_MESSAGES.test(e.message)) return true;
    // AggregateError (a connect to every address of "localhost" failed).
    if (Array.isArray(e.errors) && e.errors.some((inner) => isDatabaseUnavailable(inner))) return true;
    current = e.cause ?? e.previous;
  }
  return false;
}
