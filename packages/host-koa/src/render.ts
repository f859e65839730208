import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';
import { assetUrl } from './routes/static.js';
import { ANONYMOUS_SESSION_MS, newCsrfToken } from './security.js';
import { type HostContext, sessionOf } from './state.js';

/** Templates and static files sit next to src/ and dist/, so both resolve them the same way. */
export const VIEWS_DIR = fileURLToPath(new URL('../views', import.meta.url));
export const PUBLIC_DIR = fileURLToPath(new URL('../public', import.meta.url));

export function createViews(options: { cache?: boolean } = {}): Eta {
  return new Eta({ views: VIEWS_DIR, cache: options.cache ?? true, autoEscape: true, autoTrim: false });
}

/**
 * The session's CSRF token, created on first use (only pages that hold a form need one). A
 * visitor who has not logged in gets a session of an hour, not of a week: every view of the
 * login page by someone new stores a session, and a flood of them should be swept within the
 * hour. Logging in starts a new session with the full lifetime.
 */
export function csrfToken(ctx: HostContext): string {
  const session = sessionOf(ctx);
  if (!session) return '';
  if (!session.csrf) {
    session.csrf = newCsrfToken();
    if (typeof session.userId !== 'number') (ctx.session as unknown as { maxAge: number }).maxAge = ANONYMOUS_SESSION_MS;
  }
  return session.csrf;
}

const dateFormat = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' });

export const helpers = {
  /** /static/<name>?v=<content hash> */
  asset(name: string): string {
    return assetUrl(name);
  },
  date(value: Date | string | null | undefined): string {
    if (!value) return '—';
    return `${dateFormat.format(new Date(value))} UTC`;
  },
  iso(value: Date | string | null | undefined): string {
    return value ? new Date(value).toISOString() : '';
  },
  number(value: number | null | undefined): string {
    return value === null || value === undefined ? '—' : value.toLocaleString('en-US');
  },
  statusClass(status: string): string {
    return `status status-${status.replace(/[^a-z-]/g, '')}`;
  },
  /** JSON for a <script type="application/json"> data block: `<` escaped so it cannot close the tag. */
  json(value: unknown): string {
    return JSON.stringify(value).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
  },
};

/** Renders a page with the layout's data: the user, the CSRF token, the current path. */
export function render(ctx: HostContext, eta: Eta, view: string, data: Record<string, unknown> = {}, status = 200): void {
  ctx.status = status;
  ctx.type = 'text/html; charset=utf-8';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = eta.render(view, {
    user: ctx.state.user,
    csrf: csrfToken(ctx),
    path: ctx.path,
    reqId: ctx.state.reqId,
    h: helpers,
    ...data,
  });
}
