import { randomUUID } from 'node:crypto';
import { LockMode } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import type pg from 'pg';
import type { Logger } from 'pino';
import { type ErrorLogEntry, GenerationTask, type TaskEntity } from '../db/entities.js';
import { ACTIVE_STATUSES, assertTransition, isFinal, type TaskStatus } from '../domain/status.js';
import type { Orm } from '../db/orm.js';
import { computeQualityReport, keepQualityReport } from '../services/quality.js';
import type { SettingsService } from '../services/settings.js';
import { describeError } from '../errors.js';
import { BATCH_SIZE, batchSizes } from './persona-stage.js';
import { type BatchJob, type ImagesJob, type JobQueue, QUEUE_BATCHES, QUEUE_IMAGES } from './queue.js';
import { now } from './support.js';

const SCHEDULER_LOCK = 727274002;

/** Ends a unit of work whose job failed for good (its retries ran out: each run stopped its worker). */
export type GiveUp = (stage: 'batch' | 'images', taskId: string, unit: number, message: string) => Promise<void>;

export const GIVEN_UP = 'Given up: its job stopped its worker repeatedly.';

export interface SchedulerOptions {
  orm: Orm;
  settings: SettingsService;
  queue: JobQueue;
  log: Logger;
  notifyTask: (taskId: string) => Promise<void>;
  giveUp: GiveUp;
}

/**
 * Moves tasks through the domain's statuses (domain/status.ts): starts pending tasks while fewer
 * than `max_concurrent_tasks` hold a slot, sends a job for each unit of work of a task's stage,
 * and moves a task on when its stage has finished. Every step is idempotent, so the reconcile can
 * run it again at any time, from any process.
 *
 * Tasks running at once take turns (see fairOrder): whenever a queue's set of tasks changes (a
 * stage starts or ends, lost jobs are resent) the waiting jobs of that queue are given pg-boss
 * priorities again, so that workers, which fetch by priority, serve the tasks in turn.
 */
export class Scheduler {
  constructor(private readonly options: SchedulerOptions) {}

  private get em(): EntityManager {
    return this.options.orm.em.fork() as EntityManager;
  }

  /** Starts pending tasks while slots are free. Serialised across processes by an advisory lock held for the transaction. */
  async schedule(): Promise<string[]> {
    const { max_concurrent_tasks: max } = await this.options.settings.get();
    const started = await this.em.transactional(async (em) => {
      await em.execute('select pg_advisory_xact_lock(?)', [SCHEDULER_LOCK]);
      const slots = max - (await em.count(GenerationTask, { status: { $in: [...ACTIVE_STATUSES] } }));
      if (slots <= 0) return [];
      const pending = await em.find(GenerationTask, { status: 'pending' }, { orderBy: { createdAt: 'asc', id: 'asc' }, limit: slots });
      for (const task of pending) {
        const sizes = batchSizes(task.count);
        await em.execute(
          `insert into persona_batches (task_id, batch_no, size, status)
           select ?, n - 1, least(?, ? - (n - 1) * ?), 'pending' from generate_series(1, ?) as n
           on conflict do nothing`,
          [task.id, BATCH_SIZE, task.count, BATCH_SIZE, sizes.length],
        );
        setStatus(task, 'generating-data');
        task.startedAt ??= new Date();
      }
      return pending.map((task) => task.id);
    });
    for (const id of started) {
      this.options.log.info({ taskId: id }, 'task started');
      await this.options.notifyTask(id);
      await this.enqueue(id);
      await this.advance(id);
    }
    return started;
  }

