import { LockMode } from '@mikro-orm/core';
import { EventEmitter } from 'node:events';
import type { EntityManager } from '@mikro-orm/postgresql';
import pLimit, { type LimitFunction } from 'p-limit';
import pg from 'pg';
import PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import { ulid } from 'ulid';
import { type AvatarGenConfig, createRedactor } from '../config.js';
import { type ErrorLogEntry, GenerationTask, Persona, type PersonaEntity, PersonaImage, type TaskEntity } from '../db/entities.js';
import type { Orm } from '../db/orm.js';
import { normalizePersona, type PersonaData } from '../domain/persona.js';
import { bioInstructions, type Settings } from '../domain/settings.js';
import { assertTransition, type TaskStatus } from '../domain/status.js';
import {
  CancelledError,
  describeError,
  InvalidImageError,
  InvalidResponseError,
  throwIfAborted,
} from '../errors.js';
import { extensionFor, readImageInfo } from '../image-info.js';
import type {
  EncodedImage,
  FaceSource,
  ImageProcessor,
  ImagePromptProvider,
  ImageProvider,
  ObjectStorage,
  PersonaProvider,
} from '../ports.js';
import { personaColumns, personaData } from '../services/views.js';
import { readObject } from '../storage/read.js';
import { stableUuid, withRetry } from '../util.js';
import { baseImageWithFaces } from './faces.js';

export const BATCH_SIZE = 10;
export const QUEUE_BATCHES = 'avatargen-persona-batch';
export const QUEUE_IMAGES = 'avatargen-persona-images';
const CHANNEL_CANCEL = 'avatargen_cancel';
const CHANNEL_TASK = 'avatargen_task';
const SCHEDULER_LOCK = 727274002;
const QUEUE_SETUP_LOCK = 727274003;

export interface PipelinePorts {
  personaProvider: PersonaProvider;
  imagePromptProvider: ImagePromptProvider;
  imageProvider: ImageProvider;
  imageProcessor: ImageProcessor;
  objectStorage: ObjectStorage;
  faceSource?: FaceSource;
}

export interface PipelineOptions {
  orm: Orm;
  databaseUrl: string;
  config: AvatarGenConfig;
  logger: Logger;
  ports: PipelinePorts;
  /** How often a worker re-checks running tasks for lost jobs and finished stages. Default 30 s. */
  reconcileIntervalMs?: number;
  /** pg-boss maintenance (expiry of jobs whose worker died). Default 60 s. */
  maintenanceIntervalSeconds?: number;
  /** How often idle work loops poll the queue. Default 2 s (new work also wakes local loops at once). */
  pollingIntervalSeconds?: number;
}

interface BatchJob {
  taskId: string;
  batchNo: number;
  run: number;
}
interface ImagesJob {
  taskId: string;
  personaId: number;
  run: number;
}

/** Splits a count into batches of at most `size`: 37 -> [10, 10, 10, 7]. */
export function batchSizes(count: number, size = BATCH_SIZE): number[] {
  const sizes: number[] = [];
  for (let left = count; left > 0; left -= size) sizes.push(Math.min(size, left));
  return sizes;
}

const now = () => new Date().toISOString();

/**
 * The generation pipeline on pg-boss. The database is the truth: every job looks at the rows
 * before it works and writes its result under unique keys (task+batch, persona+image index), so
 * a job that runs twice (a worker died, a reconcile re-sent it) never duplicates anything.
 */
export class Pipeline {
  readonly events = new EventEmitter();
  private readonly boss: PgBoss;
  private readonly log: Logger;
  private readonly personaLimit: LimitFunction;
  private readonly imageLimit: LimitFunction;
  private readonly controllers = new Map<string, Set<AbortController>>();
  private readonly workerIds: { batches: string[]; images: string[] } = { batches: [], images: [] };
  private listener: pg.Client | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private started = false;
  private working = false;
  /** Error log entries are shown on pages: no secret may reach them, whatever a plugin put in a message. */
  private readonly redact: (text: string) => string;

