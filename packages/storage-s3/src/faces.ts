import { randomInt } from 'node:crypto';
import { GetObjectCommand, ListObjectsV2Command, type ListObjectsV2CommandOutput, type S3Client } from '@aws-sdk/client-s3';
import {
  ConfigError,
  type FaceSource,
  type Gender,
  InvalidImageError,
  readImageInfo,
  type ReferenceFace,
  StorageError,
  throwIfAborted,
} from '@avatargen/core';
import { checkConnectionOptions, createS3Client, type S3ConnectionOptions, type StorageLogger } from './client.js';
import { assertValidPrefix } from './keys.js';
import { assertBucketName } from './policy.js';
import { isNotFound, toStorageError } from './s3-errors.js';

export interface S3FaceSourceOptions extends S3ConnectionOptions {
  /** The private bucket of reference faces (S3_FACES_BUCKET_NAME). */
  bucket: string;
  /** Where the faces of each gender live. Default { f: 'female/', m: 'male/' }. */
  prefixes?: Record<Gender, string>;
  /** How long a key listing is reused before the bucket is listed again. Default 60000 ms. */
  cacheTtlMs?: number;
  /** Faces fetched per call before giving up when they are not usable images. Default 5. */
  maxTries?: number;
  /** Faces larger than this are skipped. Default 20 MiB. */
  maxFaceBytes?: number;
  /** Use this client instead of creating one (close() then leaves it open). */
  client?: S3Client;
  logger?: StorageLogger;
}

export interface S3FaceSource extends FaceSource {
  readonly bucket: string;
  /** Forgets the cached listing, e.g. after faces were added. */
  refresh(): void;
  close(): Promise<void>;
}

const IMAGE_EXTENSION = /\.(png|jpe?g|webp|gif)$/i;

interface Listing {
  keys: string[];
  expires: number;
}

export function createS3FaceSource(options: S3FaceSourceOptions): S3FaceSource {
  const connection = checkConnectionOptions(options);
  assertBucketName(options.bucket, 'bucket (S3_FACES_BUCKET_NAME)');
  const prefixes = options.prefixes ?? { f: 'female/', m: 'male/' };
  for (const prefix of Object.values(prefixes)) assertValidPrefix('faces', prefix);
  const ttl = options.cacheTtlMs ?? 60_000;
  const maxTries = options.maxTries ?? 5;
  const maxFaceBytes = options.maxFaceBytes ?? 20 * 1024 * 1024;
  for (const [name, value] of [
    ['cacheTtlMs', ttl],
    ['maxTries', maxTries],
    ['maxFaceBytes', maxFaceBytes],
  ] as const) {
    if (!Number.isInteger(value) || value < (name === 'cacheTtlMs' ? 0 : 1)) {
      throw new ConfigError([`storage-s3: ${name} must be a whole number${name === 'cacheTtlMs' ? '' : ' above 0'}`]);
    }
  }
  const ownsClient = options.client === undefined;
  const client = options.client ?? createS3Client(options);
  const bucket = options.bucket;
  const info = { ...connection, bucket };
  const listings = new Map<string, Promise<Listing>>();
  // Keys that were not usable images, and until when they are skipped (one cache period).
  const unusable = new Map<string, number>();

  // Not tied to one caller's AbortSignal: concurrent callers share the listing.
  async function listPrefix(prefix: string): Promise<Listing> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      } catch (error) {
        throw toStorageError(info, 'randomFace', prefix, error);
      }
      for (const object of page.Contents ?? []) {
        const size = object.Size ?? 0;
        if (object.Key && IMAGE_EXTENSION.test(object.Key) && size > 0 && size <= maxFaceBytes) keys.push(object.Key);
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return { keys, expires: Date.now() + ttl };
  }

  /** The cached listing of a prefix; concurrent callers share one listing in flight. */
  async function keysUnder(prefix: string): Promise<string[]> {
    const cached = listings.get(prefix);
    if (cached) {
      const listing = await cached.catch(() => null);
      if (listing && listing.expires > Date.now()) return listing.keys;
      if (listings.get(prefix) === cached) listings.delete(prefix);
    }
    let pending = listings.get(prefix);
    if (!pending) {
      pending = listPrefix(prefix);
      listings.set(prefix, pending);
      // A failed listing is not cached.
      pending.catch(() => {
        if (listings.get(prefix) === pending) listings.delete(prefix);
      });
    }
    return (await pending).keys;
  }

  async function fetchFace(key: string, signal?: AbortSignal): Promise<ReferenceFace | null> {
    let data: Uint8Array;
    try {
      const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
      if (!answer.Body) return null;
      data = await answer.Body.transformToByteArray();
    } catch (error) {
      // Deleted since the listing: skip it and list again next time.
      if (isNotFound(error)) {
        listings.clear();
        return null;
      }
      throw toStorageError(info, 'randomFace', key, error, signal);
    }
    try {
      return { key, data, contentType: readImageInfo(data).contentType };
    } catch (error) {
      if (!(error instanceof InvalidImageError)) throw error;
      options.logger?.warn({ bucket, key, reason: error.message }, 'storage-s3: skipping a reference face that is not a usable image');
      return null;
    }
  }

  return {
    bucket,

    async randomFace({ gender, signal }) {
      throwIfAborted(signal);
      const wanted = gender === null ? [prefixes.f, prefixes.m] : [prefixes[gender]];
      if (gender !== null && !wanted[0])
        throw new StorageError('randomFace', undefined, `unknown gender ${JSON.stringify(gender)}`, { retryable: false });
      const all = (await Promise.all(wanted.map((prefix) => keysUnder(prefix)))).flat();
      throwIfAborted(signal);
      const now = Date.now();
      for (const [key, until] of unusable) if (until <= now) unusable.delete(key);
      const candidates = all.filter((key) => !unusable.has(key));
      for (let tries = 0; tries < maxTries && candidates.length > 0; tries++) {
        throwIfAborted(signal);
        const index = randomInt(candidates.length);
        const key = candidates[index] as string;
        // Swap-remove so a bad key is not drawn twice in one call.
        candidates[index] = candidates[candidates.length - 1] as string;
        candidates.pop();
        const face = await fetchFace(key, signal);
        if (face) return face;
        unusable.set(key, Date.now() + ttl);
      }
      if (all.length > 0) {
        options.logger?.warn({ bucket, gender }, `storage-s3: no usable reference face found after ${maxTries} tries`);
      }
      return null;
    },

    async face(key, { signal } = {}) {
      throwIfAborted(signal);
      // The key comes from the database: only faces under the face prefixes are ever read.
      if (typeof key !== 'string' || !Object.values(prefixes).some((prefix) => key.startsWith(prefix))) return null;
      return fetchFace(key, signal);
    },

    refresh() {
      listings.clear();
      unusable.clear();
    },

    async close() {
      if (ownsClient) client.destroy();
    },
  };
}
