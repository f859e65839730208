import { PassThrough, Readable } from 'node:stream';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutBucketPolicyCommand,
  PutObjectCommand,
  type ListObjectsV2CommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { type Bytes, ConfigError, type ObjectStorage, type PutOptions, StorageError, type StoredObject } from '@avatargen/core';
import { type ClientInfo, checkConnectionOptions, createS3Client, type S3ConnectionOptions, type StorageLogger } from './client.js';
import { assertValidKey, assertValidPrefix, encodeKeyPath, InvalidKeyError } from './keys.js';
import { assertBucketName, assertPublicPrefix, publicReadPolicy } from './policy.js';
import { errorName, httpStatus, isNotFound, toStorageError } from './s3-errors.js';

export interface S3StorageOptions extends S3ConnectionOptions {
  bucket: string;
  /** Base of public URLs, e.g. https://cdn.example.com; default: the endpoint. URLs are <base>/<bucket>/<key>. */
  publicUrlBase?: string;
  /** The only prefix ensureBucket() makes publicly readable. Default "tasks/"; null keeps the bucket private. */
  publicPrefix?: string | null;
  /** Part size of streamed uploads (S3 minimum 5 MiB). Default 5 MiB. */
  partSize?: number;
  /** Use this client instead of creating one (close() then leaves it open). */
  client?: S3Client;
  logger?: StorageLogger;
}

export interface S3Storage extends ObjectStorage {
  readonly bucket: string;
  readonly client: S3Client;
  /** Creates the bucket when missing and sets the public-read policy on `publicPrefix` only. */
  ensureBucket(): Promise<void>;
  deleteMany(keys: readonly string[]): Promise<void>;
  /**
   * Deletes every object whose key starts with `prefix` (one ListObjectsV2 and one DeleteObjects
   * per 1000 keys) and returns how many. The prefix must not be empty and is checked like a key.
   */
  deletePrefix(prefix: string): Promise<number>;
  close(): Promise<void>;
}

/** DeleteObjects takes at most this many keys per request. */
export const DELETE_BATCH = 1000;
const MIN_PART_SIZE = 5 * 1024 * 1024;

