import pg from 'pg';
import PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import { describeError, isDatabaseUnavailable } from '../errors.js';

export const QUEUE_BATCHES = 'avatargen-persona-batch';
export const QUEUE_IMAGES = 'avatargen-persona-images';
/**
 * pg-boss's dead-letter queue for both: a job lands here when its retries ran out (each run killed
 * or stalled its worker until it expired). The reconcile drains it and gives the unit of work up.
 */
export const QUEUE_DEAD = 'avatargen-dead';
const QUEUE_SETUP_LOCK = 727274003;
/** pg-boss's schema (its default, named so that the priority SQL below reads the same one). */
const BOSS_SCHEMA = 'pgboss';
/** pg-boss's priority column is a PostgreSQL integer (negative allowed; higher is fetched first). */
const PRIORITY_MIN = -2_147_483_648;
const PRIORITY_MAX = 2_147_483_647;

export interface BatchJob {
  taskId: string;
  batchNo: number;
  run: number;
}
export interface ImagesJob {
  taskId: string;
  personaId: number;
  run: number;
}

/** What pg-boss says of a job: queued or running (live), failed for good (dead), or over (gone). */
export type JobState = 'live' | 'dead' | 'gone';

/** A job this process ran whose end it could not record (the database was away): recorded later. */
interface Unsettled {
  queue: string;
  id: string;
  /** complete: the work is recorded in the rows, or the rows say what is left and reconcile resends it. */
  outcome: 'complete' | 'fail';
  error?: string;
}

export interface JobQueueOptions {
  databaseUrl: string;
  /** A job running longer (its worker died) goes back to the queue. */
  expireInSeconds: number;
  /** Runs of one job (each ended by its worker dying or stopping) before it is dead. */
  attempts: number;
  maintenanceIntervalSeconds: number;
  /** How often idle work loops poll (new work also wakes local loops at once). */
  pollingMs: number;
  /**
   * Whether the queue's own connections wait for each commit to reach the disk. Off by default:
   * the work is idempotent, so a commit lost in a PostgreSQL crash only reruns a job (or resends
   * one from the reconcile) and corrupts nothing, and each job costs two fewer fsyncs. The task,
   * persona and image rows are written on the ORM's connections, which keep the server's setting.
   */
  synchronousCommit?: boolean;
  log: Logger;
  /** Logs a database outage once, anything else as an error. */
  trouble(error: unknown, what: string): void;
}

/** A transaction's client, as pg-boss's `db` option wants it: its calls join the transaction. */
function asBossDb(client: pg.PoolClient) {
  return { executeSql: (text: string, values: unknown[]) => client.query(text, values) };
}

/**
 * The job queue on pg-boss's public API: queue setup, our own work loops, job ends recorded even
 * across database outages, and per-job lookups by id.
 */
export class JobQueue {
  private readonly boss: PgBoss;
  private readonly sleepers = new Map<string, Set<() => void>>();
  private readonly loops: Promise<void>[] = [];
  private readonly unsettled: Unsettled[] = [];
  /** Jobs this process is running now, by id: failed back to the queue when a stop times out. */
  private readonly held = new Map<string, string>();
  /** A small pool of our own for the enqueue transactions (pg-boss's pool is its own). */
  private pool: pg.Pool | undefined;
  private working = false;

  constructor(private readonly options: JobQueueOptions) {
    this.boss = new PgBoss({
      connectionString: options.databaseUrl,
      schema: BOSS_SCHEMA,
      max: 4,
      maintenanceIntervalSeconds: options.maintenanceIntervalSeconds,
      ...this.connectionOptions(),
    });
    this.boss.on('error', (error: Error) => options.trouble(error, 'queue error'));
  }

  async start(): Promise<void> {
    // Processes starting together would deadlock while pg-boss creates its schema and queues:
    // one at a time, under a session lock on a connection of its own.
    const lock = new pg.Client({ connectionString: this.options.databaseUrl });
    lock.on('error', (error) => this.options.trouble(error, 'queue setup connection error'));
    await lock.connect();
    try {
      await lock.query('select pg_advisory_lock($1)', [QUEUE_SETUP_LOCK]);
      await this.boss.start();
      await this.boss.createQueue(QUEUE_DEAD, { name: QUEUE_DEAD });
      const policy = { ...this.retryPolicy(), expireInSeconds: this.options.expireInSeconds, deadLetter: QUEUE_DEAD };
      for (const name of [QUEUE_BATCHES, QUEUE_IMAGES]) {
        await this.boss.createQueue(name, { name, ...policy });
        await this.boss.updateQueue(name, { name, ...policy }); // queues made by an older version
      }
    } finally {
      await lock.end().catch(() => undefined);
    }
    this.pool = new pg.Pool({ connectionString: this.options.databaseUrl, max: 2, idleTimeoutMillis: 10_000, ...this.connectionOptions() });
    this.pool.on('error', (error) => this.options.trouble(error, 'queue connection error'));
  }