  constructor(private readonly options: PipelineOptions) {
    this.log = options.logger.child({ component: 'pipeline' });
    this.redact = createRedactor(options.config);
    this.boss = new PgBoss({
      connectionString: options.databaseUrl,
      max: 4,
      maintenanceIntervalSeconds: options.maintenanceIntervalSeconds ?? 60,
    });
    this.boss.on('error', (error: Error) => this.log.error({ err: error }, 'queue error'));
    this.personaLimit = pLimit(options.config.MULTITHREAD_FLOWISE);
    this.imageLimit = pLimit(options.config.IMAGE_CONCURRENCY);
    this.events.setMaxListeners(0);
  }

  private get em(): EntityManager {
    return this.options.orm.em.fork() as EntityManager;
  }

  /** Connects the queue and the notification listener. Every process that submits or watches tasks calls this. */
  async start(): Promise<void> {
    if (this.started) return;
    // Processes starting together would deadlock while pg-boss creates its schema and queues:
    // one at a time, under a session lock on a connection of its own.
    const lock = new pg.Client({ connectionString: this.options.databaseUrl });
    await lock.connect();
    try {
      await lock.query('select pg_advisory_lock($1)', [QUEUE_SETUP_LOCK]);
      await this.boss.start();
      const expireInSeconds = this.options.config.JOB_EXPIRE_SECONDS;
      // pg-boss's own retries are for jobs whose worker died (expiry); provider errors are retried inside the job.
      for (const name of [QUEUE_BATCHES, QUEUE_IMAGES]) {
        await this.boss.createQueue(name, { name, retryLimit: 3, retryDelay: 1, retryBackoff: true, expireInSeconds });
      }
    } finally {
      await lock.end();
    }
    this.listener = new pg.Client({ connectionString: this.options.databaseUrl });
    this.listener.on('error', (error) => this.log.warn({ err: error }, 'notification listener error'));
    this.listener.on('notification', (message) => {
      if (!message.payload) return;
      if (message.channel === CHANNEL_CANCEL) this.abortTask(message.payload);
      if (message.channel === CHANNEL_TASK) this.events.emit('task', message.payload);
    });
    await this.listener.connect();
    await this.listener.query(`LISTEN ${CHANNEL_CANCEL}`);
    await this.listener.query(`LISTEN ${CHANNEL_TASK}`);
    this.started = true;
  }

  /** Starts taking work: persona batches and persona images, and a periodic reconcile. */
  async startWorker(): Promise<void> {
    await this.start();
    if (this.working) return;
    this.working = true;
    const pollingIntervalSeconds = this.options.pollingIntervalSeconds ?? 2;
    // One work loop per call allowed in flight: at most MULTITHREAD_FLOWISE persona calls per process.
    for (let i = 0; i < this.options.config.MULTITHREAD_FLOWISE; i++) {
      const id: string = await this.boss.work<BatchJob>(QUEUE_BATCHES, { pollingIntervalSeconds }, async ([job]) => {
        if (job) await this.runBatch(job.data);
        this.boss.notifyWorker(id); // fetch the next job now rather than after the polling interval
      });
      this.workerIds.batches.push(id);
    }
    for (let i = 0; i < this.options.config.IMAGE_JOBS_PER_WORKER; i++) {
      const id: string = await this.boss.work<ImagesJob>(QUEUE_IMAGES, { pollingIntervalSeconds }, async ([job]) => {
        if (job) await this.runImages(job.data);
        this.boss.notifyWorker(id);
      });
      this.workerIds.images.push(id);
    }
    const interval = this.options.reconcileIntervalMs ?? 30_000;
    const tick = () => {
      this.reconcile()
        .catch((error) => this.log.error({ err: error }, 'reconcile failed'))
        .finally(() => {
          if (this.working) this.reconcileTimer = setTimeout(tick, interval);
        });
    };
    tick();
  }