  /**
   * Sends a job for every unit of work of the task's current stage (a pending persona batch, a
   * persona whose images are pending) that has none queued or running: at the start of a stage,
   * and from the reconcile for work whose job was lost (an outage interrupted it, or it ended
   * without finishing its unit). Each unit records its job's id, and pg-boss says what became of
   * that job; one that failed for good is given up. Under a per-task lock, so two processes never
   * send the same work twice.
   */
  async enqueue(taskId: string): Promise<void> {
    const { queue } = this.options;
    const dead: number[] = [];
    const sent = await queue.transaction(async (client) => {
      await client.query(`select pg_advisory_xact_lock(hashtext('avatargen-enqueue:' || $1))`, [taskId]);
      const { rows: tasks } = await client.query('select status, run from generation_tasks where id = $1', [taskId]);
      const task = tasks[0] as { status: TaskStatus; run: number } | undefined;
      const stage = task?.status === 'generating-data' ? 'batch' : task?.status === 'generating-images' ? 'images' : null;
      if (!task || !stage) return null;
      const name = stage === 'batch' ? QUEUE_BATCHES : QUEUE_IMAGES;
      const { rows: units } = await client.query<{ unit: number; job_id: string | null }>(
        stage === 'batch'
          ? `select batch_no as unit, job_id from persona_batches where task_id = $1 and status = 'pending' order by batch_no`
          : `select id as unit, job_id from personas where task_id = $1 and images_status = 'pending' order by id`,
        [taskId],
      );
      const jobs: Array<{ id: string; data: BatchJob | ImagesJob }> = [];
      for (const { unit, job_id: jobId } of units) {
        const state = jobId ? await queue.jobState(client, name, jobId) : 'gone';
        if (state === 'live') continue;
        if (state === 'dead') {
          dead.push(unit);
          continue;
        }
        const data = stage === 'batch' ? { taskId, batchNo: unit, run: task.run } : { taskId, personaId: unit, run: task.run };
        jobs.push({ id: randomUUID(), data });
      }
      await queue.send(client, name, jobs);
      await recordJobs(client, stage, taskId, jobs);
      // New jobs (a stage's first, or resent ones) take their turns like every waiting job.
      if (jobs.length > 0) await this.takeTurns(client, name);
      return { name, stage: stage as 'batch' | 'images', count: jobs.length };
    });
    if (!sent) return;
    if (sent.count > 0) queue.wake(sent.name);
    for (const unit of dead) await this.options.giveUp(sent.stage, taskId, unit, GIVEN_UP);
  }

  /**
   * Moves a task to its next status when its current stage has finished. Idempotent; called after
   * every job and by the reconcile.
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
    const moved = await this.em.transactional(async (em) => {
      const task = await em.findOne(GenerationTask, { id: taskId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
      if (!task) return null;
      if (task.status === 'generating-data') return { left: QUEUE_BATCHES, next: await personasDone(em, task) };
      if (task.status === 'generating-images') return { left: QUEUE_IMAGES, next: await imagesDone(em, task) };
      return null;
    });
    const next = moved?.next;
    if (!moved || !next) return;
    this.options.log.info({ taskId, status: next }, 'task status');
    // One task fewer in that queue: the others' turns close up (a user's other task gets its share).
    await this.rebalance(moved.left);
    if (isFinal(next)) await this.storeQualityReport(taskId, next);
    await this.options.notifyTask(taskId);
    if (next === 'generating-images') await this.enqueue(taskId);
    else await this.schedule(); // a slot is free
  }

  /**
   * The quality report of a task that has just ended, kept in its row for the page and the exports.
   * A report that cannot be made is logged and leaves the task as it is: it can be made on demand.
   */
  private async storeQualityReport(taskId: string, status: TaskStatus): Promise<void> {
    try {
      const em = this.em;
      const task = await em.findOne(GenerationTask, { id: taskId }, { fields: ['id', 'count', 'targets'] });
      if (!task) return;
      const report = await computeQualityReport(em, { id: task.id, count: task.count, targets: task.targets ?? null });
      await keepQualityReport(em, taskId, status, report);
      this.options.log.info(
        { taskId, flaggedPersonas: report.flaggedPersonas.length, offTargetPersonas: report.offTargetPersonas },
        'quality report',
      );
    } catch (error) {
      this.options.log.warn({ taskId, error: describeError(error) }, 'the quality report could not be made');
    }
  }

