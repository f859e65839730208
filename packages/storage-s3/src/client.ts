import { S3Client } from '@aws-sdk/client-s3';
import { ConfigError } from '@avatargen/core';

/** The smallest logger shape we use; a pino logger fits. */
export interface StorageLogger {
  warn(object: Record<string, unknown>, message: string): void;
}

export interface S3ConnectionOptions {
  /** e.g. http://127.0.0.1:9000 for MinIO. */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Default us-east-1 (what MinIO expects unless configured otherwise). */
  region?: string;
  /** Path-style URLs (http://host/bucket/key), which MinIO needs. Default true. */
  forcePathStyle?: boolean;
  /** Time to establish a TCP connection. Default 3000 ms. */
  connectTimeoutMs?: number;
  /** Time from sending a request to the response headers. Default 30000 ms. */
  requestTimeoutMs?: number;
  /** A socket silent this long is dropped (also while streaming a body). Default 60000 ms. */
  idleTimeoutMs?: number;
  /** Attempts per call, including the first, with the SDK's standard retry strategy. Default 3. */
  maxAttempts?: number;
}

/** What error messages may show about the endpoint: host and port, never userinfo. */
export interface ClientInfo {
  host: string;
  /** Strings that must never appear in an error (the credentials). */
  secrets: string[];
}

export function checkConnectionOptions(options: S3ConnectionOptions): ClientInfo {
  const issues: string[] = [];
  let host = '';
  try {
    const url = new URL(options.endpoint);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') issues.push('endpoint must be an http(s) URL');
    host = url.host;
  } catch {
    issues.push('endpoint must be a URL such as http://127.0.0.1:9000');
  }
  if (!options.accessKeyId) issues.push('accessKeyId is required');
  if (!options.secretAccessKey) issues.push('secretAccessKey is required');
  for (const name of ['connectTimeoutMs', 'requestTimeoutMs', 'idleTimeoutMs', 'maxAttempts'] as const) {
    const value = options[name];
    if (value !== undefined && !(Number.isInteger(value) && value > 0)) issues.push(`${name} must be a positive whole number`);
  }
  if (issues.length > 0) throw new ConfigError(issues.map((issue) => `storage-s3: ${issue}`));
  return { host, secrets: [options.secretAccessKey, options.accessKeyId].filter((s) => s.length >= 4) };
}

/** An S3 client with timeouts, standard retries and no checksum extras (see below). */
export function createS3Client(options: S3ConnectionOptions): S3Client {
  checkConnectionOptions(options);
  return new S3Client({
    endpoint: options.endpoint,
    region: options.region ?? 'us-east-1',
    forcePathStyle: options.forcePathStyle ?? true,
    credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey },
    retryMode: 'standard',
    maxAttempts: options.maxAttempts ?? 3,
    // Options of the SDK's own NodeHttpHandler, which it builds from this object: no direct
    // dependency on @smithy/node-http-handler is needed.
    requestHandler: {
      connectionTimeout: options.connectTimeoutMs ?? 3000,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      throwOnRequestTimeout: true,
      socketTimeout: options.idleTimeoutMs ?? 60_000,
    },
    // Since 3.729 the SDK sends CRC32 trailers (aws-chunked bodies) by default; MinIO before
    // 2024, s3rver and other S3-compatible servers store those framing bytes or refuse them.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}
