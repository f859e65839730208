import { LockMode } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { Orm } from '../db/orm.js';
import { GenerationTask, type TaskEntity } from '../db/entities.js';
import { type GenerationRequest, validateGenerationRequest } from '../domain/request.js';
import { estimateCost } from '../domain/prices.js';
import { type Settings, withImageOutput } from '../domain/settings.js';
import { assertTransition, isActive, isFinal, type TaskStatus } from '../domain/status.js';
import { ConflictError, isDatabaseUnavailable, NotFoundError, ValidationError } from '../errors.js';
import type { ObjectStorage } from '../ports.js';
import { deleteThumbnails, deleteUnderPrefix } from '../storage/prefix.js';
import { taskFolder } from '../storage/keys.js';
import type { Pipeline } from '../pipeline/engine.js';
import { shortId } from '../util.js';
import type { SettingsService } from './settings.js';
import { type ModelUsage, NO_COUNTS, type TaskCounts, type TaskView, taskView } from './views.js';

/** Who is asking: a user sees only their own tasks; no userId (library use) sees all. */
export interface Scope {
  userId?: number | null;
}

export interface ListOptions extends Scope {
  limit?: number;
  offset?: number;
  status?: TaskStatus;
}

export interface Stats {
  tasks: number;
  personas: number;
  images: number;
  byStatus: Record<'completed' | 'partial' | 'failed' | 'running' | 'pending' | 'cancelled', number>;
  /** The last 7 days, oldest first: tasks created, personas and images stored, per UTC day. */
  days: Array<{ date: string; tasks: number; personas: number; images: number }>;
  /**
   * The last 7 days, oldest first: the estimated cost of the tasks created that UTC day, at the
   * site's prices (`complete` false when some usage that day has no price). `pricesSet`: the table is not empty.
   */
  costs: { currency: string; pricesSet: boolean; days: Array<{ date: string; amount: number; complete: boolean }> };
}

/** Submitting, reading and managing generation tasks. */
export class TasksService {
  constructor(
    private readonly orm: Orm,
    private readonly settings: SettingsService,
    private readonly pipeline: Pipeline,
    private readonly storage: ObjectStorage,
    /** Which plugin fills each port (gen.plugins.ports): snapshotted into each task at submission. */
    private readonly owners: Partial<Record<string, { plugin: string }>> = {},
  ) {}

  private get em(): EntityManager {
    return this.orm.em.fork() as EntityManager;
  }

  /** Validates the request (ValidationError with messages per field), snapshots the settings and queues the task. */
  async submit(input: GenerationRequest | Record<string, unknown>, scope: Scope = {}): Promise<TaskView> {
    const checked = validateGenerationRequest(
      'language' in input && typeof input.language === 'object' && input.language !== null
        ? { ...input, language: (input.language as { code: string }).code }
        : input,
    );
    // The snapshot holds what this task runs with: the site's settings and its own output options.
    // Both are checked before either is refused, so a form shows every wrong field at once.
    let settings: Settings | undefined;
    let outputErrors: Record<string, string> = {};
    try {
      settings = withImageOutput(await this.settings.get(), (input as { imageOutput?: unknown }).imageOutput);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      outputErrors = error.fields;
    }
    if (!checked.ok || !settings) throw new ValidationError({ ...(checked.ok ? {} : checked.errors), ...outputErrors });
    const request = checked.value;
    const id = shortId();
    const em = this.em;
    const task = em.create(GenerationTask, {
      id,
      userId: scope.userId ?? null,
      description: request.description,
      languageCode: request.language.code,
      languageName: request.language.name,
      count: request.count,
      imagesPerPersona: request.imagesPerPersona,
      status: 'pending',
      settings,
      targets: request.targets ?? null,
      qualityReport: null,
      storagePrefix: id,
      run: 0,
      errorLog: [],
    });
    await em.flush();
    const plugins = Object.fromEntries(Object.entries(this.owners).flatMap(([port, owner]) => (owner ? [[port, owner.plugin]] : [])));
    await em.execute('insert into task_counters (task_id, plugins) values (?, ?::jsonb) on conflict (task_id) do nothing', [
      id,
      JSON.stringify(plugins),
    ]);
    await this.pipeline.notifyTask(id);
    await this.pipeline.schedule();
    return this.get(task.id, scope);
  }

