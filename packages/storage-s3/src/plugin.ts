import { type AvatarGenPlugin, definePlugin, variables, z } from '@avatargen/core';
import { createS3Client, type S3ConnectionOptions } from './client.js';
import { createS3FaceSource, type S3FaceSource, type S3FaceSourceOptions } from './faces.js';
import { createS3Storage, type S3Storage, type S3StorageOptions } from './storage.js';

const required = z.string({ error: 'is required' }).trim().min(1, { error: 'is required' });

/** The variables this plugin reads; validated by core when the plugin is loaded. */
export const s3Config = z.object({
  S3_ENDPOINT: variables.url().describe('S3 / MinIO endpoint.'),
  S3_ACCESS_KEY: required.describe('S3 access key.'),
  S3_SECRET_KEY: required.describe('S3 secret key.'),
  S3_REGION: z.string().default('us-east-1').describe('S3 region.'),
  S3_BUCKET_NAME: z.string().default('avatar-images').describe('Bucket for generated images.'),
  S3_FACES_BUCKET_NAME: z.string().default('avatar-faces').describe('Private bucket of reference faces (male/, female/).'),
  S3_PUBLIC_URL_BASE: variables
    .url()
    .optional()
    .describe('Public base URL of the storage, e.g. https://cdn.example.com; URLs are <base>/<bucket>/<key>.'),
});
export type S3Config = z.output<typeof s3Config>;

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
  connection?: Partial<
    Pick<S3ConnectionOptions, 'connectTimeoutMs' | 'requestTimeoutMs' | 'idleTimeoutMs' | 'maxAttempts' | 'forcePathStyle'>
  >;
}

/**
 * Fills `objectStorage` (S3_BUCKET_NAME) and `faceSource` (S3_FACES_BUCKET_NAME) from the S3_*
 * settings. One S3 client serves both and is destroyed when AvatarGen closes.
 */
export function s3Plugin(pluginOptions: S3PluginOptions = {}): AvatarGenPlugin {
  const faces = pluginOptions.faces ?? true;
  return definePlugin({
    name: '@avatargen/storage-s3',
    provides: faces ? ['objectStorage', 'faceSource'] : ['objectStorage'],
    config: s3Config,
    secrets: ['S3_ACCESS_KEY', 'S3_SECRET_KEY'],
    async register({ config, logger, provide, onClose }) {
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
