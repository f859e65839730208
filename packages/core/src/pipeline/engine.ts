import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { type AvatarGenConfig, createRedactor } from '../config.js';
import { GenerationTask } from '../db/entities.js';
import type { Orm } from '../db/orm.js';
import { isActive } from '../domain/status.js';
import { describeError, isDatabaseUnavailable } from '../errors.js';
import type { PortOwner } from '../plugin.js';
import type { PortName } from '../ports.js';
import { SettingsService } from '../services/settings.js';
import { FleetLimiter } from '../limits/fleet.js';
import { ImageStage } from './image-stage.js';
import { TaskListener } from './listener.js';
import { PersonaStage } from './persona-stage.js';
import { type BatchJob, type ImagesJob, JobQueue, QUEUE_BATCHES, QUEUE_IMAGES } from './queue.js';
import { GIVEN_UP, Scheduler } from './scheduler.js';
import { type PipelinePorts, StageSupport } from './support.js';

export { BATCH_SIZE, batchSizes } from './persona-stage.js';
export { QUEUE_BATCHES, QUEUE_DEAD, QUEUE_IMAGES } from './queue.js';
export type { PipelinePorts } from './support.js';

const CHANNEL_CANCEL = 'avatargen_cancel';
const CHANNEL_TASK = 'avatargen_task';

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
  /**
   * Runs of one job, each ended by its worker dying (or stopping past its timeout), before its
   * unit of work is given up. Default 8: rolling restarts and the odd crash are ridden out, a job
   * that kills every worker it meets is not retried for ever.
   */
  jobAttempts?: number;
}

/** How long an outage lasts before it is logged at warn (see databaseTrouble). */
const OUTAGE_WARNING_DELAY_MS = 1_000;

/**
 * The generation pipeline on pg-boss: the scheduler moves tasks through their statuses, the
 * persona and image stages do the work, the queue carries one job per unit of work. The database
 * is the truth: every job looks at the rows before it works and writes its result under unique
 * keys (task+batch, persona+image index), so a job that runs twice (a worker died, a reconcile
 * re-sent it) never duplicates anything.
 *
 * It outlives PostgreSQL restarts and outages: a job interrupted by one is left to the reconcile
 * (which sends a new job for every unit of work that has none), the notification listener
 * reconnects and subscribes again, and job ends that could not be recorded are recorded later.
 */
export class Pipeline {
  readonly events = new EventEmitter();
  private readonly log: Logger;
  private readonly queue: JobQueue;
  private readonly listener: TaskListener;
  private readonly support: StageSupport;
  private readonly scheduler: Scheduler;
  private readonly personas: PersonaStage;
  private readonly images: ImageStage;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private started = false;
  private working = false;
  private stopping = false;
  /** True from the first "database unavailable" error until the database answers again (one log line each way). */
  private databaseAway = false;
  /** The outage was logged at warn (so its end is too). */
  private outageSaid = false;

  constructor(private readonly options: PipelineOptions) {
    this.log = options.logger.child({ component: 'pipeline' });
    this.events.setMaxListeners(0);
    const trouble = (error: unknown, what: string) => this.databaseTrouble(error, what);
    this.queue = new JobQueue({
      databaseUrl: options.databaseUrl,
      expireInSeconds: options.config.JOB_EXPIRE_SECONDS,
      attempts: options.jobAttempts ?? 8,
      maintenanceIntervalSeconds: options.maintenanceIntervalSeconds ?? 60,
      pollingMs: (options.pollingIntervalSeconds ?? 2) * 1000,
      log: this.log,
      trouble,
    });
    this.listener = new TaskListener({
      databaseUrl: options.databaseUrl,
      channels: [CHANNEL_CANCEL, CHANNEL_TASK],
      onNotification: (channel, taskId) => {
        if (channel === CHANNEL_CANCEL) this.support.abortTask(taskId);
        if (channel === CHANNEL_TASK) this.events.emit('task', taskId);
      },
      onReconnect: () => {
        this.databaseBack();
        this.log.info('notification listener reconnected');
        this.events.emit('resync');
        void this.afterReconnect();
      },
      trouble,
    });
    const settings = new SettingsService(options.orm);
    this.support = new StageSupport({
      limiter: new FleetLimiter(options.orm, settings, this.log),
      orm: options.orm,
      config: options.config,
      log: this.log,
      ports: options.ports,
      owners: options.owners,
      redact: createRedactor(options.config, options.secrets),
      notifyTask: (taskId) => this.notifyTask(taskId),
    });
    const advance = (taskId: string) => this.scheduler.advance(taskId);
    this.personas = new PersonaStage(this.support, advance);
    this.images = new ImageStage(this.support, advance);
    this.scheduler = new Scheduler({
      orm: options.orm,
      settings,
      queue: this.queue,
      log: this.log,
      notifyTask: (taskId) => this.notifyTask(taskId),
      giveUp: (stage, taskId, unit, message) =>
        stage === 'batch' ? this.personas.giveUp(taskId, unit, message) : this.images.giveUp(taskId, unit, message),
    });
  }

