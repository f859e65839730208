import type { EntityManager } from '@mikro-orm/postgresql';
import type { Orm } from '../db/orm.js';
import { isFinal } from '../domain/status.js';
import { type DemographicTargets, type TargetsReport, targetsReport } from '../domain/targets.js';
import { DEFAULT_MAX_PICTURE_DISTANCE, type HashedPicture, type SimilarPicturePair, similarPictures } from '../quality/pictures.js';
import { duplicateNames, type NameDuplicate, type NearDuplicatePair, nearDuplicateTexts, type TextItem } from '../quality/text.js';
import type { Scope, TasksService } from './tasks.js';

/** The texts of a persona the report compares across personas. */
const TEXT_FIELDS = ['bio_facebook', 'bio_instagram', 'bio_x', 'bio_tiktok', 'about'] as const;

export interface QualityReport {
  taskId: string;
  generatedAt: string;
  settings: { textThreshold: number; pictureMaxDistance: number };
  texts: { checked: number; nearDuplicates: NearDuplicatePair[] };
  names: { duplicates: NameDuplicate[] };
  /** Pictures made before hashes existed, or by a processor that makes none, are `unhashed`. */
  pictures: { hashed: number; unhashed: number; acrossPersonas: SimilarPicturePair[]; withinPersona: SimilarPicturePair[] };
  /** Personas named by any finding, ascending. */
  flaggedPersonas: number[];
  /** Personas the pipeline refused (malformed, or repeating someone already in the dataset). */
  rejectedPersonas: number;
  /** Personas that missed their demographic quota: asked for again, or stored off target. */
  offTargetPersonas: number;
  /** The demographic targets next to what the stored personas are; null when the task has none. */
  targets: TargetsReport | null;
}

export interface QualityOptions {
  /** Jaccard similarity of word shingles at or above which two texts are near-duplicates. Default 0.7. */
  textThreshold?: number;
  /** Hamming distance of perceptual hashes at or below which two pictures are near-duplicates. Default 10. */
  pictureMaxDistance?: number;
}

/**
 * A dataset's quality report, computed on demand from the rows: near-duplicate bios and "about"
 * texts across personas, personas sharing a full name, and near-identical pictures across
 * personas (two "different" people with one face) and within one (wasted shots). Pictures are
 * compared by the perceptual hashes stored with them, never by reading the images, so the report's
 * memory does not grow with the pictures' size.
 */
export class QualityService {
  constructor(
    private readonly orm: Orm,
    private readonly tasks: TasksService,
  ) {}

  /** The report computed now, from the rows (on demand). */
  async report(taskId: string, scope: Scope = {}, options: QualityOptions = {}): Promise<QualityReport> {
    const task = await this.tasks.get(taskId, scope); // the same object-level check as every dataset read
    return computeQualityReport(this.orm.em.fork() as EntityManager, task, options);
  }

  /**
   * The report kept with an ended task, made and kept now when it has none (a task that ended
   * before reports were kept): exports of an ended task carry the same report every time.
   */
  async kept(taskId: string, scope: Scope = {}): Promise<QualityReport> {
    const task = await this.tasks.get(taskId, scope);
    const em = this.orm.em.fork() as EntityManager;
    const [row] = await em.execute('select quality_report from generation_tasks where id = ?', [taskId]);
    if (row?.quality_report) return row.quality_report as QualityReport;
    const report = await computeQualityReport(em, task);
    if (isFinal(task.status)) await keepQualityReport(em, taskId, task.status, report);
    return report;
  }

  /** The report computed when the task last ended, or null (never ended since, or ended before reports were stored). */
  async stored(taskId: string, scope: Scope = {}): Promise<QualityReport | null> {
    await this.tasks.get(taskId, scope);
    const [row] = await this.orm.em.fork().execute('select quality_report from generation_tasks where id = ?', [taskId]);
    return (row?.quality_report as QualityReport | null) ?? null;
  }
}

/**
 * A task's quality report from its rows; `task` carries what the report needs of it. Used on
 * demand (QualityService.report) and by the pipeline when a task ends (stored in the task's row).
 */
export async function computeQualityReport(
  em: EntityManager,
  task: { id: string; count: number; targets: DemographicTargets | null },
  options: QualityOptions = {},
): Promise<QualityReport> {
  const taskId = task.id;
  const textThreshold = options.textThreshold ?? 0.7;
  const pictureMaxDistance = options.pictureMaxDistance ?? DEFAULT_MAX_PICTURE_DISTANCE;
  const personas = await em.execute(
    `select id, first_name, last_name, gender, age, ethnicity, current_city, current_state, current_country,
            ${TEXT_FIELDS.join(', ')}, base_phash, base_image_key from personas where task_id = ? order by id`,
    [taskId],
  );
  const [batches] = await em.execute(
    'select coalesce(sum(rejected), 0)::int as rejected, coalesce(sum(off_target), 0)::int as off_target from persona_batches where task_id = ?',
    [taskId],
  );
  const images = await em.execute('select persona_id, idx, phash from persona_images where task_id = ? order by persona_id, idx', [taskId]);

  const texts: TextItem[] = personas.flatMap((p) =>
    TEXT_FIELDS.map((field) => ({ personaId: p.id as number, field, text: String(p[field] ?? '') })),
  );
  const nearDuplicates = nearDuplicateTexts(texts, { threshold: textThreshold, seed: taskId });
  const names = duplicateNames(personas.map((p) => ({ personaId: p.id as number, firstName: p.first_name, lastName: p.last_name })));

  const hashed: HashedPicture[] = [];
  let unhashed = 0;
  for (const p of personas) {
    if (p.base_phash) hashed.push({ personaId: p.id, idx: 'base', hash: p.base_phash });
    else if (p.base_image_key) unhashed++;
  }
  for (const image of images) {
    if (image.phash) hashed.push({ personaId: image.persona_id, idx: image.idx, hash: image.phash });
    else unhashed++;
  }
  const { acrossPersonas, withinPersona } = similarPictures(hashed, { maxDistance: pictureMaxDistance });

  const flagged = new Set<number>();
  for (const pair of [...nearDuplicates, ...acrossPersonas, ...withinPersona]) {
    flagged.add(pair.a.personaId);
    flagged.add(pair.b.personaId);
  }
  for (const group of names) for (const id of group.personaIds) flagged.add(id);

  return {
    taskId,
    generatedAt: new Date().toISOString(),
    settings: { textThreshold, pictureMaxDistance },
    texts: { checked: texts.filter((t) => t.text.trim() !== '').length, nearDuplicates },
    names: { duplicates: names },
    pictures: { hashed: hashed.length, unhashed, acrossPersonas, withinPersona },
    flaggedPersonas: [...flagged].sort((a, b) => a - b),
    rejectedPersonas: batches?.rejected ?? 0,
    offTargetPersonas: batches?.off_target ?? 0,
    targets: task.targets
      ? targetsReport(
          task.targets,
          task.count,
          personas.map((p) => ({
            gender: p.gender,
            age: p.age,
            ethnicity: p.ethnicity,
            currentCity: p.current_city,
            currentState: p.current_state,
            currentCountry: p.current_country,
          })),
        )
      : null,
  };
}

/**
 * Keeps a report with its task, only while the task still has the status it was made for: a task
 * reopened meanwhile (a retry, a regenerate) would otherwise keep a report of rows that changed.
 */
export async function keepQualityReport(em: EntityManager, taskId: string, status: string, report: QualityReport): Promise<void> {
  await em.execute('update generation_tasks set quality_report = ?::jsonb where id = ? and status = ?', [
    JSON.stringify(report),
    taskId,
    status,
  ]);
}