export function createS3Storage(options: S3StorageOptions): S3Storage {
  const connection = checkConnectionOptions(options);
  assertBucketName(options.bucket, 'bucket (S3_BUCKET_NAME)');
  const publicPrefix = options.publicPrefix === undefined ? 'tasks/' : options.publicPrefix;
  if (publicPrefix !== null) assertPublicPrefix(publicPrefix);
  const partSize = options.partSize ?? MIN_PART_SIZE;
  if (!Number.isInteger(partSize) || partSize < MIN_PART_SIZE) {
    throw new ConfigError([`storage-s3: partSize must be a whole number of at least ${MIN_PART_SIZE} bytes`]);
  }
  const urlBase = options.publicUrlBase === undefined ? endpointBase(options.endpoint) : publicBase(options.publicUrlBase);
  const ownsClient = options.client === undefined;
  const client = options.client ?? createS3Client(options);
  const bucket = options.bucket;
  const info: ClientInfo & { bucket: string } = { ...connection, bucket };
  const fail = (operation: string, key: string | undefined, error: unknown) => toStorageError(info, operation, key, error);

  async function putBytes(key: string, body: Bytes, put: PutOptions): Promise<void> {
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: body,
        ContentLength: body.byteLength,
        ContentType: put.contentType,
        CacheControl: put.cacheControl,
      }),
    );
  }

  async function putStream(key: string, body: Readable, put: PutOptions): Promise<void> {
    // Upload buffers up to one part: a stream shorter than that becomes one PutObject, a longer
    // one a multipart upload; either way the length need not be known in advance.
    const upload = new Upload({
      client,
      params: { Bucket: bucket, Key: key, Body: body, ContentType: put.contentType, CacheControl: put.cacheControl },
      partSize,
      queueSize: 2,
      leavePartsOnError: false,
    });
    // A failing source stream must reject the upload, not hang it.
    const sourceFailed = new Promise<never>((_, reject) => {
      body.once('error', (error) => {
        void upload.abort().catch(() => undefined);
        reject(new StorageError('put', key, `the source stream failed: ${error.message}`, { retryable: false }));
      });
    });
    await Promise.race([upload.done(), sourceFailed]);
  }

  /** DeleteObjects in batches of DELETE_BATCH; `operation` names the caller in errors. */
  async function deleteKeys(operation: string, keys: readonly string[]): Promise<void> {
    const unique = [...new Set(keys)];
    for (let start = 0; start < unique.length; start += DELETE_BATCH) {
      const batch = unique.slice(start, start + DELETE_BATCH);
      let errors: Array<{ Key?: string; Code?: string; Message?: string }>;
      try {
        const answer = await client.send(
          new DeleteObjectsCommand({
            Bucket: bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
        );
        errors = answer.Errors ?? [];
      } catch (error) {
        throw fail(operation, batch[0], error);
      }
      // A key that is already gone is what we wanted.
      const failed = errors.filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length > 0) {
        const shown = failed
          .slice(0, 5)
          .map((e) => `${e.Key} (${e.Code ?? 'error'}${e.Message ? `: ${e.Message}` : ''})`)
          .join(', ');
        const retryable = failed.some((e) => e.Code === 'InternalError' || e.Code === 'SlowDown' || e.Code === 'ServiceUnavailable');
        throw new StorageError(
          operation,
          failed[0]?.Key,
          `${failed.length} of ${batch.length} keys in batch ${start / DELETE_BATCH + 1} not deleted: ${shown}${failed.length > 5 ? ', ...' : ''}`,
          { retryable, source: 'storage-s3' },
        );
      }
    }
  }

  return {
    bucket,
    client,

    async put(key, body, put) {
      assertValidKey('put', key);
      if (typeof put?.contentType !== 'string' || !/^[\w.+-]+\/[\w.+-]+(\s*;.*)?$/.test(put.contentType)) {
        throw new StorageError('put', key, `invalid content type ${JSON.stringify(put?.contentType)}`, { retryable: false });
      }
      // A header value: no line breaks or other control characters.
      if (put.cacheControl !== undefined && (typeof put.cacheControl !== 'string' || /[\u0000-\u001f\u007f]/.test(put.cacheControl))) {
        throw new StorageError('put', key, `invalid cache-control ${JSON.stringify(put.cacheControl)}`, { retryable: false });
      }
      try {
        if (body instanceof Readable) await putStream(key, body, put);
        else if (body instanceof Uint8Array) await putBytes(key, body, put);
        else throw new StorageError('put', key, 'body must be bytes (Uint8Array) or a Readable stream', { retryable: false });
      } catch (error) {
        throw fail('put', key, error);
      }
    },

    async get(key) {
      assertValidKey('get', key);
      let body: Readable;
      try {
        const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        if (!(answer.Body instanceof Readable)) throw new StorageError('get', key, 'the answer had no body stream');
        body = answer.Body;
      } catch (error) {
        throw fail('get', key, error);
      }
      // Errors while streaming (connection dropped, idle timeout) reach the reader as StorageError too.
      const out = new PassThrough();
      body.once('error', (error) => out.destroy(fail('get', key, error)));
      out.once('close', () => {
        if (!body.destroyed) body.destroy();
      });
      body.pipe(out);
      return out;
    },

    async read(key) {
      assertValidKey('read', key);
      try {
        const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        if (!answer.Body) throw new StorageError('read', key, 'the answer had no body');
        return await answer.Body.transformToByteArray();
      } catch (error) {
        throw fail('read', key, error);
      }
    },

    async delete(key) {
      assertValidKey('delete', key);
      try {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
      } catch (error) {
        if (isNotFound(error)) return;
        throw fail('delete', key, error);
      }
    },

    async deleteMany(keys) {
      for (const key of keys) assertValidKey('deleteMany', key);
      await deleteKeys('deleteMany', keys);
    },

    async deletePrefix(prefix) {
      if (prefix === '') throw new InvalidKeyError('deletePrefix', prefix, 'is empty: deleting everything needs an explicit prefix');
      assertValidPrefix('deletePrefix', prefix);
      // One page listed, then deleted: the next page is asked for after the last key of this
      // one, which deleting does not disturb.
      let deleted = 0;
      let page: string[] = [];
      for await (const object of listAll(client, bucket, prefix, (error) => fail('deletePrefix', prefix, error))) {
        page.push(object.key);
        if (page.length === DELETE_BATCH) {
          await deleteKeys('deletePrefix', page);
          deleted += page.length;
          page = [];
        }
      }
      if (page.length > 0) {
        await deleteKeys('deletePrefix', page);
        deleted += page.length;
      }
      return deleted;
    },

    list(prefix) {
      assertValidPrefix('list', prefix);
      return listAll(client, bucket, prefix, (error) => fail('list', prefix || undefined, error));
    },

    publicUrl(key) {
      assertValidKey('publicUrl', key);
      return `${urlBase}/${encodeURIComponent(bucket)}/${encodeKeyPath(key)}`;
    },

    async ensureBucket() {
      try {
        await client.send(new HeadBucketCommand({ Bucket: bucket }));
      } catch (error) {
        if (httpStatus(error) !== 404 && errorName(error) !== 'NotFound' && errorName(error) !== 'NoSuchBucket') {
          throw fail('ensureBucket', undefined, error);
        }
        await createBucket(client, bucket, options.region ?? 'us-east-1').catch((e: unknown) => {
          throw fail('ensureBucket', undefined, e);
        });
      }
      if (publicPrefix === null) return;
      try {
        await client.send(new PutBucketPolicyCommand({ Bucket: bucket, Policy: JSON.stringify(publicReadPolicy(bucket, publicPrefix)) }));
      } catch (error) {
        if (errorName(error) === 'NotImplemented' || httpStatus(error) === 501) {
          options.logger?.warn(
            { bucket, publicPrefix },
            `storage-s3: the server at ${connection.host} does not support bucket policies; objects under "${publicPrefix}" are not made public by ensureBucket (set the policy on the server, see deploy/minio/)`,
          );
          return;
        }
        throw fail('ensureBucket', undefined, error);
      }
    },

    async close() {
      if (ownsClient) client.destroy();
    },
  };
}

