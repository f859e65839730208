import { extname } from 'node:path';
import { type AvatarGen, isTaskObjectKey, isThumbnailKey } from '@avatargen/core';
import { Router } from '@koa/router';
import { HttpError } from '../errors.js';
import { type HostContext, scopeOf } from '../state.js';
import type { ThumbnailCache } from '../thumbs.js';

const IMAGE_TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
  '.avif': 'image/avif',
};

/** Object keys are unique per write (ULIDs), so a URL's bytes never change. */
const IMMUTABLE = 'private, max-age=31536000, immutable';

function keyFromPath(ctx: HostContext, prefix: string): string {
  let key: string;
  try {
    key = decodeURIComponent(ctx.path.slice(prefix.length));
  } catch {
    throw new HttpError(404, 'Not found.');
  }
  if (!isTaskObjectKey(key)) throw new HttpError(404, 'Not found.');
  return key;
}

async function authorize(gen: AvatarGen, ctx: HostContext, key: string): Promise<void> {
  if (!ctx.state.user) throw new HttpError(401, 'Log in to see this image.');
  // Another user's image is reported exactly like a missing one.
  if (!(await gen.personas.canSeeKey(key, scopeOf(ctx)))) throw new HttpError(404, 'Not found.');
}

/**
 * /media/<key>: images of the filesystem storage, with the same object-level check as every task
 * route; /thumbs/<key>: gallery thumbnails for any storage.
 */
export function mediaRouter(gen: AvatarGen, thumbs: ThumbnailCache, serveMedia: boolean): Router {
  const router = new Router();
  if (serveMedia) {
    router.get(/^\/media\/.+/, async (ctx) => {
      const c = ctx as unknown as HostContext;
      const key = keyFromPath(c, '/media/');
      await authorize(gen, c, key);
      const type = IMAGE_TYPES[extname(key).toLowerCase()];
      if (!type) throw new HttpError(404, 'Not found.');
      const stream = await gen.port('objectStorage').get(key);
      ctx.type = type;
      ctx.set('Cache-Control', IMMUTABLE);
      ctx.body = stream;
    });
  }
  router.get(/^\/thumbs\/.+/, async (ctx) => {
    const c = ctx as unknown as HostContext;
    const key = keyFromPath(c, '/thumbs/');
    await authorize(gen, c, key);
    if (!IMAGE_TYPES[extname(key).toLowerCase()] || isThumbnailKey(key)) throw new HttpError(404, 'Not found.');
    const body = await thumbs.get(key);
    ctx.type = 'image/webp';
    ctx.set('Cache-Control', IMMUTABLE);
    ctx.body = body;
  });
  return router;
}
