import { randomUUID } from 'node:crypto';
import type { AvatarGen } from '@avatargen/core';
import { bodyParser } from '@koa/bodyparser';
import type { Router } from '@koa/router';
import Koa, { type Next } from 'koa';
import session from 'koa-session';
import { AuthCache, rememberedKeys } from './auth-cache.js';
import { DatasetCache } from './dataset-cache.js';
import { errorHandler, HttpError, UNAVAILABLE_RETRY_AFTER_S } from './errors.js';
import { HealthCheck } from './health.js';
import { refuseBadCharacters } from './input.js';
import { createViews } from './render.js';
import { apiRouter } from './routes/api.js';
import { mediaRouter } from './routes/media.js';
import { pagesRouter } from './routes/pages.js';
import { staticFiles } from './routes/static.js';
import { CSRF_FIELD, CSRF_HEADER, csrfMatches, DEFAULT_THROTTLE, LoginThrottle, securityHeaders, type ThrottleLimits } from './security.js';
import { SseHub } from './sse.js';
import { bodyOf, type HostContext, type HostState, sessionOf } from './state.js';
import { ThumbnailCache } from './thumbs.js';

export interface HostOptions {
  /** Signs the session cookie (at least 32 characters). */
  secretKey: string;
  /** Trust X-Forwarded-Proto/For (behind nginx). Default: config.TRUST_PROXY. */
  trustProxy?: boolean;
  /** Serve /media/* from the object storage (filesystem storage). Default true. */
  serveMedia?: boolean;
  /** Extra origins images may load from (an S3 public base URL). */
  imageOrigins?: string[];
  throttle?: Partial<ThrottleLimits>;
  /** Session lifetime. Default 7 days. */
  sessionMaxAgeMs?: number;
  /** Width of gallery thumbnails. Default 240. */
  thumbnailWidth?: number;
  /**
   * How long this process may reuse a session, an account or an API token it read (a logout, a
   * revoked token or a disabled account in another process takes effect here within this time).
   * Default 1000 ms; 0 disables.
   */
  authCacheMs?: number;
  /** Seconds between SSE keep-alive comments. Default 15. */
  sseHeartbeatSeconds?: number;
  /** How long one /healthz check (a database query, a storage write) answers every request. Default 5000 ms. */
  healthCacheMs?: number;
}

export interface HostApp {
  app: Koa<HostState>;
  /** Finished datasets' detail, kept in memory and dropped on every change of the task. */
  datasets: DatasetCache;
  /** Open server-sent event streams; closed on shutdown so the server can stop. */
  sse: SseHub;
  throttle: LoginThrottle;
  /** What /healthz reports, checked at most once per `healthCacheMs`. */
  health: HealthCheck;
  /** The routers, in the order they are mounted: every route of the site is in their `stack`. */
  routers: Router[];
  /** Deletes ended sessions and login counters; `listen` runs it now and then. Returns how many. */
  sweepExpired(): Promise<{ sessions: number; loginAttempts: number }>;
}

export const SESSION_COOKIE = 'avatargen.sid';

