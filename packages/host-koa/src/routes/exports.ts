import { type Readable, Transform } from 'node:stream';
import type { AvatarGen, Scope } from '@avatargen/core';
import type { Context } from 'koa';
import { HttpError } from '../errors.js';

export const EXPORT_FORMATS = ['json', 'csv', 'zip'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/**
 * Sends a dataset export. Access is checked before any header is written; CSV and ZIP stream,
 * so memory stays flat whatever the size of the dataset.
 */
/** Writes to the socket in pieces of about this size: the ZIP writer emits many small chunks. */
export const EXPORT_CHUNK_BYTES = 256 * 1024;

/**
 * Gathers the export's small chunks into larger writes (fewer system calls), and holds up to a
 * few of them so the ZIP writer keeps working while the client reads. Memory stays bounded.
 */
function batched(source: Readable): Readable {
  let pending: Buffer[] = [];
  let size = 0;
  let timer: NodeJS.Immediate | undefined;
  const out = new Transform({
    highWaterMark: EXPORT_CHUNK_BYTES * 4,
    transform(chunk: Buffer, _encoding, done) {
      pending.push(chunk);
      size += chunk.length;
      if (size >= EXPORT_CHUNK_BYTES) flush();
      else timer ??= setImmediate(flush);
      done();
    },
    final(done) {
      flush();
      done();
    },
  });
  function flush() {
    if (timer) clearImmediate(timer);
    timer = undefined;
    if (size === 0) return;
    const data = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, size);
    pending = [];
    size = 0;
    out.push(data);
  }
  source.on('error', (error) => out.destroy(error));
  out.on('close', () => {
    if (timer) clearImmediate(timer);
    if (!source.readableEnded) source.destroy();
  });
  return source.pipe(out);
}

export async function sendExport(gen: AvatarGen, ctx: Context, taskId: string, format: string, scope: Scope): Promise<void> {
  if (!(EXPORT_FORMATS as readonly string[]).includes(format)) throw new HttpError(404, 'Unknown export format; use json, csv or zip.');
  const name = `avatargen-${taskId.replace(/[^\w-]/g, '')}`;
  if (format === 'json') {
    const body = await gen.exports.json(taskId, scope);
    ctx.type = 'application/json; charset=utf-8';
    ctx.attachment(`${name}.json`);
    ctx.body = JSON.stringify(body, null, 2);
  } else if (format === 'csv') {
    const stream = await gen.exports.csv(taskId, scope);
    ctx.type = 'text/csv; charset=utf-8';
    ctx.attachment(`${name}.csv`);
    ctx.body = batched(stream);
  } else {
    const zip = await gen.exports.zip(taskId, scope);
    ctx.type = 'application/zip';
    ctx.attachment(`${name}.zip`);
    // Koa pipes the body straight into the response: a ZIP built in a worker comes in 1 MiB
    // pieces whose memory is used again once the response has written them.
    ctx.body = zip.reuseAfter(ctx.res) ? zip : batched(zip);
  }
  ctx.set('Cache-Control', 'no-store');
}