  /** Stops taking work; running jobs finish (or go back to the queue after `timeoutMs`). */
  async stop(timeoutMs = 30_000): Promise<void> {
    this.working = false;
    if (this.reconcileTimer) clearTimeout(this.reconcileTimer);
    if (this.started) {
      await this.boss.stop({ graceful: true, wait: true, timeout: timeoutMs });
      await this.listener?.end().catch(() => undefined);
    }
    this.started = false;
  }

  /** Stops at once without waiting for running jobs; they go back to the queue when they expire. */
  async kill(): Promise<void> {
    this.working = false;
    if (this.reconcileTimer) clearTimeout(this.reconcileTimer);
    for (const set of this.controllers.values()) for (const c of set) c.abort();
    if (this.started) {
      await this.boss.stop({ graceful: false, wait: true, close: true });
      await this.listener?.end().catch(() => undefined);
    }
    this.started = false;
  }

  // ---------------------------------------------------------------- scheduling

  /**
   * Starts pending tasks while fewer than `max_concurrent_tasks` are active. Serialised across
   * processes by an advisory lock held for the transaction.
   */
  async schedule(): Promise<string[]> {
    const started = await this.em.transactional(async (em) => {
      await em.execute('select pg_advisory_xact_lock(?)', [SCHEDULER_LOCK]);
      const [limitRow] = await em.execute(`select value from settings where key = 'max_concurrent_tasks'`);
      const max = typeof limitRow?.value === 'number' ? limitRow.value : 2;
      const [activeRow] = await em.execute(
        `select count(*)::int as n from generation_tasks where status in ('generating-data', 'data-generated', 'generating-images')`,
      );
      const slots = max - (activeRow?.n ?? 0);
      if (slots <= 0) return [];
      const pending = await em.execute(
        `select id, count from generation_tasks where status = 'pending' order by created_at, id limit ?`,
        [slots],
      );
      const ids: string[] = [];
      for (const row of pending) {
        const sizes = batchSizes(row.count);
          await em.execute(
          `insert into persona_batches (task_id, batch_no, size, status)
           select ?, n - 1, least(?, ? - (n - 1) * ?), 'pending' from generate_series(1, ?) as n
           on conflict do nothing`,
          [row.id, BATCH_SIZE, row.count, BATCH_SIZE, sizes.length],
        );
        await em.execute(
          `update generation_tasks set status = 'generating-data', started_at = coalesce(started_at, now()), updated_at = now() where id = ?`,
          [row.id],
        );
        ids.push(row.id);
      }
      return ids;
    });
    for (const id of started) {
      this.log.info({ taskId: id }, 'task started');
      await this.notifyTask(id);
      await this.enqueueBatches(id);
      await this.advance(id);
    }
    return started;
  }

  private async loadTask(em: EntityManager, id: string, lock = false): Promise<TaskEntity | null> {
    return em.findOne(GenerationTask, { id }, lock ? { lockMode: LockMode.PESSIMISTIC_WRITE } : {});
  }

  private async enqueueBatches(taskId: string): Promise<void> {
    const em = this.em;
    const task = await this.loadTask(em, taskId);
    if (!task || task.status !== 'generating-data') return;
    const rows = await em.execute(`select batch_no from persona_batches where task_id = ? and status = 'pending'`, [taskId]);
    if (rows.length === 0) return;
    await this.boss.insert(
      rows.map((r) => ({
        name: QUEUE_BATCHES,
        id: stableUuid('batch', taskId, task.run, r.batch_no),
        expireInSeconds: this.options.config.JOB_EXPIRE_SECONDS,
        data: { taskId, batchNo: r.batch_no, run: task.run } satisfies BatchJob,
      })),
    );
    for (const id of this.workerIds.batches) this.boss.notifyWorker(id);
  }

