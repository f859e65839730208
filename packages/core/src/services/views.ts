import type { PersonaEntity, PersonaImageEntity, TaskEntity, ErrorLogEntry } from '../db/entities.js';
import type { PersonaData } from '../domain/persona.js';
import { type Cost, estimateCost, type Price } from '../domain/prices.js';
import type { Settings } from '../domain/settings.js';
import type { DemographicTargets } from '../domain/targets.js';
import { computeProgress, type Progress, type TaskStatus } from '../domain/status.js';
import type { ObjectStorage, StyleParams } from '../ports.js';

/**
 * How a status reads to a person (pages, screen readers, progress lines): one wording everywhere.
 * Programs keep the status names themselves.
 */
export const STATUS_LABELS: Readonly<Record<TaskStatus, string>> = Object.freeze({
  pending: 'Waiting to start',
  'generating-data': 'Writing personas',
  'data-generated': 'Personas written',
  'generating-images': 'Making pictures',
  completed: 'Completed',
  partial: 'Ended with gaps',
  failed: 'Failed',
  cancelled: 'Cancelled',
});

export function statusLabel(status: string): string {
  return Object.hasOwn(STATUS_LABELS, status) ? STATUS_LABELS[status as TaskStatus] : status;
}

/** A task as programs and pages see it. */
export interface TaskView {
  id: string;
  userId: number | null;
  description: string;
  language: { code: string; name: string };
  count: number;
  imagesPerPersona: number;
  status: TaskStatus;
  settings: Settings;
  /** The demographic targets asked for (domain/targets.ts), or null. */
  targets: DemographicTargets | null;
  errorLog: ErrorLogEntry[];
  progress: Progress;
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Tokens the task's model calls used, as providers reported them (see ProviderUsage), and the task's counts. */
  usage: TaskUsage;
  /** The usage at the site's price table (settings `prices`, `currency`): an estimate. */
  cost: Cost;
  /** Which plugin filled each port when the task was submitted (null for tasks from before this was recorded). */
  plugins: Record<string, string> | null;
}

/** One provider and model's share of a task's token usage. */
export interface ModelUsage {
  provider: string;
  model: string;
  calls: number;
  inputTokens: number;
  outputTokens: number;
  /** Images the provider reported making (what a per-image price multiplies). */
  images: number;
}

/** Per task counts the pipeline keeps beside the per-model usage. */
export interface TaskCounts {
  /** Images asked of the image provider (1 per base selfie, 4 per picture request), retries included. */
  imagesRequested: number;
  /** Images the image provider made that the pipeline kept. */
  imagesMade: number;
  /** Provider calls tried again after a failure. */
  retries: number;
  /** Requests the image service blocked (ModerationError), blocked reference faces included. */
  moderationBlocks: number;
  /** Personas the persona provider's answers held that could not be used. */
  rejectedPersonas: number;
}

export const NO_COUNTS: TaskCounts = { imagesRequested: 0, imagesMade: 0, retries: 0, moderationBlocks: 0, rejectedPersonas: 0 };

/** A task's token usage: totals, and per provider and model (what a price table would multiply). */
export interface TaskUsage extends TaskCounts {
  calls: number;
  inputTokens: number;
  outputTokens: number;
  byModel: ModelUsage[];
}

/** Totals of the per-model rows, with the task's counts. */
export function taskUsage(byModel: ModelUsage[], counts: TaskCounts = NO_COUNTS): TaskUsage {
  return {
    calls: byModel.reduce((sum, m) => sum + m.calls, 0),
    inputTokens: byModel.reduce((sum, m) => sum + m.inputTokens, 0),
    outputTokens: byModel.reduce((sum, m) => sum + m.outputTokens, 0),
    ...counts,
    byModel,
  };
}

export interface ImageView {
  index: number;
  grid: number;
  key: string;
  url: string;
  contentType: string;
  width: number;
  height: number;
  style: StyleParams | null;
}

export interface PersonaView extends PersonaData {
  id: number;
  taskId: string;
  batchNo: number;
  batchIndex: number;
  baseImage: { key: string; url: string } | null;
  prompts: string[];
  images: ImageView[];
  imagesStatus: 'pending' | 'done' | 'failed';
  imagesError: string | null;
}

export function taskView(
  task: TaskEntity,
  counts: { personas: number; images: number },
  usage: ModelUsage[] = [],
  extra: { counts?: TaskCounts; plugins?: Record<string, string> | null; prices?: readonly Price[]; currency?: string } = {},
): TaskView {
  return {
    id: task.id,
    userId: task.userId ?? null,
    description: task.description,
    language: { code: task.languageCode, name: task.languageName },
    count: task.count,
    imagesPerPersona: task.imagesPerPersona,
    status: task.status,
    settings: task.settings,
    targets: task.targets ?? null,
    errorLog: task.errorLog,
    progress: computeProgress({
      count: task.count,
      imagesPerPersona: task.imagesPerPersona,
      personasStored: counts.personas,
      imagesStored: counts.images,
    }),
    createdAt: task.createdAt,
    updatedAt: task.updatedAt,
    startedAt: task.startedAt ?? null,
    finishedAt: task.finishedAt ?? null,
    usage: taskUsage(usage, extra.counts),
    cost: estimateCost(usage, extra.prices ?? [], extra.currency ?? 'USD'),
    plugins: extra.plugins ?? null,
  };
}

export function personaData(row: PersonaEntity): PersonaData {
  return {
    firstName: row.firstName,
    lastName: row.lastName,
    gender: row.gender,
    ethnicity: row.ethnicity,
    age: row.age ?? null,
    bios: { facebook: row.bioFacebook, instagram: row.bioInstagram, x: row.bioX, tiktok: row.bioTiktok },
    jobTitle: row.jobTitle,
    workplace: row.workplace,
    eduEstablishment: row.eduEstablishment,
    eduStudy: row.eduStudy,
    currentCity: row.currentCity,
    currentState: row.currentState,
    prevCity: row.prevCity,
    prevState: row.prevState,
    currentCountry: row.currentCountry,
    about: row.about,
  };
}

export function personaColumns(p: PersonaData) {
  return {
    firstName: p.firstName,
    lastName: p.lastName,
    gender: p.gender,
    ethnicity: p.ethnicity,
    age: p.age,
    bioFacebook: p.bios.facebook,
    bioInstagram: p.bios.instagram,
    bioX: p.bios.x,
    bioTiktok: p.bios.tiktok,
    jobTitle: p.jobTitle,
    workplace: p.workplace,
    eduEstablishment: p.eduEstablishment,
    eduStudy: p.eduStudy,
    currentCity: p.currentCity,
    currentState: p.currentState,
    prevCity: p.prevCity,
    prevState: p.prevState,
    currentCountry: p.currentCountry ?? '',
    about: p.about,
  };
}

export function personaView(row: PersonaEntity, images: PersonaImageEntity[], storage: ObjectStorage): PersonaView {
  return {
    ...personaData(row),
    id: row.id,
    taskId: row.taskId,
    batchNo: row.batchNo,
    batchIndex: row.batchIndex,
    baseImage: row.baseImageKey ? { key: row.baseImageKey, url: storage.publicUrl(row.baseImageKey) } : null,
    prompts: row.prompts,
    images: images
      .sort((a, b) => a.idx - b.idx)
      .map((image) => ({
        index: image.idx,
        grid: image.gridNo,
        key: image.key,
        url: storage.publicUrl(image.key),
        contentType: image.contentType,
        width: image.width,
        height: image.height,
        style: image.style ?? null,
      })),
    imagesStatus: row.imagesStatus,
    imagesError: row.imagesError ?? null,
  };
}
