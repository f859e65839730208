import { type AvatarGenPlugin, ConfigError, definePlugin } from '@avatargen/core';
import { createS3Client, type S3ConnectionOptions } from './client.js';
import { createS3FaceSource, type S3FaceSource, type S3FaceSourceOptions } from './faces.js';
import { createS3Storage, type S3Storage, type S3StorageOptions } from './storage.js';

export interface S3PluginOptions {
  /** Create the image bucket and set its policy when the plugin registers. Default false. */
  ensureBucket?: boolean;
  /** Provide the faceSource port from S3_FACES_BUCKET_NAME. Default true. */
  faces?: boolean;
  /** Passed on to the storage (publicPrefix, partSize...). */
  storage?: Partial<Pick<S3StorageOptions, 'publicPrefix' | 'partSize'>>;
  /** Passed on to the face source (prefixes, cacheTtlMs, maxTries...). */
  faceSource?: Partial<Pick<S3FaceSourceOptions, 'prefixes' | 'cacheTtlMs' | 'maxTries' | 'maxFaceBytes'>>;
  /** Timeouts and retries of the S3 client. */
  connection?: Partial<Pick<S3ConnectionOptions, 'connectTimeoutMs' | 'requestTimeoutMs' | 'idleTimeoutMs' | 'maxAttempts' | 'forcePathStyle'>>;
}

/**
 * Fills `objectStorage` (S3_BUCKET_NAME) and `faceSource` (S3_FACES_BUCKET_NAME) from the S3_*
 * settings. One S3 client serves both and is destroyed when AvatarGen closes.
 */
export function s3Plugin(pluginOptions: S3PluginOptions = {}): AvatarGenPlugin {
  const faces = pluginOptions.faces ?? true;
  return definePlugin({
    name: 'storage-s3',
    provides: faces ? ['objectStorage', 'faceSource'] : ['objectStorage'],
    async register({ config, logger, provide, onClose }) {
      if (!config.S3_ENDPOINT || !config.S3_ACCESS_KEY || !config.S3_SECRET_KEY) {
        throw new ConfigError(['S3_ENDPOINT, S3_ACCESS_KEY and S3_SECRET_KEY are required by the storage-s3 plugin']);
      }
      const connection: S3ConnectionOptions = {
        endpoint: config.S3_ENDPOINT,
        accessKeyId: config.S3_ACCESS_KEY,
        secretAccessKey: config.S3_SECRET_KEY,
        region: config.S3_REGION,
        ...pluginOptions.connection,
      };
      const client = createS3Client(connection);
      let storage: S3Storage;
      let faceSource: S3FaceSource | undefined;
      try {
        storage = createS3Storage({
          ...connection,
          ...pluginOptions.storage,
          client,
          logger,
          bucket: config.S3_BUCKET_NAME,
          publicUrlBase: config.S3_PUBLIC_URL_BASE,
        });
        if (faces) {
          faceSource = createS3FaceSource({
            ...connection,
            ...pluginOptions.faceSource,
            client,
            logger,
            bucket: config.S3_FACES_BUCKET_NAME,
          });
        }
        if (pluginOptions.ensureBucket) await storage.ensureBucket();
      } catch (error) {
        // A plugin that fails to register gets no closer run: free the client here.
        client.destroy();
        throw error;
      }
      onClose(() => client.destroy());
      provide('objectStorage', storage);
      if (faceSource) provide('faceSource', faceSource);
    },
  });
}