async function createBucket(client: S3Client, bucket: string, region: string): Promise<void> {
  try {
    await client.send(
      new CreateBucketCommand({
        Bucket: bucket,
        // AWS wants the region named outside us-east-1; MinIO accepts it either way.
        CreateBucketConfiguration: region === 'us-east-1' ? undefined : { LocationConstraint: region as never },
      }),
    );
  } catch (error) {
    // Another process created it between our check and our create.
    if (errorName(error) === 'BucketAlreadyOwnedByYou') return;
    throw error;
  }
}

async function* listAll(client: S3Client, bucket: string, prefix: string, fail: (error: unknown) => Error): AsyncGenerator<StoredObject> {
  let token: string | undefined;
  do {
    let page: ListObjectsV2CommandOutput;
    try {
      page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix || undefined, ContinuationToken: token }));
    } catch (error) {
      throw fail(error);
    }
    for (const object of page.Contents ?? []) {
      if (object.Key !== undefined) yield { key: object.Key, size: object.Size ?? 0 };
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}

/** Public URLs straight from the endpoint: its origin and path, never its userinfo. */
function endpointBase(endpoint: string): string {
  const url = new URL(endpoint);
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

/** The URL base without trailing slashes; one with a password, query or fragment is refused. */
function publicBase(base: string): string {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new ConfigError(['storage-s3: publicUrlBase (S3_PUBLIC_URL_BASE) must be a URL such as https://cdn.example.com']);
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new ConfigError(['storage-s3: publicUrlBase (S3_PUBLIC_URL_BASE) must not hold credentials, a query or a fragment']);
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}
