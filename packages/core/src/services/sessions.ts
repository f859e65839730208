import type { Orm } from '../db/orm.js';
import { Session } from '../db/entities.js';

/**
 * Server-side sessions in PostgreSQL, shaped for koa-session's external store, so any number of
 * web processes serve one site.
 */
export class SessionStore {
  constructor(private readonly orm: Orm) {}

  async get(id: string): Promise<Record<string, unknown> | undefined> {
    const row = await this.orm.em.fork().findOne(Session, { id, expiresAt: { $gt: new Date() } });
    return row?.data;
  }

  async set(id: string, data: Record<string, unknown>, maxAgeMs: number): Promise<void> {
    const userId = typeof data.userId === 'number' ? data.userId : null;
    const expiresAt = new Date(Date.now() + (Number.isFinite(maxAgeMs) ? maxAgeMs : 86_400_000));
    await this.orm.em.fork().upsert(Session, { id, data, userId, expiresAt, updatedAt: new Date() });
  }

  async destroy(id: string): Promise<void> {
    await this.orm.em.fork().nativeDelete(Session, { id });
  }

  async deleteExpired(): Promise<number> {
    return this.orm.em.fork().nativeDelete(Session, { expiresAt: { $lte: new Date() } });
  }
}
