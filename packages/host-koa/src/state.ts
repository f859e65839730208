import type { AvatarGen, Scope, UserView } from '@avatargen/core';
import type { Context } from 'koa';
import type { Logger } from 'pino';

/** What every request carries through the middleware. */
export interface HostState {
  reqId: string;
  log: Logger;
  user: UserView | null;
  /** How the user was recognised: a session cookie or an API token (tokens are exempt from CSRF). */
  auth: 'session' | 'token' | null;
}

export type HostContext = Context & { state: HostState };

/** The session fields the host uses. */
export interface SessionData {
  userId?: number;
  csrf?: string;
}

export function sessionOf(ctx: Context): (SessionData & Record<string, unknown>) | null {
  return (ctx.session as (SessionData & Record<string, unknown>) | null | undefined) ?? null;
}

export function scopeOf(ctx: HostContext): Scope {
  const user = ctx.state.user;
  if (!user) throw new Error('scopeOf called without a user');
  return { userId: user.id };
}

/** The request body as a plain record (form or JSON); anything else is an empty record. */
export function bodyOf(ctx: Context): Record<string, unknown> {
  const body = (ctx.request as { body?: unknown }).body;
  return body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
}