  private async enqueueImages(taskId: string): Promise<void> {
    const em = this.em;
    const task = await this.loadTask(em, taskId);
    if (!task || task.status !== 'generating-images') return;
    const rows = await em.execute(
      `select id from personas where task_id = ? and images_status = 'pending' order by batch_no, batch_index`,
      [taskId],
    );
    if (rows.length === 0) return;
    await this.boss.insert(
      rows.map((r) => ({
        name: QUEUE_IMAGES,
        id: stableUuid('images', taskId, task.run, r.id),
        expireInSeconds: this.options.config.JOB_EXPIRE_SECONDS,
        data: { taskId, personaId: r.id, run: task.run } satisfies ImagesJob,
      })),
    );
    for (const id of this.workerIds.images) this.boss.notifyWorker(id);
  }

  /**
   * Moves a task to its next status when its current stage has finished. Idempotent; called after
   * every job and by the reconcile loop.
   */
  async advance(taskId: string): Promise<void> {
    // Cheap check first: while work of the current stage is pending there is nothing to decide,
    // and taking the task's row lock after every job would serialise the workers.
    const [open] = await this.em.execute(
      `select exists(select 1 from persona_batches b join generation_tasks t on t.id = b.task_id
                     where b.task_id = ? and b.status = 'pending' and t.status = 'generating-data')
           or exists(select 1 from personas p join generation_tasks t on t.id = p.task_id
                     where p.task_id = ? and p.images_status = 'pending' and t.status = 'generating-images') as busy`,
      [taskId, taskId],
    );
    if (open?.busy) return;
    const next = await this.em.transactional(async (em) => {
      const task = await this.loadTask(em, taskId, true);
      if (!task) return null;
      if (task.status === 'generating-data') {
        const [b] = await em.execute(
          `select count(*) filter (where status = 'pending')::int as pending from persona_batches where task_id = ?`,
          [taskId],
        );
        if ((b?.pending ?? 0) > 0) return null;
        const [p] = await em.execute('select count(*)::int as n from personas where task_id = ?', [taskId]);
        if ((p?.n ?? 0) === 0) {
          this.setStatus(task, 'failed', { stage: 'personas', message: 'Every persona batch failed; no persona was stored.' });
          return 'failed';
        }
        this.setStatus(task, 'data-generated');
        this.setStatus(task, 'generating-images');
        return 'generating-images';
      }
      if (task.status === 'generating-images') {
        const [p] = await em.execute(
          `select count(*) filter (where images_status = 'pending')::int as pending from personas where task_id = ?`,
          [taskId],
        );
        if ((p?.pending ?? 0) > 0) return null;
        const [i] = await em.execute('select count(*)::int as n from persona_images where task_id = ?', [taskId]);
        if ((i?.n ?? 0) === 0) {
          this.setStatus(task, 'failed', { stage: 'images', message: 'No image could be made for any persona.' });
          return 'failed';
        }
        this.setStatus(task, 'completed');
        return 'completed';
      }
      return null;
    });
    if (!next) return;
    this.log.info({ taskId, status: next }, 'task status');
    await this.notifyTask(taskId);
    if (next === 'generating-images') await this.enqueueImages(taskId);
    else await this.schedule(); // a slot is free
  }

  private setStatus(task: TaskEntity, status: TaskStatus, log?: Omit<ErrorLogEntry, 'at'>): void {
    assertTransition(task.status, status);
    task.status = status;
    if (status === 'completed' || status === 'failed' || status === 'cancelled') task.finishedAt = new Date();
    if (log) task.errorLog = [...task.errorLog, { at: now(), ...log }];
  }

  /** Re-sends lost jobs, settles jobs pg-boss gave up on, and advances finished stages. */
  async reconcile(): Promise<void> {
    await this.schedule();
    const active = await this.em.execute(
      `select id, status, run from generation_tasks where status in ('generating-data', 'data-generated', 'generating-images')`,
    );
    for (const task of active) {
      if (task.status === 'generating-data') {
        await this.settleAbandoned(task.id, task.run, 'batches');
        await this.enqueueBatches(task.id);
      } else if (task.status === 'generating-images') {
        await this.settleAbandoned(task.id, task.run, 'images');
        await this.enqueueImages(task.id);
      }
      await this.advance(task.id);
    }
  }

