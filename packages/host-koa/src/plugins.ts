import { join } from 'node:path';
import type { AvatarGenConfig, AvatarGenPlugin } from '@avatargen/core';
import { filesystemStoragePlugin } from '@avatargen/storage-filesystem';

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
 * Packages are loaded only when chosen (the AWS and OpenAI SDKs, faker's locales are large).
 */
export async function assemblePlugins(config: AvatarGenConfig): Promise<Assembly> {
  const plugins: AvatarGenPlugin[] = [];
  if (!config.FLOWISE_URL || !config.OPENAI_API_KEY) {
    const { localPlugin } = await import('@avatargen/provider-local');
    plugins.push(localPlugin());
  }
  if (config.FLOWISE_URL) {
    const { flowisePlugin } = await import('@avatargen/provider-flowise');
    plugins.push(flowisePlugin());
  }
  if (config.OPENAI_API_KEY) {
    const { openaiPlugin } = await import('@avatargen/provider-openai');
    plugins.push(openaiPlugin());
  }
  const { imageOpencvPlugin } = await import('@avatargen/image-opencv');
  plugins.push(imageOpencvPlugin());
  let storageRoot: string | null = null;
  if (config.S3_ENDPOINT) {
    const { s3Plugin } = await import('@avatargen/storage-s3');
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