  /** Session settings of the queue's connections (pg-boss's pool and ours). */
  private connectionOptions(): { options?: string } {
    return this.options.synchronousCommit === true ? {} : { options: '-c synchronous_commit=off' };
  }

  /** pg-boss's retries are for jobs whose worker died or stopped (expiry, stop); provider errors are retried inside the job. */
  private retryPolicy() {
    return { retryLimit: Math.max(0, this.options.attempts - 1), retryDelay: 1, retryBackoff: false };
  }

  /** Runs `fn` in a transaction on the queue's own pool; undefined when the queue is closed. */
  async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T | undefined> {
    const pool = this.pool;
    if (!pool) return undefined;
    const client = await pool.connect();
    try {
      await client.query('begin');
      const result = await fn(client);
      await client.query('commit');
      return result;
    } catch (error) {
      await client.query('rollback').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  /** The state of one job, read in the caller's transaction. */
  async jobState(client: pg.PoolClient, queue: string, id: string): Promise<JobState> {
    const job = await this.boss.getJobById(queue, id, { db: asBossDb(client), includeArchive: true });
    if (!job) return 'gone';
    if (job.state === 'created' || job.state === 'retry' || job.state === 'active') return 'live';
    return job.state === 'failed' ? 'dead' : 'gone';
  }

  /** Sends jobs with the caller's ids in the caller's transaction (wake the loops after its commit). */
  async send(client: pg.PoolClient, queue: string, jobs: Array<{ id: string; data: object }>): Promise<void> {
    if (jobs.length === 0) return;
    const expireInSeconds = this.options.expireInSeconds;
    await this.boss.insert(
      jobs.map((job) => ({ id: job.id, name: queue, data: job.data, expireInSeconds, ...this.retryPolicy() })),
      { db: asBossDb(client) },
    );
  }

  /**
   * The jobs of `queue` not yet running (queued, or waiting for a retry), in the caller's
   * transaction. pg-boss fetches them by priority (highest first), then by age.
   */
  async waitingJobs(client: pg.PoolClient, queue: string): Promise<Array<{ id: string; priority: number; data: unknown }>> {
    const { rows } = await client.query<{ id: string; priority: number; data: unknown }>(
      `select id, priority, data from ${BOSS_SCHEMA}.job where name = $1 and state in ('created', 'retry')`,
      [queue],
    );
    return rows;
  }

  /**
   * Sets the priority of waiting jobs, in the caller's transaction. pg-boss has no call for it, so
   * this writes its job table's `priority` column (the one its fetch orders by). Only jobs still
   * waiting whose priority changes are written: a job a worker took meanwhile is left alone, and
   * unchanged rows are not locked, so fetches keep flowing past them.
   */
  async setPriorities(client: pg.PoolClient, queue: string, jobs: Array<{ id: string; priority: number }>): Promise<void> {
    if (jobs.length === 0) return;
    await client.query(
      `update ${BOSS_SCHEMA}.job j set priority = p.priority
       from unnest($2::uuid[], $3::int[]) as p(id, priority)
       where j.name = $1 and j.id = p.id and j.state in ('created', 'retry') and j.priority <> p.priority`,
      [queue, jobs.map((job) => job.id), jobs.map((job) => Math.max(PRIORITY_MIN, Math.min(PRIORITY_MAX, Math.trunc(job.priority))))],
    );
  }

  /**
   * Runs up to `slots` jobs of `queue` at once. `admit`, when given, is awaited before each fetch
   * (the images queue waits for room under the fleet's limits); it says whether it booked room for
   * one job (then one is fetched) or no limit applies (then as many as there are free slots).
   */
  work<T extends object>(queue: string, slots: number, run: (data: T) => Promise<void>, admit?: () => Promise<boolean>): void {
    this.working = true;
    this.loops.push(this.workLoop<T>(queue, Math.max(1, slots), run, admit));
  }

  /**
   * One loop per queue over pg-boss's fetch/complete/fail, rather than `boss.work()`, whose loop
   * records a job's end without awaiting it: with the database away that is an unhandled
   * rejection, and the process dies. Free slots are filled by one fetch, and the jobs that end in
   * the same turn of the event loop are recorded by one complete: two round trips per batch of
   * jobs rather than per job (bench/README.md, "Pipeline"). Ends are recorded as they come, also
   * while the loop waits for admission.
   */
  private async workLoop<T extends object>(
    queue: string,
    slots: number,
    run: (data: T) => Promise<void>,
    admit?: () => Promise<boolean>,
  ): Promise<void> {
    const running = new Set<Promise<void>>();
    const ended: Unsettled[] = [];
    let recording: Promise<void> | undefined;
    const record = (): Promise<void> => {
      recording ??= (async () => {
        try {
          await new Promise((resolve) => setImmediate(resolve)); // the ends of this turn go together
          while (ended.length > 0) await this.settleAll(queue, ended.splice(0));
        } finally {
          recording = undefined;
        }
      })();
      return recording;
    };
    let failures = 0;
    while (this.working) {
      if (running.size >= slots) {
        await Promise.race(running);
        continue;
      }
      let jobs: Array<{ id: string; data: T }>;
      try {
        const limited = admit ? await admit() : false;
        if (!this.working) break;
        jobs = await this.boss.fetch<T>(queue, { batchSize: limited ? 1 : slots - running.size });
        failures = 0;
      } catch (error) {
        this.options.trouble(error, 'fetching a job failed');
        await this.sleep(queue, Math.min(500 * 2 ** Math.min(failures++, 5), 10_000));
        continue;
      }
      for (const job of jobs) {
        this.held.set(job.id, queue);
        const done: Promise<void> = this.runJob(queue, job, run).then((outcome) => {
          this.held.delete(job.id);
          running.delete(done);
          ended.push(outcome);
          void record();
          this.wake(queue);
        });
        running.add(done);
      }
      // Nothing to fetch: wait for new work (a wake) or the next poll; a job that ends wakes it too.
      if (jobs.length === 0) await this.sleep(queue, this.options.pollingMs);
    }
    await Promise.all(running);
    await record();
  }

  /** Runs one job; never rejects: the outcome says how its end is recorded. */
  private async runJob<T extends object>(queue: string, job: { id: string; data: T }, run: (data: T) => Promise<void>): Promise<Unsettled> {
    try {
      await run(job.data);
      return { queue, id: job.id, outcome: 'complete' };
    } catch (error) {
      if (isDatabaseUnavailable(error)) {
        // The rows still say what is left: the reconcile sends a new job for it once the database
        // is back. Completing this one keeps its retries for workers that die.
        this.options.trouble(error, 'a job was interrupted');
        return { queue, id: job.id, outcome: 'complete' };
      }
      this.options.log.error({ err: error, queue }, 'job failed');
      return { queue, id: job.id, outcome: 'fail', error: describeError(error) };
    }
  }

  /** Records job ends: the completed ones of a queue in one call, each failure with its reason. */
  private async settleAll(queue: string, jobs: Unsettled[]): Promise<void> {
    if (jobs.length === 0) return;
    const completed = jobs.filter((job) => job.outcome === 'complete');
    if (completed.length > 0) {
      try {
        await this.boss.complete(
          queue,
          completed.map((job) => job.id),
        );
      } catch (error) {
        this.options.trouble(error, 'recording the end of a job failed');
        this.unsettled.push(...completed);
      }
    }
    for (const job of jobs) if (job.outcome === 'fail') await this.settle(job);
  }

  private async settle(job: Unsettled): Promise<void> {
    try {
      if (job.outcome === 'complete') await this.boss.complete(job.queue, job.id);
      else await this.boss.fail(job.queue, job.id, { message: job.error });
    } catch (error) {
      this.options.trouble(error, 'recording the end of a job failed');
      this.unsettled.push(job);
    }
  }

  /** Records the job ends that an outage kept this process from recording. */
  async settleLater(): Promise<void> {
    const jobs = this.unsettled.splice(0);
    for (const job of jobs) await this.settle(job);
  }

  /** Hands each dead job's data to `giveUp`, then completes it there; one that fails stays for the next pass. */
  async drainDead(giveUp: (data: unknown) => Promise<void>): Promise<void> {
    for (;;) {
      const jobs = await this.boss.fetch<object>(QUEUE_DEAD, { batchSize: 20 });
      if (jobs.length === 0) return;
      for (const job of jobs) {
        try {
          await giveUp(job.data);
          await this.boss.complete(QUEUE_DEAD, job.id);
        } catch (error) {
          if (isDatabaseUnavailable(error)) throw error;
          this.options.log.error({ err: error, data: job.data }, 'a dead job could not be given up');
          await this.boss.fail(QUEUE_DEAD, job.id, { message: describeError(error) }).catch(() => undefined);
        }
      }
    }
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

  /** Wakes this process's idle loops on `queue` (new work was committed). */
  wake(queue: string): void {
    for (const wake of [...(this.sleepers.get(queue) ?? [])]) wake();
  }

  /** Stops the work loops; running jobs finish, or go back to the queue after `timeoutMs`. Then closes. */
  async stop(timeoutMs: number): Promise<void> {
    this.working = false;
    for (const queue of this.sleepers.keys()) this.wake(queue);
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
    await this.boss
      .stop({ graceful: true, wait: true, close: true, timeout: 5_000 })
      .catch((error) => this.options.trouble(error, 'stopping the queue'));
    await this.pool?.end().catch(() => undefined);
    this.pool = undefined;
  }
}