  /** Work whose job pg-boss failed for good (its workers kept dying) is marked failed, so the task can finish. */
  private async settleAbandoned(taskId: string, run: number, kind: 'batches' | 'images'): Promise<void> {
    const em = this.em;
    if (kind === 'batches') {
      const rows = await em.execute(
        `select batch_no from persona_batches where task_id = ? and status = 'pending'`,
        [taskId],
      );
      const ids = rows.map((r) => stableUuid('batch', taskId, run, r.batch_no));
      const failed = await this.failedJobIds(QUEUE_BATCHES, ids);
      for (const row of rows) {
        if (!failed.has(stableUuid('batch', taskId, run, row.batch_no))) continue;
        await this.finishBatch(taskId, row.batch_no, [], 0, 'The job was abandoned: its worker stopped repeatedly.');
      }
    } else {
      const rows = await em.execute(`select id from personas where task_id = ? and images_status = 'pending'`, [taskId]);
      const ids = rows.map((r) => stableUuid('images', taskId, run, r.id));
      const failed = await this.failedJobIds(QUEUE_IMAGES, ids);
      for (const row of rows) {
        if (!failed.has(stableUuid('images', taskId, run, row.id))) continue;
        await this.finishPersonaImages(taskId, row.id, 'The job was abandoned: its worker stopped repeatedly.');
      }
    }
  }

  private async failedJobIds(queue: string, ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    // pg-boss 10 keeps jobs in pgboss.job; failed ones stay there until archived.
    const rows = await this.em.execute(
      `select id::text as id from pgboss.job where name = ? and state = 'failed' and id::text in (?)`,
      [queue, ids],
    );
    return new Set(rows.map((r) => r.id));
  }

  // ---------------------------------------------------------------- cancellation

  private track(taskId: string): AbortController {
    const controller = new AbortController();
    let set = this.controllers.get(taskId);
    if (!set) {
      set = new Set();
      this.controllers.set(taskId, set);
    }
    set.add(controller);
    return controller;
  }

  private untrack(taskId: string, controller: AbortController): void {
    const set = this.controllers.get(taskId);
    set?.delete(controller);
    if (set?.size === 0) this.controllers.delete(taskId);
  }

  private abortTask(taskId: string): void {
    for (const controller of this.controllers.get(taskId) ?? []) controller.abort();
  }

  /** Tells every process that the task was cancelled (in-flight calls are aborted) and frees its slot. */
  async cancelled(taskId: string): Promise<void> {
    await this.em.execute('select pg_notify(?, ?)', [CHANNEL_CANCEL, taskId]);
    this.abortTask(taskId);
    await this.notifyTask(taskId);
    await this.schedule();
  }

  async notifyTask(taskId: string): Promise<void> {
    await this.em.execute('select pg_notify(?, ?)', [CHANNEL_TASK, taskId]);
    // This process hears it at once too (the NOTIFY echo comes a moment later, a harmless repeat),
    // so a cache here never serves a task this process has just changed.
    this.events.emit('task', taskId);
  }

  private async appendLog(taskId: string, entry: Omit<ErrorLogEntry, 'at'>): Promise<void> {
    await this.em.execute(
      `update generation_tasks set error_log = error_log || ?::jsonb, updated_at = now() where id = ?`,
      [JSON.stringify([{ at: now(), ...entry }]), taskId],
    );
  }

  // ---------------------------------------------------------------- persona stage

