/**
 * `@avatargen/storage-filesystem`: the ObjectStorage on a local folder (the zero-setup default),
 * and the plugin that fills `objectStorage` with it.
 */
export { storageKeySegments } from './paths.js';
export { filesystemStoragePlugin, type FilesystemStoragePluginOptions } from './plugin.js';
export {
  createFilesystemStorage,
  DEFAULT_SWEEP_INTERVAL_MS,
  DEFAULT_TEMP_MAX_AGE_MS,
  type FilesystemStorage,
  type FilesystemStorageOptions,
} from './storage.js';

import { filesystemStoragePlugin } from './plugin.js';

export default filesystemStoragePlugin;
