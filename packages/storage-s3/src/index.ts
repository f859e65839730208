/**
 * `@avatargen/storage-s3`: ObjectStorage and FaceSource on S3 / MinIO, and the plugin that fills
 * both ports from the S3_* settings.
 */
export { createS3Client, type S3ConnectionOptions, type StorageLogger } from './client.js';
export { createS3FaceSource, type S3FaceSource, type S3FaceSourceOptions } from './faces.js';
export { assertValidKey, assertValidPrefix, encodeKeyPath, InvalidKeyError, MAX_KEY_BYTES } from './keys.js';
export { type S3Config, s3Config, s3Plugin, type S3PluginOptions } from './plugin.js';
export { s3Plugin as default } from './plugin.js';
export { type BucketPolicy, publicReadPolicy } from './policy.js';
export { createS3Storage, DELETE_BATCH, type S3Storage, type S3StorageOptions } from './storage.js';
