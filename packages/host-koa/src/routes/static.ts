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
  /** Content hash: pages link to /static/<name>?v=<version>, which may be cached for good. */
  version: string;
}

const IMMUTABLE = 'public, max-age=31536000, immutable';
const REVALIDATE = 'public, max-age=3600';

function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (!type) continue;
    const body = readFileSync(join(dir, name));
    const hash = createHash('sha256').update(body).digest('base64url');
    assets.set(`/static/${name}`, { body, type, etag: `"${hash.slice(0, 16)}"`, version: hash.slice(0, 10) });
  }
  return assets;
}

let publicAssets: Map<string, Asset> | undefined;
/** public/ is read once per process, for the links and for serving alike. */
function assetsOf(dir: string): Map<string, Asset> {
  if (dir !== PUBLIC_DIR) return loadAssets(dir);
  publicAssets ??= loadAssets(dir);
  return publicAssets;
}

/** The URL pages use for a file of public/: versioned by its content, so a new release is fetched at once. */
export function assetUrl(name: string): string {
  const asset = assetsOf(PUBLIC_DIR).get(`/static/${name}`);
  if (!asset) throw new Error(`no static asset ${name}`);
  return `/static/${name}?v=${asset.version}`;
}

/**
 * Serves the files of public/ at /static/<name>. They are read once at start (a few kilobytes),
 * so no request ever maps to a path on disk. A request with the current ?v= may be cached for a
 * year; any other is revalidated after an hour.
 */
export function staticFiles(dir = PUBLIC_DIR) {
  const assets = assetsOf(dir);
  return async (ctx: Context, next: Next) => {
    if (!ctx.path.startsWith('/static/') || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return next();
    const asset = assets.get(ctx.path);
    if (!asset) return next();
    ctx.set('ETag', asset.etag);
    ctx.set('Cache-Control', ctx.query.v === asset.version ? IMMUTABLE : REVALIDATE);
    if (ctx.get('if-none-match') === asset.etag) {
      ctx.status = 304;
      return;
    }
    ctx.type = asset.type;
    ctx.body = asset.body;
  };
}
