import { setMaxListeners } from 'node:events';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { AvatarGenConfig } from '../config.js';
import type { ErrorLogEntry } from '../db/entities.js';
import type { Orm } from '../db/orm.js';
import { AvatarGenError, describeError, ModerationError } from '../errors.js';
import type {
  FaceSource,
  ImageProcessor,
  ImagePromptProvider,
  ImageProvider,
  ObjectStorage,
  PersonaProvider,
  PortName,
  UsageListener,
} from '../ports.js';
import type { PortOwner } from '../plugin.js';
import { withRetry } from '../util.js';
import { type FleetLimiter, providerName } from '../limits/fleet.js';

export interface PipelinePorts {
  personaProvider: PersonaProvider;
  imagePromptProvider: ImagePromptProvider;
  imageProvider: ImageProvider;
  imageProcessor: ImageProcessor;
  objectStorage: ObjectStorage;
  faceSource?: FaceSource;
}

export type TaskCounter = 'images_requested' | 'images_made' | 'retries' | 'moderation_blocks';

export const now = () => new Date().toISOString();

/** How many jobs' worth of the image budget admission lets in at once, in time: enough to keep the provider busy. */
const IMAGE_BURST_MS = 3_000;

/** A reported token count as a whole, non-negative number (a provider's odd value must not fail the upsert). */
function tokens(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.round(value) : 0;
}

export interface StageSupportOptions {
  /** Fleet-wide provider limits (limits/fleet.ts); without it calls are limited by this process only. */
  limiter?: FleetLimiter;
  orm: Orm;
  config: AvatarGenConfig;
  log: Logger;
  ports: PipelinePorts;
  owners?: Partial<Record<PortName, PortOwner>>;
  /** Error log entries are shown on pages: no secret may reach them, whatever a plugin put in a message. */
  redact: (text: string) => string;
  notifyTask: (taskId: string) => Promise<void>;
}

/**
 * What both stages share: provider and storage calls with their retry windows, the task's usage
 * and counters, its error log, and the abort controllers of its work in this process (a cancel
 * heard from any process aborts them).
 */
export class StageSupport {
  private readonly controllers = new Map<string, Set<AbortController>>();

  constructor(readonly options: StageSupportOptions) {}

  get em(): EntityManager {
    return this.options.orm.em.fork() as EntityManager;
  }

  get config(): AvatarGenConfig {
    return this.options.config;
  }

  get log(): Logger {
    return this.options.log;
  }

  get ports(): PipelinePorts {
    return this.options.ports;
  }

  redact(text: string): string {
    return this.options.redact(text);
  }

  notifyTask(taskId: string): Promise<void> {
    return this.options.notifyTask(taskId);
  }

  track(taskId: string): AbortController {
    const controller = new AbortController();
    // A persona's pictures run side by side on the job's signal: each waits on it (a provider
    // call, the image pool, a storage retry), so more than Node's warning level of 10 is normal.
    setMaxListeners(200, controller.signal);
    let set = this.controllers.get(taskId);
    if (!set) {
      set = new Set();
      this.controllers.set(taskId, set);
    }
    set.add(controller);
    return controller;
  }

  untrack(taskId: string, controller: AbortController): void {
    const set = this.controllers.get(taskId);
    set?.delete(controller);
    if (set?.size === 0) this.controllers.delete(taskId);
  }

  abortTask(taskId: string): void {
    for (const controller of this.controllers.get(taskId) ?? []) controller.abort();
  }

  /** Tasks this process is working on now. */
  trackedTasks(): string[] {
    return [...this.controllers.keys()];
  }

  async appendLog(taskId: string, entry: Omit<ErrorLogEntry, 'at'>): Promise<void> {
    await this.em.execute(`update generation_tasks set error_log = error_log || ?::jsonb, updated_at = now() where id = ?`, [
      JSON.stringify([{ at: now(), ...entry }]),
      taskId,
    ]);
  }