  private async runBatch(job: BatchJob): Promise<void> {
    const em = this.em;
    const task = await this.loadTask(em, job.taskId);
    if (!task || task.status !== 'generating-data' || task.run !== job.run) return;
    const [batch] = await em.execute('select size, status from persona_batches where task_id = ? and batch_no = ?', [
      job.taskId,
      job.batchNo,
    ]);
    if (!batch || batch.status !== 'pending') {
      await this.advance(job.taskId);
      return;
    }
    const controller = this.track(job.taskId);
    const { config } = this.options;
    try {
      const settings = task.settings;
      const result = await withRetry(
        () =>
          this.personaLimit(() =>
            this.options.ports.personaProvider.generate({
              count: batch.size,
              description: task.description,
              language: { code: task.languageCode, name: task.languageName },
              bioInstructions: bioInstructions(settings),
              seed: `${task.id}:${job.batchNo}`,
              signal: controller.signal,
            }),
          ),
        {
          attempts: config.JOB_RETRY_LIMIT,
          baseDelayMs: config.JOB_RETRY_DELAY_MS,
          signal: controller.signal,
          onRetry: (error, attempt, waitMs) =>
            this.log.warn({ taskId: task.id, batch: job.batchNo, attempt, waitMs, error: describeError(error) }, 'persona batch retry'),
        },
      );
      // Validate again at our edge: a plugin's answer is input like any other.
      const personas: PersonaData[] = [];
      const reasons: string[] = result.rejected.map((r) => r.reason);
      for (const candidate of result.personas) {
        const normalized = normalizePersona(candidate);
        if (normalized.ok) personas.push(normalized.persona);
        else reasons.push(normalized.reason);
      }
      const stored = personas.slice(0, batch.size);
      const message =
        stored.length < batch.size
          ? `Batch ${job.batchNo + 1}: ${stored.length} of ${batch.size} personas${
              reasons.length ? ` (${reasons.length} rejected: ${[...new Set(reasons)].slice(0, 3).join('; ')})` : ''
            }`
          : null;
      await this.finishBatch(job.taskId, job.batchNo, stored, reasons.length, message && this.redact(message));
    } catch (error) {
      if (error instanceof CancelledError || controller.signal.aborted) return;
      const message = this.redact(`Batch ${job.batchNo + 1} failed: ${describeError(error)}`);
      this.log.warn({ taskId: job.taskId, batch: job.batchNo, error: describeError(error) }, 'persona batch failed');
      await this.finishBatch(job.taskId, job.batchNo, [], 0, message, true);
    } finally {
      this.untrack(job.taskId, controller);
    }
    await this.advance(job.taskId);
  }

  /** Stores a batch's personas and closes the batch in one transaction; a second run finds it closed. */
  private async finishBatch(
    taskId: string,
    batchNo: number,
    personas: PersonaData[],
    rejected: number,
    message: string | null,
    failed = false,
  ): Promise<void> {
    const closed = await this.em.transactional(async (em) => {
      const rows = await em.execute(
        `update persona_batches set status = ?, received = ?, rejected = ?, error = ?, updated_at = now()
         where task_id = ? and batch_no = ? and status = 'pending' returning batch_no`,
        [failed || personas.length === 0 ? 'failed' : 'done', personas.length, rejected, message, taskId, batchNo],
      );
      if (rows.length === 0) return false;
      if (personas.length > 0) {
        await em.upsertMany(
          Persona,
          personas.map((p, batchIndex) => ({
            taskId,
            batchNo,
            batchIndex,
            ...personaColumns(p),
            prompts: [],
            imagesStatus: 'pending' as const,
            createdAt: new Date(),
          })),
          { onConflictFields: ['taskId', 'batchNo', 'batchIndex'], onConflictAction: 'ignore' },
        );
      }
      if (message) {
        await em.execute(
          `update generation_tasks set error_log = error_log || ?::jsonb, updated_at = now() where id = ?`,
          [JSON.stringify([{ at: now(), stage: 'personas', message }]), taskId],
        );
      }
      return true;
    });
    if (closed) await this.notifyTask(taskId);
  }

