import { join } from 'node:path';
import { type AvatarGenPlugin, definePlugin } from '@avatargen/core';
import { createFilesystemStorage } from './storage.js';

export interface FilesystemStoragePluginOptions {
  /** Default: `${DATA_DIR}/storage`. */
  root?: string;
  /** Default: `/media`. */
  publicBaseUrl?: string;
  /** See FilesystemStorageOptions. Default 10 minutes. */
  tempMaxAgeMs?: number;
  /** See FilesystemStorageOptions. Default 1 hour. */
  sweepIntervalMs?: number;
}

/** Fills `objectStorage` with a folder on this machine (the zero-setup default). */
export function filesystemStoragePlugin(options: FilesystemStoragePluginOptions = {}): AvatarGenPlugin {
  return definePlugin({
    name: '@avatargen/storage-filesystem',
    provides: ['objectStorage'],
    register(context) {
      const root = options.root ?? join(context.config.DATA_DIR, 'storage');
      const storage = createFilesystemStorage({
        root,
        publicBaseUrl: options.publicBaseUrl,
        tempMaxAgeMs: options.tempMaxAgeMs,
        sweepIntervalMs: options.sweepIntervalMs,
        logger: context.logger,
      });
      context.provide('objectStorage', storage);
      context.onClose(() => storage.close());
    },
  });
}
