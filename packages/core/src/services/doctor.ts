import type { EntityManager } from '@mikro-orm/postgresql';
import type { Orm } from '../db/orm.js';
import { FINAL_STATUSES, type TaskStatus } from '../domain/status.js';
import { describeError } from '../errors.js';
import type { ObjectStorage, StoredObject } from '../ports.js';
import { TASKS_ROOT, taskFolderOf } from '../storage/keys.js';
import type { TasksService } from './tasks.js';

const ROOT = TASKS_ROOT;
/** Keys per deleteMany call and per verification query (S3's DeleteObjects limit). */
const PAGE = 1000;

/** A row that names an object the storage does not have. */
export interface MissingObject {
  taskId: string;
  personaId: number;
  /** `base`: the persona's base image (personas.base_image_key); `image`: one of its pictures (persona_images). */
  kind: 'base' | 'image';
  /** The picture's index for `image`, null for `base`. */
  idx: number | null;
  key: string;
}

/** An object under `tasks/` that no row references. */
export interface OrphanObject {
  key: string;
  size: number;
  /** The task whose folder holds it; null when no task has that folder (a deleted task's leftovers). */
  taskId: string | null;
}

export interface DoctorFixes {
  orphansDeleted: number;
  imageRowsDeleted: number;
  baseKeysCleared: number;
  /** Personas set back to images_status 'pending'. */
  personasReset: number;
  /** Tasks sent back to the queue to make what was lost. */
  tasksRetried: string[];
  /** Tasks whose rows were reset but that were not retried, and why (a cancelled task stays cancelled). */
  tasksNotRetried: Array<{ taskId: string; reason: string }>;
  /** Temporary files of dead writes removed by the storage's sweep; null when the storage has none. */
  tempFilesRemoved: number | null;
  /** What could not be done; the problems it concerns remain. */
  errors: string[];
}

export interface DoctorReport {
  /** Objects listed under `tasks/`. */
  objects: number;
  /** Object keys in rows (base images and pictures) of ended tasks that were checked. */
  rows: number;
  /** Ended tasks checked. */
  tasks: number;
  /** Pending and running tasks: their objects are written a moment before their rows, so they are left alone. */
  skipped: { tasks: number; objects: number };
  /** Rows whose object is missing: `count` in all, the first `items`. */
  missing: { count: number; items: MissingObject[] };
  /** Objects that no row references: `count` in all, `bytes` their size, the first `items`. */
  orphans: { count: number; bytes: number; items: OrphanObject[] };
  /** What `fix` did; null without it. */
  fixed: DoctorFixes | null;
  /** Nothing found, or (with fix) everything found was repaired or queued to be made again. */
  healthy: boolean;
}

export interface DoctorOptions {
  /**
   * Repair: delete the orphan objects; for missing objects delete the image rows or clear the base
   * image key, set the persona's images back to pending and retry its task (which then makes only
   * what is missing). Also sweeps the storage's leftover temporary files when it can.
   */
  fix?: boolean;
  /** Items per list in the report (the counts are always complete). Default 100. */
  limit?: number;
  /**
   * Objects kept in the storage next to the images but derived from them, such as the host's cached
   * thumbnails: returns the key of the object `key` was made from, or null when `key` is not a
   * derived object. A derived object is kept while its source is referenced and present, and is an
   * orphan otherwise (a thumbnail of a lost picture would show the old picture after the retry).
   */
  derivedFrom?: (key: string) => string | null;
}

interface Ref {
  taskId: string;
  personaId: number;
  kind: 'base' | 'image';
  idx: number | null;
  key: string;
}

interface TaskRow {
  id: string;
  status: TaskStatus;
  prefix: string;
}

const isEnded = (status: TaskStatus) => FINAL_STATUSES.includes(status);

const folderOf = taskFolderOf;

function addRef(map: Map<string, Ref[]>, ref: Ref): void {
  const list = map.get(ref.key);
  if (list) list.push(ref);
  else map.set(ref.key, [ref]);
}

function pages<T>(items: readonly T[], size = PAGE): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** A storage that can remove leftover temporary files (the filesystem storage can). */
interface TempSweeper {
  sweepTempFiles(): Promise<number>;
}