  // ---------------------------------------------------------------- image stage

  private async runImages(job: ImagesJob): Promise<void> {
    const em = this.em;
    const task = await this.loadTask(em, job.taskId);
    if (!task || task.status !== 'generating-images' || task.run !== job.run) return;
    const persona = await em.findOne(Persona, { id: job.personaId, taskId: job.taskId });
    if (!persona || persona.imagesStatus !== 'pending') {
      await this.advance(job.taskId);
      return;
    }
    const controller = this.track(job.taskId);
    try {
      const problem = await this.makeImages(task, persona, controller.signal);
      await this.finishPersonaImages(task.id, persona.id, problem);
    } catch (error) {
      if (error instanceof CancelledError || controller.signal.aborted) return;
      await this.finishPersonaImages(task.id, persona.id, describeError(error));
    } finally {
      this.untrack(job.taskId, controller);
    }
    await this.advance(job.taskId);
  }

  private retrying<T>(fn: () => Promise<T>, signal: AbortSignal, what: Record<string, unknown>): Promise<T> {
    const { config } = this.options;
    return withRetry(fn, {
      attempts: config.JOB_RETRY_LIMIT,
      baseDelayMs: config.JOB_RETRY_DELAY_MS,
      signal,
      onRetry: (error, attempt, waitMs) => this.log.warn({ ...what, attempt, waitMs, error: describeError(error) }, 'retry'),
    });
  }

