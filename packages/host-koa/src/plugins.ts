import { join } from 'node:path';
import { type AvatarGenConfig, type AvatarGenPlugin, filesystemStoragePlugin } from '@avatargen/core';
import { imageOpencvPlugin } from '@avatargen/image-opencv';
import { flowisePlugin } from '@avatargen/provider-flowise';
import { localPlugin } from '@avatargen/provider-local';
import { openaiPlugin } from '@avatargen/provider-openai';
import { s3Plugin } from '@avatargen/storage-s3';

export interface Assembly {
  plugins: AvatarGenPlugin[];
  /** Folder of the filesystem storage the host serves at /media, or null when S3 holds the images. */
  storageRoot: string | null;
  /** One line per part, for the start banner ("personas: provider-local"...). */
  parts: Record<'personas' | 'images' | 'storage' | 'processing', string>;
}

/**
 * Chooses the plugins from the configuration: Flowise, OpenAI and S3 when configured, otherwise
 * the offline provider-local and filesystem storage under DATA_DIR; the image processor always.
 */
export function assemblePlugins(config: AvatarGenConfig): Assembly {
  const plugins: AvatarGenPlugin[] = [];
  const needsLocal = !config.FLOWISE_URL || !config.OPENAI_API_KEY;
  if (needsLocal) plugins.push(localPlugin());
  if (config.FLOWISE_URL) plugins.push(flowisePlugin());
  if (config.OPENAI_API_KEY) plugins.push(openaiPlugin());
  plugins.push(imageOpencvPlugin());
  let storageRoot: string | null = null;
  if (config.S3_ENDPOINT) {
    plugins.push(s3Plugin());
  } else {
    storageRoot = join(config.DATA_DIR, 'storage');
    plugins.push(filesystemStoragePlugin({ root: storageRoot, publicBaseUrl: '/media' }));
  }
  return {
    plugins,
    storageRoot,
    parts: {
      personas: config.FLOWISE_URL ? 'provider-flowise' : 'provider-local',
      images: config.OPENAI_API_KEY ? 'provider-openai' : 'provider-local',
      storage: storageRoot ? `filesystem (${storageRoot})` : `s3 (${config.S3_BUCKET_NAME})`,
      processing: 'image-opencv',
    },
  };
}
