import PQueue from 'p-queue';
import type { EntityManager } from '@mikro-orm/postgresql';
import { GenerationTask, Persona, type TaskEntity } from '../db/entities.js';
import { normalizePersona, type PersonaData } from '../domain/persona.js';
import { bioInstructions } from '../domain/settings.js';
import { assignQuotas, hasQuota, type PersonaQuota, quotaMiss, taskQuotas } from '../domain/targets.js';
import { CancelledError, describeError, isDatabaseUnavailable } from '../errors.js';
import type { PersonaBatch } from '../ports.js';
import { foldName, fullNameKey } from '../quality/text.js';
import { personaColumns } from '../services/views.js';
import type { BatchJob } from './queue.js';
import { now, type StageSupport } from './support.js';

export const BATCH_SIZE = 10;

/** Splits a count into batches of at most `size`: 37 -> [10, 10, 10, 7]. */
export function batchSizes(count: number, size = BATCH_SIZE): number[] {
  const sizes: number[] = [];
  for (let left = count; left > 0; left -= size) sizes.push(Math.min(size, left));
  return sizes;
}

/**
 * The persona stage: one job per batch of at most BATCH_SIZE personas. A batch asks the persona
 * provider for what it still lacks, checks every answer at our edge, and stores the personas and
 * closes the batch in one transaction, so a batch run twice never stores anyone twice.
 */
export class PersonaStage {
  /** Persona provider calls in flight in this process (MULTITHREAD_FLOWISE). */
  private readonly calls: PQueue;

  constructor(
    private readonly support: StageSupport,
    private readonly advance: (taskId: string) => Promise<void>,
  ) {
    this.calls = new PQueue({ concurrency: support.config.MULTITHREAD_FLOWISE });
  }

  async run(job: BatchJob): Promise<void> {
    // Tracked before the task is read: a cancel that lands after that read still aborts this work.
    const controller = this.support.track(job.taskId);
    try {
      await this.work(job, controller);
    } finally {
      this.support.untrack(job.taskId, controller);
    }
  }