  /** Starts pending tasks, resends lost jobs and advances finished stages of every active task. */
  async reconcile(): Promise<void> {
    await this.schedule();
    const active = await this.em.find(GenerationTask, { status: { $in: [...ACTIVE_STATUSES] } }, { fields: ['id'] });
    for (const task of active) {
      await this.enqueue(task.id);
      await this.advance(task.id);
    }
    // Turns go stale when a task leaves a queue by a way the scheduler does not see (a cancel).
    for (const name of [QUEUE_BATCHES, QUEUE_IMAGES]) await this.rebalance(name);
  }

  /** Gives the waiting jobs of a queue their turns again, in a transaction of its own. */
  private async rebalance(name: string): Promise<void> {
    await this.options.queue.transaction((client) => this.takeTurns(client, name));
  }

  /**
   * Sets the pg-boss priority of every waiting job of the queue from its place in fairOrder: the
   * i-th job in turn gets -i (pg-boss fetches higher priorities first, then older jobs). Serialised
   * per queue across processes, so two processes never interleave two different orders.
   */
  private async takeTurns(client: pg.PoolClient, name: string): Promise<void> {
    const { queue } = this.options;
    await client.query(`select pg_advisory_xact_lock(hashtext('avatargen-turns:' || $1))`, [name]);
    const waiting = await queue.waitingJobs(client, name);
    const jobs = waiting.flatMap(({ id, data }) => {
      const job = (data ?? {}) as Partial<BatchJob & ImagesJob>;
      const unit = job.batchNo ?? job.personaId;
      return typeof job.taskId === 'string' && typeof unit === 'number' ? [{ id, taskId: job.taskId, unit }] : [];
    });
    if (jobs.length === 0) return;
    const { rows } = await client.query<{ id: string; user_id: number | null; created_at: Date }>(
      'select id, user_id, created_at from generation_tasks where id = any($1::text[])',
      [[...new Set(jobs.map((job) => job.taskId))]],
    );
    const tasks = new Map(rows.map((row) => [row.id, row]));
    const order = fairOrder(
      jobs.map((job) => {
        const task = tasks.get(job.taskId);
        return {
          ...job,
          // Tasks without a user (library use) each count as their own user.
          owner: task?.user_id != null ? `user:${task.user_id}` : `task:${job.taskId}`,
          startedAt: task?.created_at.getTime() ?? 0,
        };
      }),
    );
    await queue.setPriorities(
      client,
      name,
      order.map((id, i) => ({ id, priority: -i })),
    );
  }
}

/** A waiting job, as fairOrder sees it. */
export interface TurnJob {
  id: string;
  taskId: string;
  /** Whose task it is: tasks of one owner share one turn. */
  owner: string;
  /** When the task was created (ms): earlier tasks and owners go first within a round. */
  startedAt: number;
  /** The unit of work (batch number, persona id): a task's units go in this order. */
  unit: number;
}

/**
 * The order in which waiting jobs are served: in rounds, each owner (user) one job per round, so a
 * user with several tasks gets no more turns than a user with one; an owner's turns go round its
 * tasks in turn. A task that has just started is in the very next round, not behind the jobs of
 * tasks that started before it. Returns the job ids, first served first. Alone, a task's jobs go
 * in unit order, one after another: nothing is held back.
 */
export function fairOrder(jobs: readonly TurnJob[]): string[] {
  const byTask = new Map<string, TurnJob[]>();
  for (const job of jobs) {
    const list = byTask.get(job.taskId);
    if (list) list.push(job);
    else byTask.set(job.taskId, [job]);
  }
  const first = (a: TurnJob, b: TurnJob) => a.startedAt - b.startedAt || (a.taskId < b.taskId ? -1 : a.taskId > b.taskId ? 1 : 0);
  const tasks = [...byTask.values()]
    .map((list) => list.sort((a, b) => a.unit - b.unit))
    .sort((a, b) => first(a[0] as TurnJob, b[0] as TurnJob));
  // Each owner's jobs in the order the owner takes its turns: round its tasks, oldest task first.
  const owners = new Map<string, TurnJob[][]>();
  for (const list of tasks) {
    const owner = (list[0] as TurnJob).owner;
    const own = owners.get(owner);
    if (own) own.push(list);
    else owners.set(owner, [list]);
  }
  const sequences = [...owners.values()].map(interleave);
  // Then the owners' sequences round by round, owners in order of their oldest task.
  return interleave(sequences).map((job) => job.id);
}

