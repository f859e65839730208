import { LockMode } from '@mikro-orm/core';
import { EventEmitter } from 'node:events';
import type { EntityManager } from '@mikro-orm/postgresql';
import pLimit, { type LimitFunction } from 'p-limit';
import pg from 'pg';
import PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import { type AvatarGenConfig, createRedactor } from '../config.js';
import { type ErrorLogEntry, GenerationTask, Persona, type PersonaEntity, PersonaImage, type TaskEntity } from '../db/entities.js';
import type { Orm } from '../db/orm.js';
import { normalizePersona, type PersonaData } from '../domain/persona.js';
import { bioInstructions, imageOutputOf, type Settings } from '../domain/settings.js';
import { assertTransition, isActive, isFinal, type TaskStatus } from '../domain/status.js';
import {
  CancelledError,
  describeError,
  InvalidImageError,
  InvalidResponseError,
  ModerationError,
  isDatabaseUnavailable,
  StorageError,
  throwIfAborted,
} from '../errors.js';
import { extensionFor, readImageInfo } from '../image-info.js';
import type {
  EncodedImage,
  FaceSource,
  ImageOutputOptions,
  ImageProcessor,
  ImagePromptProvider,
  ImageProvider,
  ObjectStorage,
  PersonaProvider,
  PersonaBatch,
  Pictures,
  ReferenceFace,
  UsageListener,
} from '../ports.js';
import { personaColumns, personaData } from '../services/views.js';
import { readObject } from '../storage/read.js';
import { withRetry } from '../util.js';
import { baseImageWithFaces } from './faces.js';
import type { PortName } from '../ports.js';
import type { PortOwner } from '../plugin.js';
import { insertXmp, type Provenance, type ProvenanceProvider, renderXmp, signProvenance } from '../provenance.js';

/** A reported token count as a whole, non-negative number (a provider's odd value must not fail the upsert). */
function tokens(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.round(value) : 0;
}

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
  /** Variables whose values are redacted from error messages (core's and the plugins'). */
  secrets?: readonly string[];
  logger: Logger;
  ports: PipelinePorts;
  /** Which plugin filled each port (PluginContainer.owners): named in the provenance marks. */
  owners?: Partial<Record<PortName, PortOwner>>;
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

/** A job this process ran whose end it could not record (the database was away): recorded later. */
interface Unsettled {
  queue: string;
  id: string;
  /** complete: the work is recorded in the rows, or the rows say what is left and reconcile resends it. */
  outcome: 'complete' | 'fail';
  error?: string;
}

/** After this many jobs of one unit of work failed for good (their workers kept dying), the unit is given up. */
const ABANDON_AFTER_FAILED_JOBS = 2;

/**
 * The generation pipeline on pg-boss. The database is the truth: every job looks at the rows
 * before it works and writes its result under unique keys (task+batch, persona+image index), so
 * a job that runs twice (a worker died, a reconcile re-sent it) never duplicates anything.
 *
 * It outlives PostgreSQL restarts and outages: a job interrupted by one is left to the reconcile
 * (which sends a new job for every unit of work that has none), the notification listener
 * reconnects and subscribes again, and job ends that could not be recorded are recorded later.
 */
export class Pipeline {
  readonly events = new EventEmitter();
  private readonly boss: PgBoss;
  private readonly log: Logger;
  private readonly personaLimit: LimitFunction;
  private readonly imageLimit: LimitFunction;
  private readonly controllers = new Map<string, Set<AbortController>>();
  /** Sleeping work loops per queue: new work wakes them at once instead of after the polling interval. */
  private readonly sleepers = new Map<string, Set<() => void>>();
  private readonly loops: Promise<void>[] = [];
  private readonly unsettled: Unsettled[] = [];
  /** Jobs this process is running now, by id: failed back to the queue when a stop times out. */
  private readonly held = new Map<string, string>();
  /** A small pool of our own for the enqueue transactions (pg-boss's pool is its own). */
  private pool: pg.Pool | undefined;
  private listener: pg.Client | undefined;
  private listenerRetry: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private started = false;
  private working = false;
  /** True from the first "database unavailable" error until the database answers again (one log line each way). */
  private databaseAway = false;
  /** Error log entries are shown on pages: no secret may reach them, whatever a plugin put in a message. */
  private readonly redact: (text: string) => string;

  constructor(private readonly options: PipelineOptions) {
    this.log = options.logger.child({ component: 'pipeline' });
    this.redact = createRedactor(options.config, options.secrets);
    this.boss = new PgBoss({
      connectionString: options.databaseUrl,
      max: 4,
      maintenanceIntervalSeconds: options.maintenanceIntervalSeconds ?? 60,
    });
    this.boss.on('error', (error: Error) => this.databaseTrouble(error, 'queue error'));
    this.personaLimit = pLimit(options.config.MULTITHREAD_FLOWISE);
    this.imageLimit = pLimit(options.config.IMAGE_CONCURRENCY);
    this.events.setMaxListeners(0);
  }

  private get em(): EntityManager {
    return this.options.orm.em.fork() as EntityManager;
  }