/** Builds the Koa app of the website and its JSON API on top of an AvatarGen instance. */
export function createApp(gen: AvatarGen, options: HostOptions): HostApp {
  if (!options.secretKey || options.secretKey.length < 32) throw new Error('createApp: secretKey must be at least 32 characters');
  const app = new Koa<HostState>({ proxy: options.trustProxy ?? gen.config.TRUST_PROXY });
  // Koa's cookie keys, with each signature's verdict remembered: koa-session checks the same
  // session cookie on every request (a third of a cached page's CPU, bench:http).
  app.keys = rememberedKeys([options.secretKey]);
  app.silent = true;
  // Behind our nginx, which overwrites X-Forwarded-For, only the last address is the client's.
  if (app.proxy) app.maxIpsCount = 1;
  app.on('error', (error: unknown) => {
    // A browser that closes a page mid-stream (a progress feed, a download) is not a fault.
    const code = (error as { code?: unknown })?.code;
    if (code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNRESET' || code === 'EPIPE') {
      gen.logger.debug({ code }, 'client went away during the response');
      return;
    }
    gen.logger.warn({ err: error }, 'response error');
  });
  const eta = createViews();
  const throttle = new LoginThrottle(gen.loginAttempts, { ...DEFAULT_THROTTLE, ...options.throttle });
  const sessionMaxAgeMs = options.sessionMaxAgeMs ?? 7 * 86_400_000;
  const sse = new SseHub(gen, options.sseHeartbeatSeconds ?? 15);
  const thumbs = new ThumbnailCache(gen, options.thumbnailWidth ?? 240);
  const datasets = new DatasetCache(gen);
  const auth = new AuthCache(gen, options.authCacheMs ?? 1000);
  const health = new HealthCheck(gen, options.healthCacheMs ?? 5000);

  // Request id and an access log line; the id is in every log line of the request and in error pages.
  app.use(async (ctx, next: Next) => {
    const incoming = ctx.get('x-request-id');
    const reqId = /^[\w.-]{8,64}$/.test(incoming) && app.proxy ? incoming : randomUUID();
    ctx.state.reqId = reqId;
    ctx.state.log = gen.logger.child({ reqId });
    ctx.state.user = null;
    ctx.state.auth = null;
    ctx.set('X-Request-Id', reqId);
    const started = performance.now();
    try {
      await next();
    } finally {
      ctx.state.log.info(
        {
          method: ctx.method,
          path: ctx.path,
          status: ctx.status,
          ms: Math.round(performance.now() - started),
          ip: ctx.ip,
          userId: (ctx.state as HostState).user?.id ?? undefined,
        },
        'request',
      );
    }
  });
  app.use(errorHandler(eta, gen.redact) as Koa.Middleware<HostState>);
  app.use(securityHeaders(options.imageOrigins ?? []));
  // Static assets and the health check need no session.
  app.use(staticFiles());
  app.use(async (ctx, next) => {
    if (ctx.path !== '/healthz') return next();
    const report = await health.report();
    ctx.status = report.status === 'ok' ? 200 : 503;
    if (report.status !== 'ok') ctx.set('Retry-After', String(UNAVAILABLE_RETRY_AFTER_S));
    ctx.set('Cache-Control', 'no-store');
    ctx.body = report;
  });

  app.use(
    session(
      {
        key: SESSION_COOKIE,
        maxAge: sessionMaxAgeMs,
        httpOnly: true,
        signed: true,
        sameSite: 'lax',
        // secure left unset: the cookie is Secure exactly when the request came over TLS
        // (X-Forwarded-Proto counts only when the proxy is trusted).
        rolling: false,
        renew: true,
        store: auth.store,
      },
      app as unknown as Parameters<typeof session>[1],
    ) as unknown as Koa.Middleware<HostState>,
  );
  app.use(
    bodyParser({
      enableTypes: ['json', 'form'],
      jsonLimit: '1mb',
      formLimit: '1mb',
      onError: (error: Error & { status?: number }) => {
        if (error.status === 413) throw new HttpError(413, 'The request body is larger than 1 MB.');
        throw new HttpError(400, 'The request body could not be read (malformed JSON or form data).');
      },
    }) as unknown as Koa.Middleware<HostState>,
  );
  // Control characters in the path, the query or the body: refused here, before any route or SQL.
  app.use(refuseBadCharacters());

  // Who is asking: an API token (Authorization: Bearer) or the session's user. A token counts
  // only for the JSON API and the image URLs its answers carry, never for the website's pages:
  // a leaked token must not be able to mint new tokens or change settings there.
  const isApi = (path: string) => path === '/api/v1' || path.startsWith('/api/v1/');
  const tokenAccepted = (ctx: Koa.Context) =>
    isApi(ctx.path) ||
    ((ctx.method === 'GET' || ctx.method === 'HEAD') && (ctx.path.startsWith('/media/') || ctx.path.startsWith('/thumbs/')));
  app.use(async (ctx, next) => {
    const c = ctx as HostContext;
    const bearer = tokenAccepted(ctx) ? /^Bearer\s+(\S+)$/i.exec(ctx.get('authorization')) : null;
    if (bearer) {
      const user = await auth.tokenUser(bearer[1] as string);
      if (!user)
        throw new HttpError(401, 'The API token is unknown, revoked or its account is disabled.', { 'WWW-Authenticate': 'Bearer' });
      c.state.user = user;
      c.state.auth = 'token';
    } else if (ctx.cookies.get(SESSION_COOKIE)) {
      const data = sessionOf(ctx);
      if (data && typeof data.userId === 'number') {
        const user = await auth.user(data.userId);
        if (user?.active) {
          c.state.user = user;
          c.state.auth = 'session';
        } else {
          delete data.userId;
        }
      }
    }
    return next();
  });

  // CSRF: every state-changing request made with the session cookie carries the session's token.
  app.use(async (ctx, next) => {
    const c = ctx as HostContext;
    if (['GET', 'HEAD', 'OPTIONS'].includes(ctx.method) || c.state.auth === 'token') return next();
    // the API answers "who are you?" before "where is your token?" (docs/api.md: 401 everywhere)
    if (!c.state.user && isApi(ctx.path)) {
      throw new HttpError(401, 'Log in or send an API token (Authorization: Bearer).', { 'WWW-Authenticate': 'Bearer' });
    }
    const sent = bodyOf(ctx)[CSRF_FIELD] ?? ctx.get(CSRF_HEADER);
    const expected = ctx.cookies.get(SESSION_COOKIE) ? sessionOf(ctx)?.csrf : undefined;
    if (!csrfMatches(expected, sent)) {
      throw new HttpError(403, 'This form has expired or did not come from this site. Reload the page and try again.');
    }
    return next();
  });

  const api = apiRouter(gen, sse, datasets);
  const media = mediaRouter(gen, thumbs, options.serveMedia ?? true);
  const pages = pagesRouter(gen, eta, throttle, sse, datasets, auth, sessionMaxAgeMs);
  for (const router of [api, media, pages]) {
    app.use(router.routes() as unknown as Koa.Middleware<HostState>);
    app.use(router.allowedMethods() as unknown as Koa.Middleware<HostState>);
  }
  const sweepExpired = async () => {
    try {
      return { sessions: await gen.sessions.deleteExpired(), loginAttempts: await gen.loginAttempts.deleteExpired(Date.now()) };
    } catch (error) {
      gen.logger.warn({ err: error }, 'sweeping ended sessions and login counters failed');
      throw error;
    }
  };
  return { app, sse, throttle, datasets, health, routers: [api, media, pages], sweepExpired };
}