/** Round-robin merge: the first of each list, then the second of each, and so on. */
function interleave<T>(lists: readonly T[][]): T[] {
  const out: T[] = [];
  const longest = Math.max(0, ...lists.map((list) => list.length));
  for (let i = 0; i < longest; i++) {
    for (const list of lists) {
      if (i < list.length) out.push(list[i] as T);
    }
  }
  return out;
}

function setStatus(task: TaskEntity, status: TaskStatus, log?: Omit<ErrorLogEntry, 'at'>): void {
  assertTransition(task.status, status);
  task.status = status;
  if (isFinal(status)) task.finishedAt = new Date();
  if (log) task.errorLog = [...task.errorLog, { at: now(), ...log }];
}

/** The persona stage is over: on to the pictures, or failed when no persona was stored. */
async function personasDone(em: EntityManager, task: TaskEntity): Promise<TaskStatus | null> {
  const [b] = await em.execute(`select count(*) filter (where status = 'pending')::int as pending from persona_batches where task_id = ?`, [
    task.id,
  ]);
  if ((b?.pending ?? 0) > 0) return null;
  const [p] = await em.execute('select count(*)::int as n from personas where task_id = ?', [task.id]);
  if ((p?.n ?? 0) === 0) {
    setStatus(task, 'failed', { stage: 'personas', message: 'Every persona batch failed; no persona was stored.' });
    return 'failed';
  }
  setStatus(task, 'data-generated');
  setStatus(task, 'generating-images');
  return 'generating-images';
}

/** The image stage is over: completed only when nothing is missing, else partial or failed. */
async function imagesDone(em: EntityManager, task: TaskEntity): Promise<TaskStatus | null> {
  const [c] = await em.execute(
    `select (select count(*)::int from personas where task_id = ?) as personas,
            (select count(*) filter (where images_status = 'pending')::int from personas where task_id = ?) as pending,
            (select count(*)::int from persona_images where task_id = ?) as images`,
    [task.id, task.id, task.id],
  );
  if ((c?.pending ?? 0) > 0) return null;
  const personas: number = c?.personas ?? 0;
  const images: number = c?.images ?? 0;
  if (images === 0) {
    setStatus(task, 'failed', { stage: 'images', message: 'No image could be made for any persona.' });
    return 'failed';
  }
  // Completed means complete: every persona asked for, each with every image.
  const expectedImages = task.count * task.imagesPerPersona;
  if (personas < task.count || images < expectedImages) {
    setStatus(task, 'partial', {
      stage: 'task',
      message: `Ended with something missing: ${personas} of ${task.count} personas, ${images} of ${expectedImages} images. Retry makes only what is missing.`,
    });
    return 'partial';
  }
  setStatus(task, 'completed');
  return 'completed';
}

/** Each unit remembers the job sent for it, in the same transaction as the send. */
async function recordJobs(
  client: pg.PoolClient,
  stage: 'batch' | 'images',
  taskId: string,
  jobs: Array<{ id: string; data: BatchJob | ImagesJob }>,
): Promise<void> {
  if (jobs.length === 0) return;
  const units = jobs.map((job) => ('batchNo' in job.data ? job.data.batchNo : job.data.personaId));
  const ids = jobs.map((job) => job.id);
  await client.query(
    stage === 'batch'
      ? `update persona_batches b set job_id = j.id from unnest($2::int[], $3::uuid[]) as j(unit, id) where b.task_id = $1 and b.batch_no = j.unit`
      : `update personas p set job_id = j.id from unnest($2::int[], $3::uuid[]) as j(unit, id) where p.task_id = $1 and p.id = j.unit`,
    [taskId, units, ids],
  );
}
