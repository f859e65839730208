import { ConflictError } from '../errors.js';

export const TASK_STATUSES = [
  'pending',
  'generating-data',
  'data-generated',
  'generating-images',
  'completed',
  'partial',
  'failed',
  'cancelled',
] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

/** Statuses in which a task holds one of the `max_concurrent_tasks` slots. */
export const ACTIVE_STATUSES: readonly TaskStatus[] = ['generating-data', 'data-generated', 'generating-images'];
/**
 * Ended statuses. `completed` means every persona has every image; `partial` means the task ended
 * with something missing (its counts say what), and a retry makes only what is missing.
 */
export const FINAL_STATUSES: readonly TaskStatus[] = ['completed', 'partial', 'failed', 'cancelled'];

const TRANSITIONS: Record<TaskStatus, readonly TaskStatus[]> = {
  pending: ['generating-data', 'cancelled'],
  'generating-data': ['data-generated', 'failed', 'cancelled'],
  'data-generated': ['generating-images', 'failed', 'cancelled'],
  'generating-images': ['completed', 'partial', 'failed', 'cancelled'],
  // Every ended task can be retried: it goes back to the queue, keeps its finished work and makes
  // only what is missing. A completed task is retried only when something went missing after it
  // ended (an image object lost from storage, found by `avatargen doctor`): the service checks that.
  completed: ['pending'],
  partial: ['pending'],
  failed: ['pending'],
  cancelled: ['pending'],
};

export function canTransition(from: TaskStatus, to: TaskStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

export function allowedTransitions(from: TaskStatus): readonly TaskStatus[] {
  return TRANSITIONS[from];
}

export function assertTransition(from: TaskStatus, to: TaskStatus): void {
  if (!canTransition(from, to)) {
    throw new ConflictError(`A task cannot go from ${from} to ${to}`);
  }
}

export function isActive(status: TaskStatus): boolean {
  return ACTIVE_STATUSES.includes(status);
}

export function isFinal(status: TaskStatus): boolean {
  return FINAL_STATUSES.includes(status);
}

export interface Progress {
  personasStored: number;
  imagesStored: number;
  personasTotal: number;
  imagesTotal: number;
  /** 0-100, one decimal, over count + count * imagesPerPersona. */
  percent: number;
}

export function computeProgress(input: {
  count: number;
  imagesPerPersona: number;
  personasStored: number;
  imagesStored: number;
}): Progress {
  const personasTotal = input.count;
  const imagesTotal = input.count * input.imagesPerPersona;
  const total = personasTotal + imagesTotal;
  const done = Math.min(input.personasStored, personasTotal) + Math.min(input.imagesStored, imagesTotal);
  const percent = total === 0 ? 0 : Math.round((done / total) * 1000) / 10;
  return {
    personasStored: input.personasStored,
    imagesStored: input.imagesStored,
    personasTotal,
    imagesTotal,
    percent,
  };
}
