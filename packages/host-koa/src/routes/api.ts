import { type AvatarGen, listLanguages, type PersonaView, TASK_STATUSES, type TaskStatus, ValidationError } from '@avatargen/core';
import { Router } from '@koa/router';
import type { Next } from 'koa';
import type { DatasetCache, DatasetDetail } from '../dataset-cache.js';
import { HttpError } from '../errors.js';
import { openApiDocument } from '../openapi.js';
import type { SseHub } from '../sse.js';
import { bodyOf, type HostContext, scopeOf } from '../state.js';
import { thumbnailUrl } from '../urls.js';
import { sendExport } from './exports.js';

/** A whole number query parameter within bounds, or a 400 naming the parameter. */
export function intParam(value: unknown, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined || value === '') return fallback;
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new ValidationError({ [name]: `Must be a whole number from ${min} to ${max}.` });
  return n;
}

/** Largest value of a PostgreSQL integer: ids and picture indexes past it cannot exist (and would be a SQL error). */
const INT4_MAX = 2_147_483_647;

/**
 * A whole number path parameter (a persona id, a picture index), or a 400 naming it: a malformed
 * id is the client's mistake, told apart from a well-formed one that names nothing (404, from core).
 */
export function pathInt(value: string | undefined, name: string, what: string): number {
  const n = value !== undefined && /^\d{1,10}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n > INT4_MAX) {
    throw new HttpError(400, `${what} must be a whole number from 0 to ${INT4_MAX}.`, {}, { [name]: 'Must be a whole number.' });
  }
  return n;
}

/** A persona as the API returns it: every field, image URLs and thumbnail URLs, no storage keys. */
export function apiPersona(p: PersonaView) {
  const { baseImage, images, ...rest } = p;
  return {
    ...rest,
    baseImage: baseImage ? { url: baseImage.url, thumbnailUrl: thumbnailUrl(baseImage.key) } : null,
    images: images.map((i) => ({
      index: i.index,
      url: i.url,
      thumbnailUrl: thumbnailUrl(i.key),
      width: i.width,
      height: i.height,
      contentType: i.contentType,
    })),
  };
}

async function requireUser(ctx: HostContext, next: Next) {
  if (!ctx.state.user) throw new HttpError(401, 'Log in or send an API token (Authorization: Bearer).', { 'WWW-Authenticate': 'Bearer' });
  return next();
}

function requireAdmin(ctx: HostContext) {
  if (!ctx.state.user?.isAdmin) throw new HttpError(403, 'Only administrators can change settings.');
}