function hasTempSweep(storage: ObjectStorage): storage is ObjectStorage & TempSweeper {
  return typeof (storage as Partial<TempSweeper>).sweepTempFiles === 'function';
}

/**
 * Checks the object storage against the database: rows whose object is missing, and objects under
 * `tasks/` that no row references (including those of tasks that no longer exist). Reads the
 * storage with one streamed `list('tasks/')`, never object by object, so it works the same on the
 * filesystem storage and on S3. Pending and running tasks are skipped. With `fix`, repairs what it
 * found (see DoctorOptions.fix).
 *
 * Memory: every key the rows name (one entry per stored picture), plus the findings.
 */
export class Doctor {
  constructor(
    private readonly orm: Orm,
    private readonly storage: ObjectStorage,
    private readonly tasks: TasksService,
  ) {}

  private get em(): EntityManager {
    return this.orm.em.fork() as EntityManager;
  }

  async run(options: DoctorOptions = {}): Promise<DoctorReport> {
    const limit = Math.max(0, options.limit ?? 100);
    const em = this.em;
    const taskRows: TaskRow[] = (await em.execute('select id, status, storage_prefix from generation_tasks')).map((r) => ({
      id: r.id,
      status: r.status,
      prefix: r.storage_prefix,
    }));
    const byPrefix = new Map(taskRows.map((t) => [t.prefix, t]));
    const ended = new Set(taskRows.filter((t) => isEnded(t.status)).map((t) => t.id));
    const skippedTasks = new Set(taskRows.filter((t) => !ended.has(t.id)).map((t) => t.id));

    // Every key a row names (one entry per stored picture: a few MB for a large site).
    const refs = new Map<string, Ref[]>();
    for (const r of await em.execute('select task_id, persona_id, idx, key from persona_images')) {
      addRef(refs, { taskId: r.task_id, personaId: r.persona_id, kind: 'image', idx: r.idx, key: r.key });
    }
    for (const r of await em.execute('select task_id, id, base_image_key from personas where base_image_key is not null')) {
      addRef(refs, { taskId: r.task_id, personaId: r.id, kind: 'base', idx: null, key: r.base_image_key });
    }

    // One streamed pass over the storage, in whatever order it lists.
    const seen = new Set<string>();
    const unreferenced: Array<{ object: StoredObject; taskId: string | null }> = [];
    let objects = 0;
    let skippedObjects = 0;
    for await (const object of this.storage.list(ROOT)) {
      objects++;
      const folder = folderOf(object.key);
      const task = folder === null ? undefined : byPrefix.get(folder);
      // A running task writes its objects a moment before their rows: leave them alone.
      if (task && !ended.has(task.id)) skippedObjects++;
      else if (refs.has(object.key)) seen.add(object.key);
      else unreferenced.push({ object, taskId: task?.id ?? null });
    }

    const missingByTask = new Map<string, Ref[]>();
    let rows = 0;
    for (const [key, list] of refs) {
      for (const ref of list) {
        if (!ended.has(ref.taskId)) continue;
        rows++;
        if (!seen.has(key)) missingByTask.set(ref.taskId, [...(missingByTask.get(ref.taskId) ?? []), ref]);
      }
    }
    // A derived object (a cached thumbnail) is kept while its source is referenced and present.
    const orphansByTask = new Map<string, OrphanObject[]>();
    const homeless: OrphanObject[] = []; // in folders of no task
    for (const { object, taskId } of unreferenced) {
      const source = options.derivedFrom?.(object.key);
      if (source && seen.has(source)) continue;
      const orphan = { key: object.key, size: object.size, taskId };
      if (taskId === null) homeless.push(orphan);
      else orphansByTask.set(taskId, [...(orphansByTask.get(taskId) ?? []), orphan]);
    }

    // Statuses may have changed while the storage was listed: a task retried or deleted meanwhile is
    // left for the next run, and a folder whose task was made meanwhile is not an orphan.
    await this.dropChanged(em, missingByTask, orphansByTask, skippedTasks);
    const madeMeanwhile = await this.tasksOfFolders(
      em,
      homeless.map((o) => folderOf(o.key)),
    );
    const orphans = homeless.filter((o) => {
      if (!madeMeanwhile.has(folderOf(o.key) ?? '')) return true;
      skippedObjects++;
      return false;
    });
    for (const list of orphansByTask.values()) orphans.push(...list);
    const missing = [...missingByTask.values()].flat();

    const report: DoctorReport = {
      objects,
      rows,
      tasks: taskRows.filter((t) => !skippedTasks.has(t.id)).length,
      skipped: { tasks: skippedTasks.size, objects: skippedObjects },
      missing: { count: missing.length, items: missing.slice(0, limit) },
      orphans: { count: orphans.length, bytes: orphans.reduce((sum, o) => sum + o.size, 0), items: orphans.slice(0, limit) },
      fixed: null,
      healthy: missing.length === 0 && orphans.length === 0,
    };
    if (options.fix) {
      report.fixed = await this.fix(missing, orphans);
      report.healthy = report.fixed.errors.length === 0;
    }
    return report;
  }