  private async work(job: BatchJob, controller: AbortController): Promise<void> {
    const { support } = this;
    const em = support.em;
    const task = await em.findOne(GenerationTask, { id: job.taskId });
    if (task?.status !== 'generating-data' || task.run !== job.run) return;
    const [batch] = await em.execute(
      `select b.size, b.status, b.received, count(p.id)::int as stored, coalesce(max(p.batch_index) + 1, 0)::int as next_index
       from persona_batches b left join personas p on p.task_id = b.task_id and p.batch_no = b.batch_no
       where b.task_id = ? and b.batch_no = ? group by b.size, b.status, b.received`,
      [job.taskId, job.batchNo],
    );
    if (batch?.status !== 'pending') {
      await this.advance(job.taskId);
      return;
    }
    // A retried batch asks only for the personas it still lacks.
    const wanted: number = batch.size - batch.stored;
    try {
      if (wanted <= 0) {
        await this.finish(job.taskId, job.batchNo, { firstIndex: batch.next_index });
        return;
      }
      const settings = task.settings;
      // A batch asked again after it stored someone (a retry for the rest, a regenerated persona) gets a
      // new seed, so a deterministic provider does not give the same people back.
      const seed = `${task.id}:${job.batchNo}${task.run > 0 && (batch.stored > 0 || batch.received > 0) ? `:${task.run}` : ''}`;
      const personas: PersonaData[] = [];
      const reasons: string[] = [];
      const { signal } = controller;
      // Who is in the task already: a provider is told the names, and a repeat is asked for again.
      const taken = await TakenIdentities.of(em, task.id);
      // The quotas this batch still has to fill (all empty when the task has no targets).
      const open = await openQuotas(em, task, job.batchNo, batch.size);
      const targeted = open.some(hasQuota);
      // A persona that misses its quota is asked for again (settings.target_retries rounds), then kept.
      const retries = targeted ? Math.max(0, Math.min(2, Number(settings.target_retries ?? 2))) : 0;
      const missed: PersonaData[] = [];
      let offTarget = 0;
      // A provider may answer with fewer personas than asked (a model that stopped early, a smaller
      // batch after a cut answer): ask again for the rest, while each round brings someone new.
      const rounds = Math.max(1, support.config.JOB_RETRY_LIMIT, retries + 1);
      for (let round = 0; personas.length < wanted && round < rounds; round++) {
        const asked = wanted - personas.length;
        let result: PersonaBatch;
        try {
          result = await support.retrying(
            () =>
              this.calls.add(
                () =>
                  support.limited(
                    'personaProvider',
                    {},
                    signal,
                    (onUsage) =>
                      support.ports.personaProvider.generate({
                        count: asked,
                        description: task.description,
                        language: { code: task.languageCode, name: task.languageName },
                        bioInstructions: bioInstructions(settings),
                        seed: round === 0 ? seed : `${seed}:rest${round}`,
                        avoidNames: taken.names(),
                        ...(targeted ? { quotas: open.slice(0, asked) } : {}),
                        signal,
                        onUsage,
                      }),
                    task.id,
                  ),
                { signal },
              ),
            signal,
            { taskId: task.id, batch: job.batchNo, round },
          );
        } catch (error) {
          // The first answer's failure fails the batch; a later one keeps what earlier rounds got.
          if (round === 0 || error instanceof CancelledError || signal.aborted || isDatabaseUnavailable(error)) throw error;
          reasons.push(`asking again for the rest failed: ${describeError(error)}`);
          break;
        }
        // Validate again at our edge: a plugin's answer is input like any other.
        reasons.push(...result.rejected.map((r) => r.reason));
        let added = 0;
        let refused = 0;
        for (const candidate of result.personas) {
          const normalized = normalizePersona(candidate);
          if (!normalized.ok) reasons.push(normalized.reason);
          else if (personas.length < wanted) {
            const persona = normalized.persona;
            const repeat = taken.repeat(persona);
            if (repeat) {
              reasons.push(repeat);
              refused++;
              continue;
            }
            const slot = open.findIndex((quota) => quotaMiss(persona, quota) === null);
            if (slot < 0) {
              // Off target: asked for again while rounds for that are left, else kept below.
              offTarget++;
              support.log.debug(
                { taskId: task.id, batch: job.batchNo, round, miss: quotaMiss(persona, open[0]) },
                'persona missed its quota',
              );
              if (round < retries) {
                missed.push(persona);
                refused++;
                continue;
              }
            }
            open.splice(slot < 0 ? 0 : slot, 1);
            taken.add(persona);
            personas.push(persona);
            added++;
          }
        }
        // Ask again while a round brings someone new, or only refusals (which a new seed may avoid).
        if (added === 0 && refused === 0) break;
      }
      // Rounds ran out with quotas still open: someone off target beats no one.
      for (const persona of missed) {
        if (personas.length >= wanted) break;
        if (taken.repeat(persona)) continue;
        taken.add(persona);
        personas.push(persona);
        open.shift();
      }
      const total = batch.stored + personas.length;
      const message =
        total < batch.size
          ? `Batch ${job.batchNo + 1}: ${total} of ${batch.size} personas${
              reasons.length ? ` (${reasons.length} rejected: ${[...new Set(reasons)].slice(0, 3).join('; ')})` : ''
            }`
          : null;
      await this.finish(job.taskId, job.batchNo, {
        personas,
        rejected: reasons.length,
        offTarget,
        message: message && support.redact(message),
        firstIndex: batch.next_index,
      });
    } catch (error) {
      if (error instanceof CancelledError || controller.signal.aborted) return;
      if (isDatabaseUnavailable(error)) throw error; // not the batch's fault: it is sent again
      const message = support.redact(`Batch ${job.batchNo + 1} failed: ${describeError(error)}`);
      support.log.warn({ taskId: job.taskId, batch: job.batchNo, error: describeError(error) }, 'persona batch failed');
      await this.finish(job.taskId, job.batchNo, { message, failed: true, firstIndex: batch.next_index });
    }
    await this.advance(job.taskId);
  }

  /** Closes a batch whose job stopped its worker again and again, keeping what it stored. */
  async giveUp(taskId: string, batchNo: number, message: string): Promise<void> {
    await this.finish(taskId, batchNo, { message: `Batch ${batchNo + 1}: ${message}`, failed: true });
  }

  /** Stores a batch's personas and closes the batch in one transaction; a second run finds it closed. */
  private async finish(taskId: string, batchNo: number, outcome: BatchOutcome): Promise<void> {
    let { personas = [], message = null } = outcome;
    const { rejected = 0, offTarget = 0, failed = false, firstIndex = 0 } = outcome;
    const closed = await this.support.em.transactional(async (em) => {
      const [row] = await em.execute(
        `select size, (select count(*)::int from personas where task_id = ? and batch_no = ?) as stored
         from persona_batches where task_id = ? and batch_no = ? and status = 'pending' for update`,
        [taskId, batchNo, taskId, batchNo],
      );
      if (!row) return false;
      // Batches run side by side: the last check against the task's people is made here, one batch at a time.
      await em.execute('select pg_advisory_xact_lock(hashtext(?))', [`avatargen-names:${taskId}`]);
      const taken = await TakenIdentities.of(em, taskId);
      const kept = personas.filter((persona) => {
        if (taken.repeat(persona)) return false;
        taken.add(persona);
        return true;
      });
      const raced = personas.length - kept.length;
      personas = kept;
      const received: number = row.stored + personas.length;
      if (raced > 0 && !failed && received < row.size) {
        // Another batch stored the same person meanwhile: the rest is kept and the batch stays open,
        // so the reconcile sends it again and it asks for what it still lacks.
        await em.execute(
          `update persona_batches set received = ?, rejected = rejected + ?, off_target = off_target + ?, job_id = null, updated_at = now()
           where task_id = ? and batch_no = ?`,
          [received, rejected + raced, offTarget, taskId, batchNo],
        );
        message = null;
      } else {
        await em.execute(
          `update persona_batches set status = ?, received = ?, rejected = rejected + ?, off_target = off_target + ?, error = ?, updated_at = now()
           where task_id = ? and batch_no = ?`,
          [failed || received === 0 ? 'failed' : 'done', received, rejected, offTarget, message, taskId, batchNo],
        );
      }
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
        await em.execute(`update generation_tasks set error_log = error_log || ?::jsonb, updated_at = now() where id = ?`, [
          JSON.stringify([{ at: now(), stage: 'personas', message }]),
          taskId,
        ]);
      }
      return true;
    });
    if (closed) await this.support.notifyTask(taskId);
  }
}