/** The JSON API under /api/v1; mirrors the website. */
export function apiRouter(gen: AvatarGen, sse: SseHub, datasets: DatasetCache): Router {
  const router = new Router({ prefix: '/api/v1' });
  const openapi = JSON.stringify(openApiDocument());
  const c = (ctx: unknown) => ctx as HostContext;

  router.get('/openapi.json', (ctx) => {
    ctx.type = 'application/json; charset=utf-8';
    ctx.body = openapi;
  });
  router.get('/languages', (ctx) => {
    ctx.body = listLanguages();
  });
  router.use((ctx, next) => requireUser(c(ctx), next));
  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  router.get('/stats', async (ctx) => {
    ctx.body = await gen.tasks.stats(scopeOf(c(ctx)));
  });
  router.get('/tasks', async (ctx) => {
    const status = ctx.query.status;
    if (status !== undefined && !(TASK_STATUSES as readonly unknown[]).includes(status)) {
      throw new ValidationError({ status: `Must be one of ${TASK_STATUSES.join(', ')}.` });
    }
    ctx.body = await gen.tasks.list({
      ...scopeOf(c(ctx)),
      limit: intParam(ctx.query.limit, 'limit', 50, 1, 500),
      offset: intParam(ctx.query.offset, 'offset', 0, 0, 1_000_000_000),
      status: status as TaskStatus | undefined,
    });
  });
  router.post('/tasks', async (ctx) => {
    const { _csrf, ...input } = bodyOf(ctx);
    const task = await gen.tasks.submit(input, scopeOf(c(ctx)));
    ctx.status = 201;
    ctx.set('Location', `/api/v1/tasks/${task.id}`);
    ctx.body = task;
  });
  router.get('/tasks/:id', async (ctx) => {
    ctx.body = await gen.tasks.get(ctx.params.id as string, scopeOf(c(ctx)));
  });
  router.post('/tasks/:id/cancel', async (ctx) => {
    ctx.body = await gen.tasks.cancel(ctx.params.id as string, scopeOf(c(ctx)));
  });
  router.post('/tasks/:id/retry', async (ctx) => {
    ctx.body = await gen.tasks.retry(ctx.params.id as string, scopeOf(c(ctx)));
  });
  // Replacing one persona or one picture of an ended task: the task goes back to pending (409 while it runs).
  router.post('/tasks/:id/personas/:personaId/regenerate', async (ctx) => {
    const personaId = pathInt(ctx.params.personaId, 'personaId', 'The persona id');
    ctx.body = await gen.tasks.regeneratePersona(ctx.params.id as string, personaId, scopeOf(c(ctx)));
  });
  router.post('/tasks/:id/personas/:personaId/images/:index/regenerate', async (ctx) => {
    const personaId = pathInt(ctx.params.personaId, 'personaId', 'The persona id');
    const index = pathInt(ctx.params.index, 'index', 'The picture index (0-based)');
    ctx.body = await gen.tasks.regeneratePicture(ctx.params.id as string, personaId, index, scopeOf(c(ctx)));
  });
  router.delete('/tasks/:id', async (ctx) => {
    await gen.tasks.delete(ctx.params.id as string, scopeOf(c(ctx)));
    ctx.status = 204;
  });
  router.get('/tasks/:id/personas', async (ctx) => {
    const page = await gen.personas.list(ctx.params.id as string, {
      ...scopeOf(c(ctx)),
      page: intParam(ctx.query.page, 'page', 1, 1, 1_000_000),
      perPage: intParam(ctx.query.perPage, 'perPage', 20, 1, 100),
    });
    ctx.body = { ...page, personas: page.personas.map(apiPersona) };
  });
  router.get('/tasks/:id/quality', async (ctx) => {
    const threshold = Number(ctx.query.textThreshold ?? 0.7);
    const distance = Number(ctx.query.pictureMaxDistance ?? 10);
    if (!(threshold > 0 && threshold <= 1)) throw new ValidationError({ textThreshold: 'A number above 0, at most 1.' });
    if (!(Number.isInteger(distance) && distance >= 0 && distance <= 64))
      throw new ValidationError({ pictureMaxDistance: 'A whole number from 0 to 64.' });
    ctx.body = await gen.quality.report(ctx.params.id as string, scopeOf(c(ctx)), {
      textThreshold: threshold,
      pictureMaxDistance: distance,
    });
  });
  router.get('/tasks/:id/demographics', async (ctx) => {
    ctx.body = await gen.personas.demographics(ctx.params.id as string, scopeOf(c(ctx)));
  });
  router.get('/datasets/:id', async (ctx) => {
    const pageNo = intParam(ctx.query.page, 'page', 1, 1, 1_000_000);
    const gzip = ctx.acceptsEncodings('gzip', 'identity') === 'gzip';
    const body = await datasets.json(
      ctx.params.id as string,
      pageNo,
      scopeOf(c(ctx)),
      (d: DatasetDetail) => ({
        task: d.task,
        demographics: d.demographics,
        personas: { ...d.personas, personas: d.personas.personas.map(apiPersona) },
      }),
      gzip,
    );
    ctx.vary('Accept-Encoding');
    if (gzip) ctx.set('Content-Encoding', 'gzip');
    ctx.type = 'application/json; charset=utf-8'; // set before the body: a Buffer body would make it octet-stream
    ctx.body = body;
  });
  router.get('/tasks/:id/events', async (ctx) => {
    await sse.open(c(ctx), ctx.params.id as string, scopeOf(c(ctx)));
  });
  router.post('/tasks/:id/exports/:format', async (ctx) => {
    await sendExport(gen, ctx, ctx.params.id as string, ctx.params.format as string, scopeOf(c(ctx)));
  });
  router.get('/settings', async (ctx) => {
    ctx.body = await gen.settings.get();
  });
  router.patch('/settings', async (ctx) => {
    requireAdmin(c(ctx));
    const { _csrf, ...changes } = bodyOf(ctx);
    ctx.body = await gen.settings.update(changes);
  });
  return router;
}
