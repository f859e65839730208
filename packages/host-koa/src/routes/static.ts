import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { Context, Next } from 'koa';
import { PUBLIC_DIR } from '../render.js';

const TYPES: Record<string, string> = {
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/**
 * Serves the files of public/ at /static/<name>. They are read once at start (a few kilobytes),
 * so no request ever maps to a path on disk.
 */
export function staticFiles(dir = PUBLIC_DIR) {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (!type) continue;
    const body = readFileSync(join(dir, name));
    assets.set(`/static/${name}`, { body, type, etag: `"${createHash('sha1').update(body).digest('base64url').slice(0, 16)}"` });
  }
  return async (ctx: Context, next: Next) => {
    if (!ctx.path.startsWith('/static/') || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
    const asset = assets.get(ctx.path);
    if (!asset) return next();
    ctx.set('ETag', asset.etag);
    ctx.set('Cache-Control', 'public, max-age=3600');
    if (ctx.get('if-none-match') === asset.etag) {
      ctx.status = 304;
      return;
    }
    ctx.type = asset.type;
    ctx.body = asset.body;
  };
}