  /** Logs a database outage once (then quietly), and anything else as the error it is. */
  private databaseTrouble(error: unknown, what: string): void {
    if (isDatabaseUnavailable(error)) {
      if (!this.databaseAway) this.log.warn({ error: describeError(error) }, `${what}: the database is unavailable; waiting for it`);
      else this.log.debug({ error: describeError(error) }, what);
      this.databaseAway = true;
      return;
    }
    this.log.error({ err: error }, what);
  }

  private databaseBack(): void {
    if (!this.databaseAway) return;
    this.databaseAway = false;
    this.log.warn('the database is reachable again');
  }

  /** Connects the queue and the notification listener. Every process that submits or watches tasks calls this. */
  async start(): Promise<void> {
    if (this.started) return;
    // Processes starting together would deadlock while pg-boss creates its schema and queues:
    // one at a time, under a session lock on a connection of its own.
    const lock = new pg.Client({ connectionString: this.options.databaseUrl });
    lock.on('error', (error) => this.databaseTrouble(error, 'queue setup connection error'));
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
      await lock.end().catch(() => undefined);
    }
    this.pool = new pg.Pool({ connectionString: this.options.databaseUrl, max: 2, idleTimeoutMillis: 10_000 });
    this.pool.on('error', (error) => this.databaseTrouble(error, 'pipeline connection error'));
    this.started = true;
    await this.connectListener();
  }

  /**
   * LISTENs for cancels and task changes on a connection of its own. When that connection is lost
   * (a database restart), it reconnects with backoff and subscribes again; notifications sent
   * meanwhile are lost, so it then emits 'resync' (caches drop everything) and re-checks the
   * tasks this process is working on for a cancel it missed.
   */
  private async connectListener(attempt = 0): Promise<void> {
    const client = new pg.Client({ connectionString: this.options.databaseUrl });
    let lost = false;
    const onLost = (error?: Error) => {
      if (lost) return;
      lost = true;
      // A connection that was up starts the backoff afresh; a failed try waits longer than the last.
      const wasUp = this.listener === client;
      if (wasUp) this.listener = undefined;
      client.end().catch(() => undefined);
      if (!this.started) return;
      if (error) this.databaseTrouble(error, 'notification listener lost');
      const next = wasUp ? 1 : attempt + 1;
      const wait = Math.min(250 * 2 ** Math.min(next - 1, 6), 10_000);
      this.listenerRetry = setTimeout(() => void this.connectListener(next), wait);
    };
    client.on('error', onLost);
    client.on('end', () => onLost(new Error('Connection terminated')));
    client.on('notification', (message) => {
      if (!message.payload) return;
      if (message.channel === CHANNEL_CANCEL) this.abortTask(message.payload);
      if (message.channel === CHANNEL_TASK) this.events.emit('task', message.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL_CANCEL}`);
      await client.query(`LISTEN ${CHANNEL_TASK}`);
    } catch (error) {
      if (attempt === 0 && !isDatabaseUnavailable(error)) {
        lost = true;
        await client.end().catch(() => undefined);
        throw error; // a first start with a wrong URL or password is a configuration error
      }
      onLost(error as Error);
      return;
    }
    if (!this.started) {
      await client.end().catch(() => undefined);
      return;
    }
    this.listener = client;
    if (attempt > 0) {
      this.databaseBack();
      this.log.info('notification listener reconnected');
      this.events.emit('resync');
      void this.afterReconnect();
    }
  }

  /** After an outage: cancels missed while away take effect, job ends are recorded, lost work is resent. */
  private async afterReconnect(): Promise<void> {
    try {
      const ids = [...this.controllers.keys()];
      if (ids.length > 0) {
        const rows = await this.em.execute(`select id, status from generation_tasks where id in (?)`, [ids]);
        const live = new Map(rows.map((r) => [r.id as string, r.status as TaskStatus]));
        for (const id of ids) {
          const status = live.get(id);
          if (!status || !isActive(status)) this.abortTask(id);
        }
      }
      if (this.working) await this.reconcile();
    } catch (error) {
      this.databaseTrouble(error, 'resync after reconnect failed');
    }
  }

  /** Starts taking work: persona batches and persona images, and a periodic reconcile. */
  async startWorker(): Promise<void> {
    await this.start();
    if (this.working) return;
    this.working = true;
    const pollingMs = (this.options.pollingIntervalSeconds ?? 2) * 1000;
    // One work loop per call allowed in flight: at most MULTITHREAD_FLOWISE persona calls per process.
    for (let i = 0; i < this.options.config.MULTITHREAD_FLOWISE; i++) {
      this.loops.push(this.workLoop<BatchJob>(QUEUE_BATCHES, pollingMs, (job) => this.runBatch(job)));
    }
    for (let i = 0; i < this.options.config.IMAGE_JOBS_PER_WORKER; i++) {
      this.loops.push(this.workLoop<ImagesJob>(QUEUE_IMAGES, pollingMs, (job) => this.runImages(job)));
    }
    const interval = this.options.reconcileIntervalMs ?? 30_000;
    const tick = () => {
      this.reconcile()
        .catch((error) => this.databaseTrouble(error, 'reconcile failed'))
        .finally(() => {
          if (this.working) this.reconcileTimer = setTimeout(tick, interval);
        });
    };
    tick();
  }

  /**
   * One job at a time from `queue`: fetch, run, record its end. Our own loop over pg-boss's
   * fetch/complete/fail rather than `boss.work()`, whose loop records a job's end without awaiting
   * it: with the database away that is an unhandled rejection, and the process dies.
   */
  private async workLoop<T extends object>(queue: string, pollingMs: number, run: (data: T) => Promise<void>): Promise<void> {
    let failures = 0;
    while (this.working) {
      let job: { id: string; data: T } | undefined;
      try {
        [job] = await this.boss.fetch<T>(queue, { batchSize: 1 });
        failures = 0;
      } catch (error) {
        this.databaseTrouble(error, 'fetching a job failed');
        await this.sleep(queue, Math.min(500 * 2 ** Math.min(failures++, 5), 10_000));
        continue;
      }
      if (!job) {
        await this.sleep(queue, pollingMs);
        continue;
      }
      let outcome: Unsettled;
      this.held.set(job.id, queue);
      try {
        await run(job.data);
        outcome = { queue, id: job.id, outcome: 'complete' };
      } catch (error) {
        if (isDatabaseUnavailable(error)) {
          // The rows still say what is left: the reconcile sends a new job for it once the database
          // is back. Completing this one keeps its retries for workers that die.
          this.databaseTrouble(error, 'a job was interrupted');
          outcome = { queue, id: job.id, outcome: 'complete' };
        } else {
          this.log.error({ err: error, queue }, 'job failed');
          outcome = { queue, id: job.id, outcome: 'fail', error: describeError(error) };
        }
      }
      this.held.delete(job.id);
      await this.settle(outcome);
    }
  }

  private async settle(job: Unsettled): Promise<void> {
    try {
      if (job.outcome === 'complete') await this.boss.complete(job.queue, job.id);
      else await this.boss.fail(job.queue, job.id, { message: job.error });
    } catch (error) {
      this.databaseTrouble(error, 'recording the end of a job failed');
      this.unsettled.push(job);
    }
  }

  /** Records the job ends that an outage kept this process from recording. */
  private async settleLater(): Promise<void> {
    const jobs = this.unsettled.splice(0);
    for (const job of jobs) await this.settle(job);
  }

  private sleep(queue: string, ms: number): Promise<void> {
    return new Promise((resolveSleep) => {
      let set = this.sleepers.get(queue);
      if (!set) {
        set = new Set();
        this.sleepers.set(queue, set);
      }
      const wake = () => {
        clearTimeout(timer);
        set.delete(wake);
        resolveSleep();
      };
      const timer = setTimeout(wake, ms);
      set.add(wake);
    });
  }

  private wake(queue: string): void {
    for (const wake of [...(this.sleepers.get(queue) ?? [])]) wake();
  }

  /** Stops taking work; running jobs finish (or go back to the queue after `timeoutMs`). */
  async stop(timeoutMs = 30_000): Promise<void> {
    this.working = false;
    if (this.reconcileTimer) clearTimeout(this.reconcileTimer);
    this.wake(QUEUE_BATCHES);
    this.wake(QUEUE_IMAGES);
    const loops = this.loops.splice(0);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((r) => {
      timer = setTimeout(r, timeoutMs);
    });
    await Promise.race([Promise.all(loops), timedOut]);
    clearTimeout(timer);
    // Jobs still running go back to the queue now rather than when they expire.
    for (const [id, queue] of this.held) {
      await this.boss.fail(queue, id, { message: 'The worker stopped while the job ran.' }).catch(() => undefined);
    }
    this.held.clear();
    await this.close(false);
  }

  /** Stops at once without waiting for running jobs; they go back to the queue when they expire. */
  async kill(): Promise<void> {
    this.working = false;
    if (this.reconcileTimer) clearTimeout(this.reconcileTimer);
    for (const set of this.controllers.values()) for (const c of set) c.abort();
    this.wake(QUEUE_BATCHES);
    this.wake(QUEUE_IMAGES);
    this.loops.splice(0);
    await this.close(true);
  }

  private async close(now: boolean): Promise<void> {
    if (!this.started) return;
    this.started = false;
    if (this.listenerRetry) clearTimeout(this.listenerRetry);
    await this.boss.stop({ graceful: !now, wait: true, close: true, timeout: 5_000 }).catch((error) => this.databaseTrouble(error, 'stopping the queue'));
    await this.listener?.end().catch(() => undefined);
    this.listener = undefined;
    await this.pool?.end().catch(() => undefined);
    this.pool = undefined;
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
      await this.enqueue(id);
      await this.advance(id);
    }
    return started;
  }

  private async loadTask(em: EntityManager, id: string, lock = false): Promise<TaskEntity | null> {
    return em.findOne(GenerationTask, { id }, lock ? { lockMode: LockMode.PESSIMISTIC_WRITE } : {});
  }

  /**
   * Sends a job for every unit of work of the task's current stage (a pending persona batch, a
   * persona whose images are pending) that has no job queued or running: at the start of a stage,
   * and from the reconcile for work whose job was lost (its worker died for good, or an outage
   * interrupted it). A unit whose jobs failed for good too often (each one killed its worker) is
   * given up instead, so one poison job cannot loop for ever. Under a per-task lock, so two
   * processes never send the same work twice.
   */
  private async enqueue(taskId: string): Promise<void> {
    const pool = this.pool;
    if (!pool) return;
    const client = await pool.connect();
    let queue: string | undefined;
    const abandoned: Array<{ kind: 'batch' | 'images'; unit: number }> = [];
    let sent = 0;
    try {
      await client.query('begin');
      await client.query(`select pg_advisory_xact_lock(hashtext('avatargen-enqueue:' || $1))`, [taskId]);
      const { rows: tasks } = await client.query('select status, run from generation_tasks where id = $1', [taskId]);
      const task = tasks[0] as { status: TaskStatus; run: number } | undefined;
      const stage = task?.status === 'generating-data' ? 'batch' : task?.status === 'generating-images' ? 'images' : null;
      if (task && stage) {
        queue = stage === 'batch' ? QUEUE_BATCHES : QUEUE_IMAGES;
        const unitColumn = stage === 'batch' ? 'batchNo' : 'personaId';
        const pending =
          stage === 'batch'
            ? `select batch_no as unit from persona_batches where task_id = $1 and status = 'pending'`
            : `select id as unit from personas where task_id = $1 and images_status = 'pending'`;
        // pgboss.job is pg-boss's documented job table; data is the job's JSON payload. One pass
        // over this task's jobs of this run (not one per unit: the reconcile runs this often).
        const { rows } = await client.query(
          `with pending as (${pending}),
                jobs as (select (j.data->>'${unitColumn}')::int as unit,
                                count(*) filter (where j.state in ('created', 'retry', 'active'))::int as live,
                                count(*) filter (where j.state = 'failed')::int as failed
                         from pgboss.job j
                         where j.name = $2 and j.state in ('created', 'retry', 'active', 'failed')
                           and j.data->>'taskId' = $1 and (j.data->>'run')::int = $3
                         group by 1)
           select u.unit, coalesce(jobs.live, 0) > 0 as live, coalesce(jobs.failed, 0) as failed
           from pending u left join jobs on jobs.unit = u.unit order by u.unit`,
          [taskId, queue, task.run],
        );
        const jobs: Array<{ name: string; data: BatchJob | ImagesJob; expireInSeconds: number }> = [];
        for (const row of rows as Array<{ unit: number; live: boolean; failed: number }>) {
          if (row.live) continue;
          if (row.failed >= ABANDON_AFTER_FAILED_JOBS) {
            abandoned.push({ kind: stage, unit: row.unit });
            continue;
          }
          const data = stage === 'batch' ? { taskId, batchNo: row.unit, run: task.run } : { taskId, personaId: row.unit, run: task.run };
          jobs.push({ name: queue, data, expireInSeconds: this.options.config.JOB_EXPIRE_SECONDS });
        }
        if (jobs.length > 0) {
          await this.boss.insert(jobs, { db: { executeSql: (text: string, values: unknown[]) => client.query(text, values) } });
        }
        sent = jobs.length;
      }
      await client.query('commit');
    } catch (error) {
      await client.query('rollback').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
    if (queue && sent > 0) this.wake(queue);
    const message = 'Given up: its job stopped its worker repeatedly.';
    for (const { kind, unit } of abandoned) {
      if (kind === 'batch') await this.finishBatch(taskId, unit, [], 0, `Batch ${unit + 1}: ${message}`, true);
      else await this.finishPersonaImages(taskId, unit, message);
    }
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
        const [c] = await em.execute(
          `select (select count(*)::int from personas where task_id = ?) as personas,
                  (select count(*) filter (where images_status = 'pending')::int from personas where task_id = ?) as pending,
                  (select count(*)::int from persona_images where task_id = ?) as images`,
          [taskId, taskId, taskId],
        );
        if ((c?.pending ?? 0) > 0) return null;
        const personas: number = c?.personas ?? 0;
        const images: number = c?.images ?? 0;
        if (images === 0) {
          this.setStatus(task, 'failed', { stage: 'images', message: 'No image could be made for any persona.' });
          return 'failed';
        }
        // Completed means complete: every persona asked for, each with every image.
        const expectedImages = task.count * task.imagesPerPersona;
        if (personas < task.count || images < expectedImages) {
          this.setStatus(task, 'partial', {
            stage: 'task',
            message: `Ended with something missing: ${personas} of ${task.count} personas, ${images} of ${expectedImages} images. Retry makes only what is missing.`,
          });
          return 'partial';
        }
        this.setStatus(task, 'completed');
        return 'completed';
      }
      return null;
    });
    if (!next) return;
    this.log.info({ taskId, status: next }, 'task status');
    await this.notifyTask(taskId);
    if (next === 'generating-images') await this.enqueue(taskId);
    else await this.schedule(); // a slot is free
  }

  private setStatus(task: TaskEntity, status: TaskStatus, log?: Omit<ErrorLogEntry, 'at'>): void {
    assertTransition(task.status, status);
    task.status = status;
    if (isFinal(status)) task.finishedAt = new Date();
    if (log) task.errorLog = [...task.errorLog, { at: now(), ...log }];
  }

  /** Records job ends an outage held back, starts pending tasks, resends lost jobs and advances finished stages. */
  async reconcile(): Promise<void> {
    await this.settleLater();
    await this.schedule();
    const active = await this.em.execute(
      `select id from generation_tasks where status in ('generating-data', 'data-generated', 'generating-images')`,
    );
    this.databaseBack();
    for (const task of active) {
      await this.enqueue(task.id);
      await this.advance(task.id);
    }
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
    const [batch] = await em.execute(
      `select b.size, b.status, count(p.id)::int as stored, coalesce(max(p.batch_index) + 1, 0)::int as next_index
       from persona_batches b left join personas p on p.task_id = b.task_id and p.batch_no = b.batch_no
       where b.task_id = ? and b.batch_no = ? group by b.size, b.status`,
      [job.taskId, job.batchNo],
    );
    if (!batch || batch.status !== 'pending') {
      await this.advance(job.taskId);
      return;
    }
    // A retried batch asks only for the personas it still lacks.
    const wanted: number = batch.size - batch.stored;
    const controller = this.track(job.taskId);
    try {
      if (wanted <= 0) {
        await this.finishBatch(job.taskId, job.batchNo, [], 0, null, false, batch.next_index);
        return;
      }
      const settings = task.settings;
      const seed = `${task.id}:${job.batchNo}${task.run > 0 && batch.stored > 0 ? `:${task.run}` : ''}`;
      const personas: PersonaData[] = [];
      const reasons: string[] = [];
      // A provider may answer with fewer personas than asked (a model that stopped early, a smaller
      // batch after a cut answer): ask again for the rest, while each round brings someone new.
      for (let round = 0; personas.length < wanted && round < Math.max(1, this.options.config.JOB_RETRY_LIMIT); round++) {
        let result: PersonaBatch;
        try {
          result = await this.retrying(
            () =>
              this.personaLimit(() =>
                this.withUsage(task.id, (onUsage) =>
                  this.options.ports.personaProvider.generate({
                    count: wanted - personas.length,
                    description: task.description,
                    language: { code: task.languageCode, name: task.languageName },
                    bioInstructions: bioInstructions(settings),
                    seed: round === 0 ? seed : `${seed}:rest${round}`,
                    signal: controller.signal,
                    onUsage,
                  }),
                ),
              ),
            controller.signal,
            { taskId: task.id, batch: job.batchNo, round },
          );
        } catch (error) {
          // The first answer's failure fails the batch; a later one keeps what earlier rounds got.
          if (round === 0 || error instanceof CancelledError || controller.signal.aborted || isDatabaseUnavailable(error)) throw error;
          reasons.push(`asking again for the rest failed: ${describeError(error)}`);
          break;
        }
        // Validate again at our edge: a plugin's answer is input like any other.
        reasons.push(...result.rejected.map((r) => r.reason));
        let added = 0;
        for (const candidate of result.personas) {
          const normalized = normalizePersona(candidate);
          if (!normalized.ok) reasons.push(normalized.reason);
          else if (personas.length < wanted) {
            personas.push(normalized.persona);
            added++;
          }
        }
        if (added === 0) break;
      }
      const stored = personas;
      const total = batch.stored + stored.length;
      const message =
        total < batch.size
          ? `Batch ${job.batchNo + 1}: ${total} of ${batch.size} personas${
              reasons.length ? ` (${reasons.length} rejected: ${[...new Set(reasons)].slice(0, 3).join('; ')})` : ''
            }`
          : null;
      await this.finishBatch(job.taskId, job.batchNo, stored, reasons.length, message && this.redact(message), false, batch.next_index);
    } catch (error) {
      if (error instanceof CancelledError || controller.signal.aborted) return;
      if (isDatabaseUnavailable(error)) throw error; // not the batch's fault: it is sent again
      const message = this.redact(`Batch ${job.batchNo + 1} failed: ${describeError(error)}`);
      this.log.warn({ taskId: job.taskId, batch: job.batchNo, error: describeError(error) }, 'persona batch failed');
      await this.finishBatch(job.taskId, job.batchNo, [], 0, message, true, batch.next_index);
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
    firstIndex = 0,
  ): Promise<void> {
    const closed = await this.em.transactional(async (em) => {
      const [row] = await em.execute(
        `select (select count(*)::int from personas where task_id = ? and batch_no = ?) as stored
         from persona_batches where task_id = ? and batch_no = ? and status = 'pending' for update`,
        [taskId, batchNo, taskId, batchNo],
      );
      if (!row) return false;
      const received: number = row.stored + personas.length;
      await em.execute(
        `update persona_batches set status = ?, received = ?, rejected = rejected + ?, error = ?, updated_at = now()
         where task_id = ? and batch_no = ?`,
        [failed || received === 0 ? 'failed' : 'done', received, rejected, message, taskId, batchNo],
      );
      if (personas.length > 0) {
        await em.upsertMany(
          Persona,
          personas.map((p, i) => ({
            taskId,
            batchNo,
            batchIndex: firstIndex + i,
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
      if (isDatabaseUnavailable(error)) throw error; // not the persona's fault: it is sent again
      await this.finishPersonaImages(task.id, persona.id, describeError(error));
    } finally {
      this.untrack(job.taskId, controller);
    }
    await this.advance(job.taskId);
  }

  /**
   * Runs one provider call with a usage listener that adds what the provider reports to the task's
   * totals (one upsert per report), and waits for those writes. Accounting never fails the call: a
   * write that fails is logged.
   */
  private async withUsage<T>(taskId: string, call: (onUsage: UsageListener) => Promise<T>): Promise<T> {
    const writes: Array<Promise<void>> = [];
    const onUsage: UsageListener = (usage) => {
      writes.push(
        this.em
          .execute(
            `insert into task_usage (task_id, provider, model, calls, input_tokens, output_tokens, images) values (?, ?, ?, 1, ?, ?, ?)
             on conflict (task_id, provider, model) do update set calls = task_usage.calls + 1,
               input_tokens = task_usage.input_tokens + excluded.input_tokens,
               output_tokens = task_usage.output_tokens + excluded.output_tokens,
               images = task_usage.images + excluded.images, updated_at = now()`,
            [taskId, String(usage.provider), String(usage.model), tokens(usage.inputTokens), tokens(usage.outputTokens), tokens(usage.images ?? 0)],
          )
          .then(
            () => undefined,
            (error: unknown) => this.log.warn({ taskId, usage, error: describeError(error) }, 'token usage not recorded'),
          ),
      );
    };
    try {
      return await call(onUsage);
    } finally {
      await Promise.all(writes);
    }
  }

  /**
   * Adds to one of a task's counters (task_counters: the dataset card's and the usage figures).
   * Like token usage, counting never fails the work: a write that fails is logged.
   */
  private async count(taskId: unknown, counter: 'images_requested' | 'images_made' | 'retries' | 'moderation_blocks', n = 1): Promise<void> {
    if (typeof taskId !== 'string' || n <= 0) return;
    await this.em
      .execute(
        `insert into task_counters (task_id, ${counter}) values (?, ?)
         on conflict (task_id) do update set ${counter} = task_counters.${counter} + excluded.${counter}`,
        [taskId, n],
      )
      .catch((error: unknown) => this.log.warn({ taskId, counter, error: describeError(error) }, 'task counter not recorded'));
  }

  /** A provider call: outages are ridden out for PROVIDER_RETRY_WINDOW_SECONDS, bad answers retried JOB_RETRY_LIMIT times. */
  private async retrying<T>(fn: () => Promise<T>, signal: AbortSignal, what: Record<string, unknown>): Promise<T> {
    const { config } = this.options;
    const retries: Array<Promise<void>> = [];
    try {
      return await withRetry(fn, {
        attempts: config.JOB_RETRY_LIMIT,
        baseDelayMs: config.JOB_RETRY_DELAY_MS,
        maxDelayMs: config.JOB_RETRY_MAX_DELAY_MS,
        windowMs: config.PROVIDER_RETRY_WINDOW_SECONDS * 1000,
        signal,
        onRetry: (error, attempt, waitMs) => {
          retries.push(this.count(what.taskId, 'retries'));
          this.log.warn({ ...what, attempt, waitMs, error: describeError(error) }, 'retry');
        },
      });
    } catch (error) {
      // A block is not retried: it ends here, counted once (blocked reference faces are counted in flagFace).
      if (error instanceof ModerationError) await this.count(what.taskId, 'moderation_blocks');
      throw error;
    } finally {
      await Promise.all(retries);
    }
  }

  /** The plugins (and models, when a provider describes itself) that make and process the pictures. */
  private providers(): ProvenanceProvider[] {
    const { ports, owners } = this.options;
    const used: Array<[PortName, object | undefined]> = [
      ['personaProvider', ports.personaProvider],
      ['imagePromptProvider', ports.imagePromptProvider],
      ['imageProvider', ports.imageProvider],
      ['imageProcessor', ports.imageProcessor],
      ['faceSource', ports.faceSource],
    ];
    return used.flatMap(([port, implementation]) => {
      if (!implementation) return [];
      const describe = (implementation as { describe?: () => { model?: string } }).describe;
      const model = typeof describe === 'function' ? describe.call(implementation).model : undefined;
      return [{ port, plugin: owners?.[port]?.plugin ?? 'unknown', ...(model ? { model } : {}) }];
    });
  }

  /**
   * The provider's base selfie with its mark: the XMP goes into the container as it is (PNG iTXt,
   * JPEG APP1, WebP XMP chunk), so the pixels are never encoded a second time.
   */
  private async marked(image: EncodedImage, provenance: Provenance, xmp: string): Promise<EncodedImage> {
    let data: Uint8Array;
    try {
      data = insertXmp(image.data, image.contentType, xmp);
    } catch (error) {
      throw new InvalidResponseError('image provider', `Cannot mark the base image (${image.contentType}): ${describeError(error)}`);
    }
    return signProvenance({ data, contentType: image.contentType }, provenance);
  }

  /** A storage call: a storage that refuses writes (read-only, full, S3 down) is waited out for STORAGE_RETRY_WINDOW_SECONDS. */
  private storing<T>(fn: () => Promise<T>, signal: AbortSignal, what: Record<string, unknown>): Promise<T> {
    const { config } = this.options;
    return withRetry(fn, {
      attempts: 1,
      baseDelayMs: Math.max(config.JOB_RETRY_DELAY_MS, 1),
      maxDelayMs: config.JOB_RETRY_MAX_DELAY_MS,
      windowMs: config.STORAGE_RETRY_WINDOW_SECONDS * 1000,
      signal,
      onRetry: (error, attempt, waitMs) => this.log.warn({ ...what, attempt, waitMs, error: describeError(error) }, 'storage retry'),
    });
  }

  /**
   * One persona's images: base selfie (stored at once), prompts (each asked with the previous ones,
   * stored as they come), then one grid per prompt in parallel, each split, cleaned and stored.
   * Returns null when every grid was stored, else what went wrong. Finished parts are never redone.
   * Keys are fixed per task, persona and image index, so a run cut short and run again overwrites
   * its objects instead of leaving orphans.
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

    const stored = imageOutputOf(settings);
    const output: ImageOutputOptions = {
      quality: stored.image_quality,
      size: stored.image_size,
      format: stored.image_output_format,
      compression: stored.image_output_compression,
      background: stored.image_background,
    };
    // Snapshots from before gender lock existed have no key: the setting's default (on).
    const genderLock = settings.randomize_face_gender_lock !== false;
    // Provenance marks (docs/provenance.md); snapshots from before the setting have it on.
    const provenance: Provenance | null =
      settings.provenance_marks === false ? null : { datasetId: task.id, personaId, providers: this.providers() };
    const xmp = provenance ? renderXmp(provenance) : undefined;
    let base: EncodedImage | undefined;
    let referenceFace: ReferenceFace | undefined;
    if (row.baseImageKey) {
      const key = row.baseImageKey;
      try {
        const data = await this.storing(() => readObject(ports.objectStorage, key), signal, { ...what, key });
        base = { data, contentType: readImageInfo(data).contentType };
      } catch (error) {
        // A base selfie lost from storage is made again; anything else stops this persona.
        if (!(error instanceof StorageError && error.notFound)) throw error;
        this.log.warn({ ...what, key }, 'the base image is missing from storage; making a new one');
      }
    }
    if (!base) {
      const result = await this.retrying(
        () =>
          this.imageLimit(() => this.withUsage(task.id, async (onUsage) => {
            await this.count(task.id, 'images_requested');
            const made = settings.randomize_face_base
              ? await baseImageWithFaces({
                  imageProvider: ports.imageProvider,
                  faceSource: ports.faceSource,
                  persona,
                  seed,
                  genderLock,
                  output,
                  signal,
                  onUsage,
                  onFlag: (flag) => this.flagFace(task.id, personaId, flag.faceKey, flag.reason),
                  onFaceSourceProblem: (message) => this.log.warn(what, message),
                })
              : { image: await ports.imageProvider.baseImage({ persona, output, seed, signal, onUsage }), faceKey: null, face: null };
            const checked = { ...made, image: checkedImage(made.image, 'base image') };
            await this.count(task.id, 'images_made');
            return checked;
          })),
        signal,
        what,
      );
      const image = provenance ? await this.marked(result.image, provenance, xmp as string) : result.image;
      base = image;
      referenceFace = result.face ?? undefined;
      const key = `${prefix}/base.${extensionFor(image.contentType)}`;
      await this.storing(
        () => ports.objectStorage.put(key, image.data, { contentType: image.contentType, cacheControl: CACHE_IMMUTABLE }),
        signal,
        { ...what, key },
      );
      await em.execute('update personas set base_image_key = ?, base_face_key = ? where id = ?', [key, result.faceKey, personaId]);
      await this.notifyTask(task.id);
    }
    const baseImage = base;
    if (!referenceFace && row.baseFaceKey && ports.faceSource?.face) {
      // Made in an earlier run: the face again, when the face source can find it by its key.
      const faceKey = row.baseFaceKey;
      const face = ports.faceSource.face;
      referenceFace =
        (await this.retrying(() => face.call(ports.faceSource, faceKey, { signal }), signal, { ...what, faceKey }).catch((error: unknown) => {
          throwIfAborted(signal);
          this.log.warn({ ...what, faceKey, error: describeError(error) }, 'the base face could not be read; pictures go without it');
          return null;
        })) ?? undefined;
    }
    // Gender lock keeps the pictures on the face the base was made from: both go to every request.
    const pictureFace = genderLock ? referenceFace : undefined;

    const grids = task.imagesPerPersona / 4;
    const prompts = [...row.prompts];
    while (prompts.length < grids) {
      throwIfAborted(signal);
      const prompt = await this.retrying(
        async () => {
          const text = await this.withUsage(task.id, (onUsage) =>
            ports.imagePromptProvider.nextPrompt({ persona, previousPrompts: prompts, seed, signal, onUsage }),
          );
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

    // A grid is done when all four of its cells have rows (a lost cell's row is removed by `doctor`).
    const done = new Set(
      (
        await em.execute('select grid_no from persona_images where persona_id = ? group by grid_no having count(*) >= 4', [personaId])
      ).map((r) => r.grid_no),
    );
    const results = await Promise.allSettled(
      prompts.slice(0, grids).map(async (prompt, gridNo) => {
        if (done.has(gridNo)) return;
        const cells = await this.retrying(
          async () => {
            const shotSeed = `${seed}:${gridNo}`;
            await this.count(task.id, 'images_requested', SHOTS);
            const answer = await this.imageLimit(() =>
              this.withUsage(task.id, (onUsage) =>
                ports.imageProvider.pictures({
                  persona,
                  base: baseImage,
                  referenceFace: pictureFace,
                  output,
                  prompt,
                  count: SHOTS,
                  seed: shotSeed,
                  signal,
                  onUsage,
                }),
              ),
            );
            const pictures = checkedPictures(answer, SHOTS);
            const crop = settings.crop_white_borders;
            const styleSeed = settings.randomize_image_style ? shotSeed : null;
            try {
              const processed =
                pictures.kind === 'grid'
                  ? await ports.imageProcessor.processGrid(pictures.image.data, {
                      rows: pictures.rows,
                      cols: pictures.cols,
                      cropWhiteBorders: crop,
                      styleSeed,
                      xmp,
                      signal,
                    })
                  : await Promise.all(
                      // the same seed per picture as a grid's cell gets, so a look can be replayed
                      pictures.images.map((image, index) =>
                        ports.imageProcessor.processPicture(image.data, {
                          cropWhiteBorders: crop,
                          styleSeed: styleSeed === null ? null : `${styleSeed}:${index}`,
                          xmp,
                          signal,
                        }),
                      ),
                    );
              throwIfAborted(signal);
              if (!Array.isArray(processed) || processed.length !== SHOTS) {
                throw new InvalidResponseError('image processor', `The ${pictures.kind === 'grid' ? 'grid' : 'pictures'} gave ${Array.isArray(processed) ? processed.length : 'no'} images, not ${SHOTS}`);
              }
              return processed;
            } catch (error) {
              // The service's image could not be processed: ask for another one.
              if (error instanceof InvalidImageError) {
                throw new InvalidResponseError('image provider', `Unusable ${pictures.kind === 'grid' ? 'grid image' : 'picture'}: ${error.message}`);
              }
              throw error;
            }
          },
          signal,
          { ...what, gridNo },
        );
        throwIfAborted(signal);
        const rows = [];
        for (const [cell, image] of cells.entries()) {
          const idx = gridNo * SHOTS + cell;
          const key = `${prefix}/${idx}.${extensionFor(image.contentType)}`;
          const signed = provenance ? await signProvenance(image, provenance) : image;
          await this.storing(
            () => ports.objectStorage.put(key, signed.data, { contentType: signed.contentType, cacheControl: CACHE_IMMUTABLE }),
            signal,
            { ...what, key },
          );
          rows.push({
            personaId,
            idx,
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
        // The four cells of a grid come from one picture: a grid made again replaces all four rows.
        await this.em.upsertMany(PersonaImage, rows, { onConflictFields: ['personaId', 'idx'], onConflictAction: 'merge' });
        await this.count(task.id, 'images_made', rows.length);
        await this.notifyTask(task.id);
      }),
    );
    throwIfAborted(signal);
    const outage = results.find((r) => r.status === 'rejected' && isDatabaseUnavailable(r.reason));
    if (outage) throw (outage as PromiseRejectedResult).reason;
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
    await this.count(taskId, 'moderation_blocks');
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

/** Pictures per prompt: one shot's images are stored at idx gridNo * SHOTS + cell. */
const SHOTS = 4;

/**
 * A provider's pictures, checked at our edge: a grid of rows * cols === count shots, or exactly
 * `count` separate images, each a real image. Anything else is an InvalidResponseError (retried).
 */
function checkedPictures(answer: Pictures, count: number): Pictures {
  const problem = (message: string) => new InvalidResponseError('image provider', `Unusable pictures: ${message}`);
  if (answer === null || typeof answer !== 'object') throw problem(`expected a grid or images, got ${answer === null ? 'null' : typeof answer}`);
  if (answer.kind === 'grid') {
    const { rows, cols } = answer;
    if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) {
      throw problem(`a grid needs whole rows and cols of at least 1, got ${String(rows)}x${String(cols)}`);
    }
    if (rows * cols !== count) throw problem(`a ${rows}x${cols} grid holds ${rows * cols} shots, not the ${count} asked for`);
    return { kind: 'grid', image: checkedImage(answer.image, 'grid'), rows, cols };
  }
  if (answer.kind === 'images') {
    if (!Array.isArray(answer.images)) throw problem('images is not a list');
    if (answer.images.length !== count) throw problem(`${answer.images.length} images, not the ${count} asked for`);
    return { kind: 'images', images: answer.images.map((image, index) => checkedImage(image, `picture ${index + 1}`)) };
  }
  throw problem(`unknown kind ${JSON.stringify((answer as { kind?: unknown }).kind)}`);
}

function checkedImage(image: EncodedImage, what: string): EncodedImage {
  try {
    const info = readImageInfo(image.data);
    return { data: image.data, contentType: info.contentType };
  } catch (error) {
    throw new InvalidResponseError('image provider', `The ${what} is not an image: ${describeError(error)}`);
  }
}

