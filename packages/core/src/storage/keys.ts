import { extensionFor } from '../image-info.js';

/**
 * The layout of object keys, in one place: the pipeline writes them, the host's media routes and
 * thumbnails read them, `doctor` and task deletion walk them.
 *
 *   tasks/<storage prefix>/<persona id>/base.<ext>          the base selfie
 *   tasks/<storage prefix>/<persona id>/<index>.<ext>       picture `index` (grid * 4 + cell)
 *   tasks/<storage prefix>/<persona id>/<index>-r<run>.<ext> picture `index` made again in run `run`
 *                                                           (a new key: pictures are served as immutable)
 *   tasks/<storage prefix>/thumbs/w<width>/<key rest>.webp  a cached thumbnail of one of those
 *
 * Everything of a task lives under its folder, so deleting the folder deletes the task's objects.
 */
export const TASKS_ROOT = 'tasks/';

/** A task's folder, with the trailing "/" (`tasks/<id>` would also match `tasks/<id>0`). */
export function taskFolder(storagePrefix: string): string {
  return `${TASKS_ROOT}${storagePrefix}/`;
}

export function baseImageKey(storagePrefix: string, personaId: number, contentType: string): string {
  return `${taskFolder(storagePrefix)}${personaId}/base.${extensionFor(contentType)}`;
}

export function pictureKey(storagePrefix: string, personaId: number, index: number, contentType: string, run?: number): string {
  return `${taskFolder(storagePrefix)}${personaId}/${index}${run ? `-r${run}` : ''}.${extensionFor(contentType)}`;
}

/** A key under some task's folder (the shape the media routes accept), with no way out of it. */
export function isTaskObjectKey(key: string): boolean {
  return /^tasks\/[^/]+\/./.test(key) && !key.includes('..') && !key.includes('\\');
}

/** The task folder name of a key (`tasks/<prefix>/...`), or null for a key outside any task folder. */
export function taskFolderOf(key: string): string | null {
  if (!key.startsWith(TASKS_ROOT)) return null;
  const end = key.indexOf('/', TASKS_ROOT.length);
  return end > TASKS_ROOT.length ? key.slice(TASKS_ROOT.length, end) : null;
}

/** The persona id of an image key (`tasks/<prefix>/<persona id>/...`), or null. */
export function personaIdOf(key: string): number | null {
  const match = /^tasks\/[^/]+\/(\d+)\//.exec(key);
  return match ? Number(match[1]) : null;
}

/** The key of an image's thumbnail at `width`: inside the task's folder, so deleting the task removes it. */
export function thumbnailKey(key: string, width: number): string | null {
  const match = /^tasks\/([^/]+)\/(.+)$/.exec(key);
  if (!match || isThumbnailPath(match[2] as string)) return null;
  return `${TASKS_ROOT}${match[1]}/thumbs/w${width}/${match[2]}.webp`;
}

/** The image a thumbnail key was made from (the inverse of thumbnailKey), or null. */
export function thumbnailSource(key: string): string | null {
  const match = /^tasks\/([^/]+)\/thumbs\/w(\d+)\/(.+)\.webp$/.exec(key);
  if (!match) return null;
  const source = `${TASKS_ROOT}${match[1]}/${match[3]}`;
  return thumbnailKey(source, Number(match[2])) === key ? source : null;
}

/** True for a key in a task's thumbnail folder. */
export function isThumbnailKey(key: string): boolean {
  const folder = taskFolderOf(key);
  return folder !== null && isThumbnailPath(key.slice(taskFolder(folder).length));
}

function isThumbnailPath(rest: string): boolean {
  return rest.startsWith('thumbs/');
}