  private async dropChanged(
    em: EntityManager,
    missingByTask: Map<string, Ref[]>,
    orphansByTask: Map<string, OrphanObject[]>,
    skippedTasks: Set<string>,
  ): Promise<void> {
    const ids = [...new Set([...missingByTask.keys(), ...orphansByTask.keys()])].filter(
      (id) => (missingByTask.get(id)?.length ?? 0) + (orphansByTask.get(id)?.length ?? 0) > 0,
    );
    if (ids.length === 0) return;
    const now = new Map<string, TaskStatus>();
    for (const page of pages(ids)) {
      for (const r of await em.execute('select id, status from generation_tasks where id in (?)', [page])) now.set(r.id, r.status);
    }
    for (const id of ids) {
      const status = now.get(id);
      if (status && isEnded(status)) continue;
      missingByTask.delete(id);
      orphansByTask.delete(id);
      if (status) skippedTasks.add(id);
    }
  }

  private async tasksOfFolders(em: EntityManager, folders: Array<string | null>): Promise<Map<string, TaskRow>> {
    const unique = [...new Set(folders.filter((f): f is string => f !== null))];
    const out = new Map<string, TaskRow>();
    for (const page of pages(unique)) {
      const rows = await em.execute('select id, status, storage_prefix from generation_tasks where storage_prefix in (?)', [page]);
      for (const r of rows) out.set(r.storage_prefix, { id: r.id, status: r.status, prefix: r.storage_prefix });
    }
    return out;
  }

  private async fix(missing: Ref[], orphans: OrphanObject[]): Promise<DoctorFixes> {
    const fixes: DoctorFixes = {
      orphansDeleted: 0,
      imageRowsDeleted: 0,
      baseKeysCleared: 0,
      personasReset: 0,
      tasksRetried: [],
      tasksNotRetried: [],
      tempFilesRemoved: null,
      errors: [],
    };
    for (const page of pages(orphans)) {
      try {
        fixes.orphansDeleted += await this.deleteOrphans(page);
      } catch (error) {
        fixes.errors.push(`deleting ${page.length} orphan objects: ${describeError(error)}`);
      }
    }
    const byTask = new Map<string, Ref[]>();
    for (const ref of missing) byTask.set(ref.taskId, [...(byTask.get(ref.taskId) ?? []), ref]);
    const toRetry: string[] = [];
    for (const [taskId, refs] of byTask) {
      try {
        const { status, imageRowsDeleted, baseKeysCleared, personasReset } = await this.resetRows(taskId, refs);
        fixes.imageRowsDeleted += imageRowsDeleted;
        fixes.baseKeysCleared += baseKeysCleared;
        fixes.personasReset += personasReset;
        if (status === 'cancelled') fixes.tasksNotRetried.push({ taskId, reason: 'cancelled: Retry it to make what is missing' });
        else if (status) toRetry.push(taskId);
        else fixes.tasksNotRetried.push({ taskId, reason: 'started again or deleted meanwhile' });
      } catch (error) {
        fixes.errors.push(`resetting the rows of task ${taskId}: ${describeError(error)}`);
      }
    }
    for (const taskId of toRetry) {
      try {
        await this.tasks.retry(taskId);
        fixes.tasksRetried.push(taskId);
      } catch (error) {
        fixes.errors.push(`retrying task ${taskId}: ${describeError(error)}`);
      }
    }
    if (hasTempSweep(this.storage)) {
      try {
        fixes.tempFilesRemoved = await this.storage.sweepTempFiles();
      } catch (error) {
        fixes.errors.push(`sweeping temporary files: ${describeError(error)}`);
      }
    }
    return fixes;
  }

