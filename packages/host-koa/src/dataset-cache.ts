import { type AvatarGen, type Demographics, isFinal, NotFoundError, type PersonaPage, type Scope, type TaskView } from '@avatargen/core';

export interface DatasetDetail {
  task: TaskView;
  demographics: Demographics;
  personas: PersonaPage;
}

interface Entry {
  ownerId: number | null;
  detail: DatasetDetail;
  /** The API's JSON of this detail, made on first use, kept as UTF-8 bytes: a string body would be
   * measured (Buffer.byteLength) and encoded again on every response, which is most of the CPU a
   * cached answer costs. */
  json?: Buffer;
  storedAt: number;
}

/**
 * The dataset detail (task, demographics, a page of personas) of finished tasks, kept in memory:
 * a finished dataset is read far more often than it changes. Every change to a task, from any
 * process, arrives as a `task` event (PostgreSQL NOTIFY) and drops its entries; a short time to
 * live bounds staleness should the notification connection ever miss one, and when it reconnects
 * (a `resync` event) everything is dropped. Access is checked on
 * every read: the owner is kept with the entry and another user gets the same 404 as before.
 */
export class DatasetCache {
  private readonly entries = new Map<string, Entry>();
  private readonly versions = new Map<string, number>();
  /** Bumped by clear(): a read that started before it is not kept. */
  private epoch = 0;

  constructor(
    private readonly gen: AvatarGen,
    private readonly options: { maxEntries?: number; ttlMs?: number } = {},
  ) {
    gen.pipeline.events.on('task', (taskId: string) => this.invalidate(taskId));
    // The notification connection was lost and is back: changes made meanwhile were not heard.
    gen.pipeline.events.on('resync', () => this.clear());
  }

  invalidate(taskId: string): void {
    this.versions.set(taskId, (this.versions.get(taskId) ?? 0) + 1);
    for (const key of this.entries.keys()) if (key.startsWith(`${taskId}:`)) this.entries.delete(key);
  }

  /** Drops every entry (and the versions, which only matter to reads in flight, now refused by the epoch). */
  clear(): void {
    this.epoch++;
    this.entries.clear();
    this.versions.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  private lookup(taskId: string, page: number, scope: Scope): Entry | undefined {
    const key = `${taskId}:${page}`;
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (Date.now() - entry.storedAt > (this.options.ttlMs ?? 30_000)) {
      this.entries.delete(key);
      return undefined;
    }
    if (scope.userId !== undefined && entry.ownerId !== scope.userId) throw new NotFoundError(`No task ${taskId}`);
    // least recently used goes first
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry;
  }

  private async load(taskId: string, page: number, scope: Scope): Promise<Entry> {
    const version = this.versions.get(taskId) ?? 0;
    const epoch = this.epoch;
    const task = await this.gen.tasks.get(taskId, scope); // 404 for a missing task or another user's
    const [demographics, personas] = await Promise.all([
      this.gen.personas.demographics(taskId, scope),
      this.gen.personas.list(taskId, { ...scope, page, perPage: 20 }),
    ]);
    const entry: Entry = { ownerId: task.userId, detail: { task, demographics, personas }, storedAt: Date.now() };
    // Only finished tasks, and only when nothing changed while reading.
    if (isFinal(task.status) && this.epoch === epoch && (this.versions.get(taskId) ?? 0) === version) {
      this.entries.set(`${taskId}:${page}`, entry);
      const max = this.options.maxEntries ?? 200;
      while (this.entries.size > max) this.entries.delete(this.entries.keys().next().value as string);
    }
    return entry;
  }

  async detail(taskId: string, page: number, scope: Scope): Promise<DatasetDetail> {
    return (this.lookup(taskId, page, scope) ?? (await this.load(taskId, page, scope))).detail;
  }

  /** The detail as UTF-8 JSON; `shape` turns it into the API's answer (made once per entry). */
  async json(taskId: string, page: number, scope: Scope, shape: (detail: DatasetDetail) => unknown): Promise<Buffer> {
    const entry = this.lookup(taskId, page, scope) ?? (await this.load(taskId, page, scope));
    entry.json ??= Buffer.from(JSON.stringify(shape(entry.detail)));
    return entry.json;
  }
}