  /** Logs a database outage once (then quietly), and anything else as the error it is. */
  private databaseTrouble(error: unknown, what: string): void {
    // Stopping (Ctrl+C reaches an embedded PostgreSQL too, which ends our connections): expected.
    if (this.stopping && isDatabaseUnavailable(error)) {
      this.log.debug({ error: describeError(error) }, what);
      return;
    }
    if (isDatabaseUnavailable(error)) {
      this.log.debug({ error: describeError(error) }, what);
      if (this.databaseAway) return;
      this.databaseAway = true;
      // Said a moment later, and only if it lasts: Ctrl+C reaches an embedded PostgreSQL in the
      // same terminal too, which can end our connections before our own SIGINT handler has run.
      const detail = describeError(error);
      setTimeout(() => {
        if (!this.databaseAway || this.stopping) return;
        this.outageSaid = true;
        this.log.warn({ error: detail }, `${what}: the database is unavailable; waiting for it`);
      }, OUTAGE_WARNING_DELAY_MS).unref();
      return;
    }
    this.log.error({ err: error }, what);
  }

  private databaseBack(): void {
    if (!this.databaseAway) return;
    this.databaseAway = false;
    if (this.outageSaid) this.log.warn('the database is reachable again');
    this.outageSaid = false;
  }

  /** Connects the queue and the notification listener. Every process that submits or watches tasks calls this. */
  async start(): Promise<void> {
    if (this.started) return;
    await this.queue.start();
    this.started = true;
    await this.listener.start();
  }

  /** After an outage: cancels missed while away take effect, job ends are recorded, lost work is resent. */
  private async afterReconnect(): Promise<void> {
    try {
      const ids = this.support.trackedTasks();
      if (ids.length > 0) {
        const rows = await this.options.orm.em.fork().find(GenerationTask, { id: { $in: ids } }, { fields: ['id', 'status'] });
        const live = new Map(rows.map((row) => [row.id, row.status]));
        for (const id of ids) {
          const status = live.get(id);
          if (!status || !isActive(status)) this.support.abortTask(id);
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
    // A slot per call allowed in flight: at most MULTITHREAD_FLOWISE persona calls per process.
    this.queue.work<BatchJob>(QUEUE_BATCHES, this.options.config.MULTITHREAD_FLOWISE, (job) => this.personas.run(job));
    this.queue.work<ImagesJob>(
      QUEUE_IMAGES,
      this.options.config.IMAGE_JOBS_PER_WORKER,
      (job) => this.images.run(job),
      () => this.support.roomForImages(),
    );
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
   * Marks the process as shutting down before stop() is reached: a lost database is expected from
   * here on (Ctrl+C reaches an embedded PostgreSQL in the same terminal) and logged at debug only.
   */
  shuttingDown(): void {
    this.stopping = true;
  }

  /** Stops taking work; running jobs finish (or go back to the queue after `timeoutMs`). */
  async stop(timeoutMs = 30_000): Promise<void> {
    this.working = false;
    this.stopping = true;
    if (this.reconcileTimer) clearTimeout(this.reconcileTimer);
    if (!this.started) return;
    this.started = false;
    await this.queue.stop(timeoutMs);
    await this.listener.stop();
  }

  /** Starts pending tasks while fewer than `max_concurrent_tasks` are active. */
  schedule(): Promise<string[]> {
    return this.scheduler.schedule();
  }

  /** Moves a task to its next status when its current stage has finished. */
  advance(taskId: string): Promise<void> {
    return this.scheduler.advance(taskId);
  }

  /**
   * Records job ends an outage held back, gives up work whose jobs died for good, starts pending
   * tasks, resends lost jobs and advances finished stages.
   */
  async reconcile(): Promise<void> {
    await this.queue.settleLater();
    await this.queue.drainDead((data) => this.giveUpDead(data));
    await this.scheduler.reconcile();
    this.databaseBack();
  }

  private async giveUpDead(data: unknown): Promise<void> {
    const job = data as Partial<BatchJob & ImagesJob>;
    if (typeof job.taskId !== 'string') return;
    // A job of an earlier run: a retry has reset its unit since, and a new job does that work.
    const task = await this.options.orm.em.fork().findOne(GenerationTask, { id: job.taskId }, { fields: ['run'] });
    if (!task || task.run !== job.run) return;
    this.log.error({ job }, 'a job failed for good (it stopped its worker repeatedly); its work is given up');
    if (typeof job.batchNo === 'number') await this.personas.giveUp(job.taskId, job.batchNo, GIVEN_UP);
    else if (typeof job.personaId === 'number') await this.images.giveUp(job.taskId, job.personaId, GIVEN_UP);
    await this.scheduler.advance(job.taskId);
  }

  /** Tells every process that the task was cancelled (in-flight calls are aborted) and frees its slot. */
  async cancelled(taskId: string): Promise<void> {
    await this.options.orm.em.fork().execute('select pg_notify(?, ?)', [CHANNEL_CANCEL, taskId]);
    this.support.abortTask(taskId);
    await this.notifyTask(taskId);
    await this.schedule();
  }

  async notifyTask(taskId: string): Promise<void> {
    await this.options.orm.em.fork().execute('select pg_notify(?, ?)', [CHANNEL_TASK, taskId]);
    // This process hears it at once too (the NOTIFY echo comes a moment later, a harmless repeat),
    // so a cache here never serves a task this process has just changed.
    this.events.emit('task', taskId);
  }
}
