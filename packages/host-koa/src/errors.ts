import { AvatarGenError, ConflictError, isDatabaseUnavailable, NotFoundError, StorageError, ValidationError } from '@avatargen/core';
import type { Eta } from 'eta';
import type { Next } from 'koa';
import { helpers, render } from './render.js';
import type { HostContext } from './state.js';

/** Seconds a client is asked to wait (Retry-After) while the database cannot be reached. */
export const UNAVAILABLE_RETRY_AFTER_S = 5;
const UNAVAILABLE_MESSAGE = 'The service is temporarily unavailable. Try again in a few seconds.';

/** An error the host raises on purpose, with a status and a message safe to show. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
    /** A message per refused field, shown like a ValidationError's. */
    readonly fields?: Record<string, string>,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export function statusFor(error: unknown): number {
  if (error instanceof HttpError) return error.status;
  if (error instanceof ValidationError) return 422;
  if (error instanceof NotFoundError) return 404;
  if (error instanceof ConflictError) return 409;
  if (error instanceof StorageError && (error.notFound || error.keyRefused)) return 404;
  // PostgreSQL down or restarting (looked for through wrapped causes): over in a moment.
  if (isDatabaseUnavailable(error)) return 503;
  const status = (error as { status?: unknown; expose?: unknown })?.status;
  // koa / co-body errors (bad JSON, body too large...) carry their own status
  if (typeof status === 'number' && status >= 400 && status < 500 && !(error instanceof AvatarGenError)) return status;
  return 500;
}

function publicMessage(error: unknown, status: number): string {
  if (status === 503) return UNAVAILABLE_MESSAGE;
  if (status >= 500) return 'Something went wrong on our side.';
  // its message names storage keys and operations: nothing a visitor needs
  if (error instanceof StorageError) return 'Not found.';
  if (error instanceof AvatarGenError || error instanceof HttpError) return error.message;
  if ((error as { expose?: boolean }).expose && error instanceof Error) return error.message;
  return status === 404 ? 'Not found.' : 'The request could not be processed.';
}

export function wantsJson(ctx: HostContext): boolean {
  return ctx.path.startsWith('/api/') || (!ctx.accepts('html') && ctx.accepts('json') === 'json');
}

/** The first error code in a chain of wrapped errors (ECONNREFUSED, 57P01...): all a log line needs. */
export function errorCode(error: unknown): string | undefined {
  for (let e = error as { code?: unknown; cause?: unknown; previous?: unknown } | undefined, depth = 0; e && depth < 6; depth++) {
    if (typeof e.code === 'string') return e.code;
    e = (e.cause ?? e.previous) as typeof e;
  }
  return undefined;
}

/**
 * The outermost handler: maps typed errors to statuses, logs server errors with the request id,
 * and answers with a short message; never a stack trace. While the database is unreachable every
 * request that needs it answers 503 with Retry-After; its log line holds the error code only (a
 * driver's message may name the server, and a wrapped one the connection string).
 */
export function errorHandler(eta: Eta, redact: (text: string) => string = (text) => text) {
  return async (ctx: HostContext, next: Next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw new HttpError(404, 'Not found.');
    } catch (error) {
      const status = statusFor(error);
      if (status === 503 && !(error instanceof HttpError)) ctx.state.log.warn({ status, code: errorCode(error) }, 'database unavailable');
      else if (status >= 500) ctx.state.log.error({ err: error }, 'request failed');
      else ctx.state.log.info({ status, reason: (error as Error)?.message }, 'request refused');
      if (ctx.headerSent || !ctx.writable) return;
      // A plugin's error message may quote what it was given: no configured secret reaches a page.
      const message = redact(publicMessage(error, status));
      // Headers set before the failure (e.g. Content-Disposition) must not leak onto the error page.
      for (const name of ['content-disposition', 'content-length', 'cache-control']) ctx.remove(name);
      if (error instanceof HttpError) for (const [k, v] of Object.entries(error.headers)) ctx.set(k, v);
      if (status === 503) ctx.set('Retry-After', String(UNAVAILABLE_RETRY_AFTER_S));
      const fields = error instanceof ValidationError || error instanceof HttpError ? error.fields : undefined;
      if (wantsJson(ctx)) {
        ctx.status = status;
        ctx.body = { error: message, ...(fields ? { fields } : {}), requestId: ctx.state.reqId };
      } else if (status === 503) {
        // No session, user or CSRF token: the session itself may be what could not be read.
        ctx.status = 503;
        ctx.type = 'text/html; charset=utf-8';
        ctx.set('Cache-Control', 'no-store');
        ctx.body = eta.render('unavailable', {
          user: null,
          csrf: '',
          path: ctx.path,
          reqId: ctx.state.reqId,
          h: helpers,
          message,
          retryAfter: UNAVAILABLE_RETRY_AFTER_S,
        });
      } else {
        render(ctx, eta, 'error', { status, message }, status);
      }
    }
  };
}