  /**
   * Runs one provider call with a usage listener that adds what the provider reports to the task's
   * totals (one upsert per report), and waits for those writes. Accounting never fails the call: a
   * write that fails is logged.
   */
  async withUsage<T>(taskId: string, call: (onUsage: UsageListener) => Promise<T>): Promise<T> {
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
            [
              taskId,
              String(usage.provider),
              String(usage.model),
              tokens(usage.inputTokens),
              tokens(usage.outputTokens),
              tokens(usage.images ?? 0),
            ],
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
  async count(taskId: unknown, counter: TaskCounter, n = 1): Promise<void> {
    if (typeof taskId !== 'string' || n <= 0) return;
    await this.em
      .execute(
        `insert into task_counters (task_id, ${counter}) values (?, ?)
         on conflict (task_id) do update set ${counter} = task_counters.${counter} + excluded.${counter}`,
        [taskId, n],
      )
      .catch((error: unknown) => this.log.warn({ taskId, counter, error: describeError(error) }, 'task counter not recorded'));
  }

  /**
   * One call to a provider port under the fleet's limits: it waits for its turn (limits/fleet.ts),
   * charges the tokens the provider reports, gives its slot back, and turns a 429's retry-after
   * into a pause for the whole fleet. Without a rule for the provider this is the call alone.
   */
  async limited<T>(
    port: 'personaProvider' | 'imagePromptProvider' | 'imageProvider',
    spend: { images?: number },
    signal: AbortSignal,
    call: (onUsage: UsageListener) => Promise<T>,
    taskId: string,
  ): Promise<T> {
    const limiter = this.options.limiter;
    const provider = providerName(this.options.owners?.[port]?.plugin ?? port);
    const model = this.providerModel(port);
    const permit = limiter ? await limiter.acquire({ provider, model, images: spend.images }, signal) : undefined;
    let tokens = 0;
    try {
      return await this.withUsage(taskId, (onUsage) =>
        call((usage) => {
          tokens += (usage.inputTokens ?? 0) + (usage.outputTokens ?? 0);
          onUsage(usage);
        }),
      );
    } catch (error) {
      const retryAfterMs = error instanceof AvatarGenError ? error.retryAfterMs : undefined;
      if (limiter && error instanceof AvatarGenError && error.status === 429 && retryAfterMs) {
        await limiter
          .pause(provider, model, retryAfterMs)
          .catch((e: unknown) => this.log.warn({ error: describeError(e) }, 'fleet pause not recorded'));
      }
      throw error;
    } finally {
      if (permit) {
        if (tokens > 0) await permit.used(tokens);
        await permit.release();
      }
    }
  }

  /**
   * Before a worker takes another persona's pictures: admission under the image provider's fleet
   * limit (limits/fleet.ts admit()), at the rate the limit can serve a job's calls.
   * False when no limit applies.
   */
  async roomForImages(): Promise<boolean> {
    const limiter = this.options.limiter;
    if (!limiter) return false;
    const provider = providerName(this.options.owners?.imageProvider?.plugin ?? 'imageProvider');
    return await limiter.admit(provider, this.providerModel('imageProvider'), this.imageCallsPerJob, IMAGE_BURST_MS);
  }

  /** Image calls a persona's job made lately (a base picture and a grid per four pictures): admission's estimate. */
  private imageCallsPerJob = 3;

  /** Records how many image calls a job made, for the next admissions. */
  imageJobMade(calls: number): void {
    if (calls > 0) this.imageCallsPerJob = this.imageCallsPerJob * 0.8 + calls * 0.2;
  }

  private providerModel(port: 'personaProvider' | 'imagePromptProvider' | 'imageProvider'): string {
    try {
      return this.ports[port].describe?.().model ?? '';
    } catch {
      return '';
    }
  }

  /** A provider call: outages are ridden out for PROVIDER_RETRY_WINDOW_SECONDS, bad answers retried JOB_RETRY_LIMIT times. */
  async retrying<T>(fn: () => Promise<T>, signal: AbortSignal, what: Record<string, unknown>): Promise<T> {
    const { config } = this;
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
      // A block is not retried: it ends here, counted once (blocked reference faces are counted where they are flagged).
      if (error instanceof ModerationError) await this.count(what.taskId, 'moderation_blocks');
      throw error;
    } finally {
      await Promise.all(retries);
    }
  }

  /** A storage call: a storage that refuses writes (read-only, full, S3 down) is waited out for STORAGE_RETRY_WINDOW_SECONDS. */
  storing<T>(fn: () => Promise<T>, signal: AbortSignal, what: Record<string, unknown>): Promise<T> {
    const { config } = this;
    return withRetry(fn, {
      attempts: 1,
      baseDelayMs: Math.max(config.JOB_RETRY_DELAY_MS, 1),
      maxDelayMs: config.JOB_RETRY_MAX_DELAY_MS,
      windowMs: config.STORAGE_RETRY_WINDOW_SECONDS * 1000,
      signal,
      onRetry: (error, attempt, waitMs) => this.log.warn({ ...what, attempt, waitMs, error: describeError(error) }, 'storage retry'),
    });
  }
}