  private async find(em: EntityManager, id: string, scope: Scope, lock = false): Promise<TaskEntity> {
    const task = await em.findOne(GenerationTask, { id: String(id) }, lock ? { lockMode: LockMode.PESSIMISTIC_WRITE } : {});
    // Another user's task is reported exactly like a missing one.
    if (!task || (scope.userId !== undefined && task.userId !== scope.userId)) {
      throw new NotFoundError(`No task ${id}`);
    }
    return task;
  }

  /** Token usage per provider and model of each task (the pipeline sums it per model call). */
  private async usage(em: EntityManager, ids: string[]): Promise<Map<string, ModelUsage[]>> {
    const out = new Map<string, ModelUsage[]>(ids.map((id) => [id, []]));
    if (ids.length === 0) return out;
    const rows = await em.execute(
      `select task_id, provider, model, calls, input_tokens::float8 as input_tokens, output_tokens::float8 as output_tokens, images
       from task_usage where task_id in (?) order by task_id, provider, model`,
      [ids],
    );
    for (const row of rows) {
      out.get(row.task_id)?.push({
        provider: row.provider,
        model: row.model,
        calls: row.calls,
        inputTokens: row.input_tokens,
        outputTokens: row.output_tokens,
        images: row.images,
      });
    }
    return out;
  }

  /** Each task's counts (task_counters, rejected personas from its batches) and its port owners. */
  private async extras(
    em: EntityManager,
    ids: string[],
  ): Promise<Map<string, { counts: TaskCounts; plugins: Record<string, string> | null }>> {
    const out = new Map<string, { counts: TaskCounts; plugins: Record<string, string> | null }>(
      ids.map((id) => [id, { counts: { ...NO_COUNTS }, plugins: null }]),
    );
    if (ids.length === 0) return out;
    const rows = await em.execute(
      `select t.id, c.images_requested, c.images_made, c.retries, c.moderation_blocks, c.plugins,
              (select coalesce(sum(b.rejected), 0)::int from persona_batches b where b.task_id = t.id) as rejected
       from generation_tasks t left join task_counters c on c.task_id = t.id where t.id in (?)`,
      [ids],
    );
    for (const row of rows) {
      out.set(row.id, {
        counts: {
          imagesRequested: row.images_requested ?? 0,
          imagesMade: row.images_made ?? 0,
          retries: row.retries ?? 0,
          moderationBlocks: row.moderation_blocks ?? 0,
          rejectedPersonas: row.rejected ?? 0,
        },
        plugins: row.plugins ?? null,
      });
    }
    return out;
  }

  /** Task views with usage, counts and cost at the site's current prices. */
  private async views(em: EntityManager, rows: TaskEntity[]): Promise<TaskView[]> {
    const ids = rows.map((r) => r.id);
    const [counts, usage, extras, settings] = await Promise.all([
      this.counts(em, ids),
      this.usage(em, ids),
      this.extras(em, ids),
      this.settings.get(),
    ]);
    return rows.map((r) =>
      taskView(r, counts.get(r.id) ?? { personas: 0, images: 0 }, usage.get(r.id), {
        ...extras.get(r.id),
        prices: settings.prices,
        currency: settings.currency,
      }),
    );
  }

  private async counts(em: EntityManager, ids: string[]): Promise<Map<string, { personas: number; images: number }>> {
    const out = new Map(ids.map((id) => [id, { personas: 0, images: 0 }]));
    if (ids.length === 0) return out;
    const personas = await em.execute('select task_id, count(*)::int as n from personas where task_id in (?) group by task_id', [ids]);
    const images = await em.execute('select task_id, count(*)::int as n from persona_images where task_id in (?) group by task_id', [ids]);
    for (const row of personas) (out.get(row.task_id) as { personas: number }).personas = row.n;
    for (const row of images) (out.get(row.task_id) as { images: number }).images = row.n;
    return out;
  }

