import { type AvatarGen, type Demographics, isFinal, NotFoundError, type PersonaPage, type Scope, type TaskView } from '@avatargen/core';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { LRUCache } from 'lru-cache';

const gzipped = promisify(gzipCallback) as (data: Buffer) => Promise<Buffer>;

export interface DatasetDetail {
  task: TaskView;
  demographics: Demographics;
  personas: PersonaPage;
}

interface Entry {
  ownerId: number | null;
  detail: DatasetDetail;
  /** The API's JSON of this detail, made on first use and kept as UTF-8 bytes: a string body would
   * be measured and encoded again on every response. */
  json?: Buffer;
  /** That JSON gzipped, for clients that accept it (browsers, fetch): made once, in the thread pool. */
  gzipped?: Promise<Buffer>;
}

interface Page {
  taskId: string;
  page: number;
}

/**
 * The dataset detail (task, demographics, a page of personas) of finished tasks, kept in memory:
 * a finished dataset is read far more often than it changes. Every change to a task, from any
 * process, arrives as a `task` event (PostgreSQL NOTIFY) and drops its entries; a short time to
 * live bounds staleness should the notification connection ever miss one, and when it reconnects
 * (a `resync` event) everything is dropped. Requests that miss together share one read, made for
 * whoever asks; access is checked on every answer: the owner is kept with the entry and another
 * user gets the same 404 as before.
 */
export class DatasetCache {
  private readonly entries: LRUCache<string, Entry, Page>;
  /** Changes heard per task since the last resync: a read its task changed during is not kept. */
  private readonly versions = new Map<string, number>();

  constructor(
    private readonly gen: AvatarGen,
    options: { maxEntries?: number; ttlMs?: number } = {},
  ) {
    this.entries = new LRUCache<string, Entry, Page>({
      max: options.maxEntries ?? 200,
      ttl: options.ttlMs ?? 30_000,
      // A read whose entry is dropped meanwhile still answers those waiting for it, and is not kept.
      ignoreFetchAbort: true,
      fetchMethod: async (key, _stale, { context: { taskId, page } }) => {
        const version = this.versions.get(taskId);
        const entry = await this.load(taskId, page);
        // Only finished tasks that did not change while being read are kept (dropping the entry of
        // a read in progress keeps its answer out of the cache).
        if (!isFinal(entry.detail.task.status) || this.versions.get(taskId) !== version) this.entries.delete(key);
        return entry;
      },
    });
    gen.pipeline.events.on('task', (taskId: string) => this.invalidate(taskId));
    // The notification connection was lost and is back: changes made meanwhile were not heard.
    gen.pipeline.events.on('resync', () => this.clear());
  }

  invalidate(taskId: string): void {
    this.versions.set(taskId, (this.versions.get(taskId) ?? 0) + 1);
    for (const key of this.entries.keys()) if (key.startsWith(`${taskId}:`)) this.entries.delete(key);
  }

  /** Drops every entry; reads in progress are not kept either. */
  clear(): void {
    this.entries.clear();
    this.versions.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  /** Read for everyone: one request's read may answer another user's request, so access is checked after. */
  private async load(taskId: string, page: number): Promise<Entry> {
    const task = await this.gen.tasks.get(taskId); // 404 for a missing task
    const [demographics, personas] = await Promise.all([
      this.gen.personas.demographics(taskId),
      this.gen.personas.list(taskId, { page, perPage: 20 }),
    ]);
    return { ownerId: task.userId, detail: { task, demographics, personas } };
  }

  private async entry(taskId: string, page: number, scope: Scope): Promise<Entry> {
    const entry = (await this.entries.fetch(`${taskId}:${page}`, { context: { taskId, page } })) as Entry;
    if (scope.userId !== undefined && entry.ownerId !== scope.userId) throw new NotFoundError(`No task ${taskId}`);
    return entry;
  }

  async detail(taskId: string, page: number, scope: Scope): Promise<DatasetDetail> {
    return (await this.entry(taskId, page, scope)).detail;
  }

  /**
   * The detail as UTF-8 JSON, gzipped when `gzip`; `shape` turns it into the API's answer. Both are
   * made once per entry: a 44 KB answer is about 6 KB gzipped, and writing it costs the host less.
   */
  async json(taskId: string, page: number, scope: Scope, shape: (detail: DatasetDetail) => unknown, gzip = false): Promise<Buffer> {
    const entry = await this.entry(taskId, page, scope);
    entry.json ??= Buffer.from(JSON.stringify(shape(entry.detail)));
    if (!gzip) return entry.json;
    entry.gzipped ??= gzipped(entry.json).catch((error: unknown) => {
      entry.gzipped = undefined; // not kept: the next request tries again
      throw error;
    });
    return await entry.gzipped;
  }
}