  /**
   * Deletes one page of orphans after checking them again under a share lock on their tasks' rows:
   * a retry (which takes those rows for update) cannot start meanwhile and write to these keys. Keys
   * that a row references by now, and objects of tasks that are no longer ended, are kept.
   */
  private async deleteOrphans(page: OrphanObject[]): Promise<number> {
    return this.em.transactional(async (tem) => {
      const em = tem as EntityManager;
      const folders = [...new Set(page.map((o) => folderOf(o.key)).filter((f): f is string => f !== null))];
      const live = new Set<string>();
      if (folders.length > 0) {
        const rows = await em.execute('select storage_prefix, status from generation_tasks where storage_prefix in (?) for share', [
          folders,
        ]);
        for (const r of rows) if (!isEnded(r.status)) live.add(r.storage_prefix);
      }
      const keys = page.map((o) => o.key);
      const referenced = new Set(
        (
          await em.execute(
            `select key from persona_images where key in (?) union select base_image_key from personas where base_image_key in (?)`,
            [keys, keys],
          )
        ).map((r) => r.key),
      );
      const doomed = keys.filter((key) => !referenced.has(key) && !live.has(folderOf(key) ?? ''));
      if (doomed.length > 0) await this.storage.deleteMany(doomed);
      return doomed.length;
    });
  }

  /**
   * For one task, under a lock on its row: deletes the image rows and clears the base image keys
   * whose object is lost, and sets those personas' images back to pending. Returns the task's
   * status (null when it is no longer ended, or gone, and nothing was changed) and the counts.
   */
  private async resetRows(
    taskId: string,
    refs: Ref[],
  ): Promise<{ status: TaskStatus | null; imageRowsDeleted: number; baseKeysCleared: number; personasReset: number }> {
    return this.em.transactional(async (tem) => {
      const em = tem as EntityManager;
      const out = { status: null as TaskStatus | null, imageRowsDeleted: 0, baseKeysCleared: 0, personasReset: 0 };
      const [task] = await em.execute('select status from generation_tasks where id = ? for update', [taskId]);
      if (!task || !isEnded(task.status)) return out;
      const images = refs.filter((r) => r.kind === 'image').map((r) => ({ persona_id: r.personaId, idx: r.idx, key: r.key }));
      const bases = refs.filter((r) => r.kind === 'base').map((r) => ({ id: r.personaId, key: r.key }));
      if (images.length > 0) {
        const deleted = await em.execute(
          `delete from persona_images i using jsonb_to_recordset(?::jsonb) as r(persona_id int, idx int, key text)
            where i.task_id = ? and i.persona_id = r.persona_id and i.idx = r.idx and i.key = r.key returning i.persona_id`,
          [JSON.stringify(images), taskId],
        );
        out.imageRowsDeleted = deleted.length;
      }
      if (bases.length > 0) {
        const cleared = await em.execute(
          `update personas p set base_image_key = null from jsonb_to_recordset(?::jsonb) as r(id int, key text)
            where p.task_id = ? and p.id = r.id and p.base_image_key = r.key returning p.id`,
          [JSON.stringify(bases), taskId],
        );
        out.baseKeysCleared = cleared.length;
      }
      const personas = [...new Set(refs.map((r) => r.personaId))];
      const reset = await em.execute(
        `update personas set images_status = 'pending', images_error = null where task_id = ? and id in (?) returning id`,
        [taskId, personas],
      );
      out.personasReset = reset.length;
      out.status = task.status as TaskStatus;
      return out;
    });
  }
}
