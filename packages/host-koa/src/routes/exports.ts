import type { AvatarGen, Scope } from '@avatargen/core';
import type { Context } from 'koa';
import { HttpError } from '../errors.js';

export const EXPORT_FORMATS = ['json', 'csv', 'zip'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/**
 * Sends a dataset export. Access is checked before any header is written; CSV and ZIP stream,
 * so memory stays flat whatever the size of the dataset.
 */
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
    ctx.body = stream;
  } else {
    const zip = await gen.exports.zip(taskId, scope);
    ctx.type = 'application/zip';
    ctx.attachment(`${name}.zip`);
    ctx.body = zip;
  }
  ctx.set('Cache-Control', 'no-store');
}