  /**
   * One persona's images: base selfie (stored at once), prompts (each asked with the previous ones,
   * stored as they come), then one grid per prompt in parallel, each split, cleaned and stored.
   * Returns null when every grid was stored, else what went wrong. Finished parts are never redone.
   */
  private async makeImages(task: TaskEntity, row: PersonaEntity, signal: AbortSignal): Promise<string | null> {
    const { ports } = this.options;
    const settings: Settings = task.settings;
    const em = this.em;
    const personaId = row.id;
    const persona = personaData(row);
    const seed = `${task.id}:${personaId}`;
    const what = { taskId: task.id, personaId };
    const prefix = `tasks/${task.storagePrefix}/${personaId}`;

    let base: EncodedImage;
    if (row.baseImageKey) {
      base = { data: await readObject(ports.objectStorage, row.baseImageKey), contentType: 'image/png' };
      base.contentType = readImageInfo(base.data).contentType;
    } else {
      const result = await this.retrying(
        () =>
          this.imageLimit(async () => {
            const made = settings.randomize_face_base
              ? await baseImageWithFaces({
                  imageProvider: ports.imageProvider,
                  faceSource: ports.faceSource,
                  persona,
                  seed,
                  genderLock: settings.randomize_face_gender_lock,
                  signal,
                  onFlag: (flag) => this.flagFace(task.id, personaId, flag.faceKey, flag.reason),
                  onFaceSourceProblem: (message) => this.log.warn(what, message),
                })
              : { image: await ports.imageProvider.baseImage({ persona, seed, signal }), faceKey: null };
            return { ...made, image: checkedImage(made.image, 'base image') };
          }),
        signal,
        what,
      );
      base = result.image;
      const key = `${prefix}/base-${ulid()}.${extensionFor(base.contentType)}`;
      await ports.objectStorage.put(key, base.data, { contentType: base.contentType, cacheControl: CACHE_IMMUTABLE });
      await em.execute('update personas set base_image_key = ?, base_face_key = ? where id = ?', [
        key,
        result.faceKey,
        personaId,
      ]);
      await this.notifyTask(task.id);
    }

    const grids = task.imagesPerPersona / 4;
    const prompts = [...row.prompts];
    while (prompts.length < grids) {
      throwIfAborted(signal);
      const prompt = await this.retrying(
        async () => {
          const text = await ports.imagePromptProvider.nextPrompt({ persona, previousPrompts: prompts, seed, signal });
          if (typeof text !== 'string' || text.trim() === '') {
            throw new InvalidResponseError('prompt provider', 'The prompt provider returned an empty prompt');
          }
          return text.trim();
        },
        signal,
        what,
      );
      prompts.push(prompt);
      await em.execute('update personas set prompts = ?::jsonb where id = ?', [JSON.stringify(prompts), personaId]);
    }

    const done = new Set(
      (await em.execute('select grid_no from persona_images where persona_id = ?', [personaId])).map((r) => r.grid_no),
    );
    const results = await Promise.allSettled(
      prompts.slice(0, grids).map(async (prompt, gridNo) => {
        if (done.has(gridNo)) return;
        const cells = await this.retrying(
          async () => {
            const grid = await this.imageLimit(() =>
              ports.imageProvider.gridFromBase({ persona, base, prompt, seed: `${seed}:${gridNo}`, signal }),
            );
            checkedImage(grid, 'grid');
            try {
              return await ports.imageProcessor.processGrid(grid.data, {
                cropWhiteBorders: settings.crop_white_borders,
                styleSeed: settings.randomize_image_style ? `${seed}:${gridNo}` : null,
                signal,
              });
            } catch (error) {
              // The service's image could not be processed: ask for another one.
              if (error instanceof InvalidImageError) {
                throw new InvalidResponseError('image provider', `Unusable grid image: ${error.message}`);
              }
              throw error;
            }
          },
          signal,
          { ...what, gridNo },
        );
        throwIfAborted(signal);
        if (cells.length !== 4) throw new InvalidResponseError('image processor', `Grid gave ${cells.length} cells, not 4`);
        const rows = [];
        for (const [cell, image] of cells.entries()) {
          const key = `${prefix}/${ulid()}.${extensionFor(image.contentType)}`;
          await ports.objectStorage.put(key, image.data, { contentType: image.contentType, cacheControl: CACHE_IMMUTABLE });
          rows.push({
            personaId,
            idx: gridNo * 4 + cell,
            taskId: task.id,
            gridNo,
            key,
            contentType: image.contentType,
            width: image.width,
            height: image.height,
            style: image.style,
            createdAt: new Date(),
          });
        }
        await this.em.upsertMany(PersonaImage, rows, { onConflictFields: ['personaId', 'idx'], onConflictAction: 'ignore' });
        await this.notifyTask(task.id);
      }),
    );
    throwIfAborted(signal);
    const failures = results.flatMap((r, gridNo) =>
      r.status === 'rejected' ? [`grid ${gridNo + 1}: ${describeError(r.reason)}`] : [],
    );
    return failures.length ? failures.join('; ') : null;
  }

  private async flagFace(taskId: string, personaId: number, faceKey: string, reason: string): Promise<void> {
    await this.em.execute(
      `insert into image_flags (kind, face_key, task_id, persona_id, reason) values ('moderation-block', ?, ?, ?, ?)`,
      [faceKey, taskId, personaId, reason],
    );
  }

  private async finishPersonaImages(taskId: string, personaId: number, problem: string | null): Promise<void> {
    const rows = await this.em.execute(
      `update personas set images_status = ?, images_error = ? where id = ? and images_status = 'pending' returning first_name, last_name`,
      [problem ? 'failed' : 'done', problem && this.redact(problem), personaId],
    );
    if (problem && rows[0]) {
      await this.appendLog(taskId, {
        stage: 'images',
        message: this.redact(`${rows[0].first_name} ${rows[0].last_name} (#${personaId}): ${problem}`),
      });
    }
    await this.notifyTask(taskId);
  }
}

const CACHE_IMMUTABLE = 'public, max-age=31536000, immutable';

function checkedImage(image: EncodedImage, what: string): EncodedImage {
  try {
    const info = readImageInfo(image.data);
    return { data: image.data, contentType: info.contentType };
  } catch (error) {
    throw new InvalidResponseError('image provider', `The ${what} is not an image: ${describeError(error)}`);
  }
}

