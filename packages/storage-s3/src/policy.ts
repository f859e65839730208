import { ConfigError } from '@avatargen/core';

/** S3 bucket naming rules (the subset MinIO and AWS share). */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function assertBucketName(bucket: string, variable = 'bucket'): void {
  if (!BUCKET_NAME.test(bucket) || bucket.includes('..') || /^\d+\.\d+\.\d+\.\d+$/.test(bucket)) {
    throw new ConfigError([
      `${variable} must be 3-63 characters of lowercase letters, digits, "." and "-", starting and ending with a letter or digit`,
    ]);
  }
}

/**
 * A prefix that a policy can name: not empty (that would be the whole bucket), ending in "/" (so
 * "tasks" cannot also open "tasks-export/"), no wildcard, no leading "/", no "." segments.
 */
export function assertPublicPrefix(prefix: string): void {
  const segments = prefix.split('/').slice(0, -1);
  const ok =
    prefix.endsWith('/') &&
    !prefix.startsWith('/') &&
    !/[*?$\u0000-\u001f\u007f]/.test(prefix) &&
    segments.every((s) => s !== '' && s !== '.' && s !== '..');
  if (!ok) {
    throw new ConfigError([
      'publicPrefix must be a key prefix ending in "/" such as "tasks/" (no leading "/", no "*", "?", "$" or "." segments)',
    ]);
  }
}

export interface BucketPolicy {
  Version: '2012-10-17';
  Statement: Array<{
    Sid: string;
    Effect: 'Allow';
    Principal: { AWS: ['*'] };
    Action: ['s3:GetObject'];
    Resource: [string];
  }>;
}

/**
 * The bucket policy that lets anyone read objects under `publicPrefix` and nothing else: no
 * listing, no other prefix (exports stay private), no writes. Objects get no ACLs.
 */
export function publicReadPolicy(bucket: string, publicPrefix: string): BucketPolicy {
  assertBucketName(bucket);
  assertPublicPrefix(publicPrefix);
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'PublicReadGeneratedImages',
        Effect: 'Allow',
        Principal: { AWS: ['*'] },
        Action: ['s3:GetObject'],
        Resource: [`arn:aws:s3:::${bucket}/${publicPrefix}*`],
      },
    ],
  };
}