  /**
   * Waits until the task has ended and returns it. Woken by the pipeline's task events (from any
   * process), with a poll every `pollMs` as a safety net; reads run one at a time, so `onChange`
   * sees the task only move forward. A database outage meanwhile is waited out; `timeoutMs` and
   * `signal` end the wait (the task goes on).
   */
  async waitUntilEnded(
    id: string,
    options: { scope?: Scope; onChange?: (task: TaskView) => void; signal?: AbortSignal; timeoutMs?: number; pollMs?: number } = {},
  ): Promise<TaskView> {
    const { events } = this.pipeline;
    const deadline = options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.timeoutMs;
    let wake: () => void = () => undefined;
    const onTask = (taskId: string) => {
      if (taskId === id) wake();
    };
    events.on('task', onTask);
    try {
      let last = '';
      for (;;) {
        options.signal?.throwIfAborted();
        let task: TaskView | undefined;
        try {
          task = await this.get(id, options.scope);
        } catch (error) {
          if (!isDatabaseUnavailable(error)) throw error;
        }
        if (task) {
          const seen = `${task.status}:${task.progress.personasStored}:${task.progress.imagesStored}`;
          if (seen !== last) options.onChange?.(task);
          last = seen;
          if (isFinal(task.status)) return task;
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`Task ${id} has not ended in time (${task ? task.status : 'database unavailable'}).`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, Math.min(options.pollMs ?? 1000, left));
          function done() {
            clearTimeout(timer);
            options.signal?.removeEventListener('abort', done);
            resolve();
          }
          wake = done;
          options.signal?.addEventListener('abort', done, { once: true });
        });
      }
    } finally {
      events.off('task', onTask);
    }
  }

  async get(id: string, scope: Scope = {}): Promise<TaskView> {
    const em = this.em;
    const task = await this.find(em, id, scope);
    const [view] = await this.views(em, [task]);
    return view as TaskView;
  }

  async list(options: ListOptions = {}): Promise<{ tasks: TaskView[]; total: number }> {
    const em = this.em;
    const where: Record<string, unknown> = {};
    if (options.userId !== undefined) where.userId = options.userId;
    if (options.status) where.status = options.status;
    const [rows, total] = await em.findAndCount(GenerationTask, where, {
      orderBy: { createdAt: 'desc', id: 'desc' },
      limit: Math.min(Math.max(options.limit ?? 50, 1), 500),
      offset: Math.max(options.offset ?? 0, 0),
    });
    return { tasks: await this.views(em, rows), total };
  }

  /** Cancels a pending or running task: no new work is scheduled and in-flight calls are aborted. */
  async cancel(id: string, scope: Scope = {}): Promise<TaskView> {
    await this.em.transactional(async (em) => {
      const task = await this.find(em as EntityManager, id, scope, true);
      assertTransition(task.status, 'cancelled');
      task.status = 'cancelled';
      task.finishedAt = new Date();
      task.errorLog = [...task.errorLog, { at: new Date().toISOString(), stage: 'task', message: 'Cancelled.' }];
    });
    await this.pipeline.cancelled(id);
    return this.get(id, scope);
  }

  /**
   * Retries an ended task that lacks something (failed, cancelled, partial, or completed with
   * images lost since): batches that gave fewer personas than asked and personas without all their
   * images are done again; everything already stored is kept and never redone. A task with nothing
   * missing is a ConflictError.
   */
  async retry(id: string, scope: Scope = {}): Promise<TaskView> {
    await this.em.transactional(async (em) => {
      const task = await this.find(em as EntityManager, id, scope, true);
      assertTransition(task.status, 'pending');
      const [missing = { personas: 0, images: 0, unfinished: 0 }] = await em.execute(
        `select (select count(*)::int from personas where task_id = ?) as personas,
                (select count(*)::int from persona_images where task_id = ?) as images,
                (select count(*)::int from personas where task_id = ? and (images_status <> 'done' or base_image_key is null)) as unfinished`,
        [task.id, task.id, task.id],
      );
      const complete = missing.personas >= task.count && missing.images >= task.count * task.imagesPerPersona && missing.unfinished === 0;
      if (task.status === 'completed' && complete) {
        throw new ConflictError('The task is complete: nothing is missing to retry.');
      }
      await em.execute(
        `update persona_batches b set status = 'pending', error = null, job_id = null
         where b.task_id = ? and (b.status = 'failed' or b.size > (select count(*) from personas p where p.task_id = b.task_id and p.batch_no = b.batch_no))`,
        [task.id],
      );
      // A persona is redone when it is not done, lacks its base image, or lacks any of its images.
      await em.execute(
        `update personas p set images_status = 'pending', images_error = null, job_id = null
         where p.task_id = ? and (p.images_status <> 'done' or p.base_image_key is null
           or (select count(*) from persona_images i where i.persona_id = p.id) < ?)`,
        [task.id, task.imagesPerPersona],
      );
      this.reopen(task, 'Retried.');
    });
    await this.pipeline.notifyTask(id);
    await this.pipeline.schedule();
    return this.get(id, scope);
  }

  /**
   * Replaces one persona of an ended task with a new one (a flagged duplicate, say): its rows and
   * pictures go, its batch asks the provider for one persona again with a new seed, and the new
   * persona gets its own pictures. Every other persona and picture is kept as it is.
   */
  async regeneratePersona(id: string, personaId: number, scope: Scope = {}): Promise<TaskView> {
    let folder = '';
    let prefix = '';
    await this.em.transactional(async (em) => {
      const task = await this.find(em as EntityManager, id, scope, true);
      this.assertEnded(task, 'regenerate a persona');
      const [persona] = await em.execute('select id, first_name, last_name from personas where task_id = ? and id = ?', [
        task.id,
        personaId,
      ]);
      if (!persona) throw new NotFoundError(`No persona ${personaId} in task ${task.id}`);
      await em.execute('delete from persona_images where persona_id = ?', [personaId]);
      const [batch] = await em.execute('delete from personas where id = ? returning batch_no', [personaId]);
      await em.execute(`update persona_batches set status = 'pending', error = null, job_id = null where task_id = ? and batch_no = ?`, [
        task.id,
        (batch as { batch_no: number }).batch_no,
      ]);
      this.reopen(task, `Persona ${persona.first_name} ${persona.last_name} (#${personaId}) regenerated.`);
      prefix = task.storagePrefix;
      folder = `${taskFolder(task.storagePrefix)}${personaId}/`;
    });
    // The objects go after the rows: a failed delete leaves orphans (which `doctor` finds), never a row without its object.
    await deleteUnderPrefix(this.storage, folder).catch(() => undefined);
    await deleteThumbnails(this.storage, prefix, (source) => source.startsWith(folder)).catch(() => undefined);
    await this.pipeline.notifyTask(id);
    await this.pipeline.schedule();
    return this.get(id, scope);
  }

  /**
   * Makes one picture of an ended task's persona again (a near-identical shot, say): a new shot
   * of the same prompt, of which only that picture is stored; the persona's other pictures stay.
   */
  async regeneratePicture(id: string, personaId: number, index: number, scope: Scope = {}): Promise<TaskView> {
    let key = '';
    let prefix = '';
    await this.em.transactional(async (em) => {
      const task = await this.find(em as EntityManager, id, scope, true);
      this.assertEnded(task, 'regenerate a picture');
      const [image] = await em.execute('delete from persona_images where task_id = ? and persona_id = ? and idx = ? returning key', [
        task.id,
        personaId,
        index,
      ]);
      if (!image) throw new NotFoundError(`No picture ${index} of persona ${personaId} in task ${task.id}`);
      await em.execute(`update personas set images_status = 'pending', images_error = null, job_id = null where id = ?`, [personaId]);
      this.reopen(task, `Picture ${index + 1} of persona #${personaId} regenerated.`);
      key = image.key;
      prefix = task.storagePrefix;
    });
    // The old picture goes after the rows: a failed delete leaves an orphan object, never a row without one.
    await this.storage.delete(key).catch(() => undefined);
    await deleteThumbnails(this.storage, prefix, (source) => source === key).catch(() => undefined);
    await this.pipeline.notifyTask(id);
    await this.pipeline.schedule();
    return this.get(id, scope);
  }

  private assertEnded(task: TaskEntity, what: string): void {
    if (!isFinal(task.status)) throw new ConflictError(`Wait until the task has ended to ${what}.`);
    assertTransition(task.status, 'pending');
  }

  /** Sends an ended task back to the queue for the work just reopened; its kept quality report is stale from here on. */
  private reopen(task: TaskEntity, message: string): void {
    task.status = 'pending';
    task.run += 1;
    task.finishedAt = null;
    task.qualityReport = null;
    task.errorLog = [...task.errorLog, { at: new Date().toISOString(), stage: 'task', message }];
  }

  /** Deletes a task: a running one is cancelled first; its rows and every stored object go. */
  async delete(id: string, scope: Scope = {}): Promise<void> {
    const em = this.em;
    const task = await this.find(em, id, scope);
    if (isActive(task.status) || task.status === 'pending') await this.cancel(id, scope);
    // Everything under the task's prefix goes, rows or not (orphans and temp files of dead writes too).
    await deleteUnderPrefix(this.storage, taskFolder(task.storagePrefix));
    await this.em.nativeDelete(GenerationTask, { id: task.id });
    await this.pipeline.notifyTask(id);
  }

  async stats(scope: Scope = {}): Promise<Stats> {
    const em = this.em;
    const byUser = scope.userId !== undefined;
    const userFilter = byUser ? 'and t.user_id = ?' : '';
    const params = byUser ? [scope.userId] : [];
    const [totals] = await em.execute(
      `select
         (select count(*)::int from generation_tasks t where true ${userFilter}) as tasks,
         (select count(*)::int from personas p join generation_tasks t on t.id = p.task_id where true ${userFilter}) as personas,
         (select count(*)::int from persona_images i join generation_tasks t on t.id = i.task_id where true ${userFilter}) as images`,
      [...params, ...params, ...params],
    );
    const statusRows = await em.execute(
      `select status, count(*)::int as n from generation_tasks t where true ${userFilter} group by status`,
      params,
    );
    const byStatus = { completed: 0, partial: 0, failed: 0, running: 0, pending: 0, cancelled: 0 };
    for (const row of statusRows) {
      const status = row.status as TaskStatus;
      if (status === 'completed' || status === 'partial' || status === 'failed' || status === 'pending' || status === 'cancelled')
        byStatus[status] += row.n;
      else byStatus.running += row.n;
    }
    const days = await em.execute(
      `with d as (select generate_series((now() at time zone 'utc')::date - 6, (now() at time zone 'utc')::date, '1 day')::date as day)
       select to_char(d.day, 'YYYY-MM-DD') as date,
         (select count(*)::int from generation_tasks t where (t.created_at at time zone 'utc')::date = d.day ${userFilter}) as tasks,
         (select count(*)::int from personas p join generation_tasks t on t.id = p.task_id where (p.created_at at time zone 'utc')::date = d.day ${userFilter}) as personas,
         (select count(*)::int from persona_images i join generation_tasks t on t.id = i.task_id where (i.created_at at time zone 'utc')::date = d.day ${userFilter}) as images
       from d order by d.day`,
      [...params, ...params, ...params],
    );
    // Usage per day and model, priced here with the one cost function (estimateCost).
    const usageRows = await em.execute(
      `select to_char((t.created_at at time zone 'utc')::date, 'YYYY-MM-DD') as date, u.provider, u.model,
              sum(u.input_tokens)::float8 as input_tokens, sum(u.output_tokens)::float8 as output_tokens, sum(u.images)::float8 as images
       from task_usage u join generation_tasks t on t.id = u.task_id
       where (t.created_at at time zone 'utc')::date >= (now() at time zone 'utc')::date - 6 ${userFilter}
       group by 1, 2, 3`,
      params,
    );
    const settings = await this.settings.get();
    return {
      tasks: totals?.tasks ?? 0,
      personas: totals?.personas ?? 0,
      images: totals?.images ?? 0,
      byStatus,
      days: days.map((d) => ({ date: d.date, tasks: d.tasks, personas: d.personas, images: d.images })),
      costs: {
        currency: settings.currency,
        pricesSet: settings.prices.length > 0,
        days: days.map((d) => {
          const usage = usageRows
            .filter((r) => r.date === d.date)
            .map((r) => ({
              provider: r.provider,
              model: r.model,
              inputTokens: r.input_tokens,
              outputTokens: r.output_tokens,
              images: r.images,
            }));
          const cost = estimateCost(usage, settings.prices, settings.currency);
          return { date: d.date as string, amount: cost.amount, complete: cost.complete };
        }),
      },
    };
  }
}