interface BatchOutcome {
  personas?: PersonaData[];
  /** Personas refused: malformed, or repeating someone. */
  rejected?: number;
  /** Personas that missed their quota (asked for again, or stored off target). */
  offTarget?: number;
  message?: string | null;
  failed?: boolean;
  /** batch_index of the first persona stored. */
  firstIndex?: number;
}

/**
 * The quotas a batch still has to fill: the task's quotas of the batch's personas (domain/targets.ts),
 * less those its stored personas fill. A stored persona that meets none (kept off target) takes one anyway.
 */
async function openQuotas(em: EntityManager, task: TaskEntity, batchNo: number, size: number): Promise<PersonaQuota[]> {
  if (!task.targets) return Array.from({ length: size }, () => ({}));
  const offset = batchNo * BATCH_SIZE;
  const quotas = taskQuotas(task.targets, task.count, task.id).slice(offset, offset + size);
  const rows = await em.execute(
    `select gender, age, ethnicity, current_city, current_state, current_country from personas where task_id = ? and batch_no = ? order by batch_index`,
    [task.id, batchNo],
  );
  const stored = rows.map(
    (r) =>
      ({
        gender: r.gender,
        age: r.age,
        ethnicity: r.ethnicity,
        currentCity: r.current_city,
        currentState: r.current_state,
        currentCountry: r.current_country,
      }) as PersonaData,
  );
  const { taken, open } = assignQuotas(stored, quotas);
  const offTarget = taken.filter((slot) => slot < 0).length;
  return open.slice(offTarget).map((i) => quotas[i] as PersonaQuota);
}

/** How many of the task's full names a provider is told (the latest ones). */

const AVOID_NAMES_MAX = 500;

/**
 * The identities already in a task: full names (case and accents aside), and first name with age
 * and city. A persona repeating either is rejected: 300 personas stored as `Ingrid Rossi`,
 * `Ingrid Rossi_2`... are 10 people, not 300.
 */
class TakenIdentities {
  private readonly fullNames = new Map<string, string>();
  private readonly lives = new Set<string>();

  static async of(em: EntityManager, taskId: string): Promise<TakenIdentities> {
    const taken = new TakenIdentities();
    const rows = await em.execute('select first_name, last_name, age, current_city from personas where task_id = ? order by id', [taskId]);
    for (const row of rows) taken.add({ firstName: row.first_name, lastName: row.last_name, age: row.age, currentCity: row.current_city });
    return taken;
  }

  private static life(p: Pick<PersonaData, 'firstName' | 'age' | 'currentCity'>): string | null {
    if (p.age === null || p.age === undefined || !p.currentCity) return null;
    return `${foldName(p.firstName)}|${p.age}|${foldName(p.currentCity)}`;
  }

  add(p: Pick<PersonaData, 'firstName' | 'lastName' | 'age' | 'currentCity'>): void {
    this.fullNames.set(fullNameKey(p.firstName, p.lastName), `${p.firstName} ${p.lastName}`.trim());
    const life = TakenIdentities.life(p);
    if (life) this.lives.add(life);
  }

  /** Why the persona repeats someone in the task, or null. */
  repeat(p: Pick<PersonaData, 'firstName' | 'lastName' | 'age' | 'currentCity'>): string | null {
    const name = `${p.firstName} ${p.lastName}`.trim();
    if (this.fullNames.has(fullNameKey(p.firstName, p.lastName)))
      return `${name} repeats the full name of a persona already in the dataset`;
    const life = TakenIdentities.life(p);
    if (life && this.lives.has(life)) return `${name} repeats the first name, age and city of a persona already in the dataset`;
    return null;
  }

  names(): string[] {
    return [...this.fullNames.values()].slice(-AVOID_NAMES_MAX);
  }
}
