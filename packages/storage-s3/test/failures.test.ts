import { Readable } from 'node:stream';
import { inspect } from 'node:util';
import { StorageError } from '@avatargen/core';
import { afterEach, describe, expect, it } from 'vitest';
import { createS3Storage, publicReadPolicy, type S3StorageOptions } from '../src/index.js';
import { freePort, readAll, s3ErrorXml, startHttpServer } from './support.js';

const ACCESS_KEY = 'AKIAFAILURETESTKEY77';
const SECRET = 'failure-test-secret-d41d8cd98f';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

function storageAt(endpoint: string, overrides: Partial<S3StorageOptions> = {}) {
  const storage = createS3Storage({
    endpoint,
    accessKeyId: ACCESS_KEY,
    secretAccessKey: SECRET,
    bucket: 'avatar-images',
    connectTimeoutMs: 500,
    requestTimeoutMs: 1000,
    idleTimeoutMs: 1000,
    ...overrides,
  });
  cleanups.push(() => storage.close());
  return storage;
}

async function server(handler: Parameters<typeof startHttpServer>[0]) {
  const started = await startHttpServer(handler);
  cleanups.push(started.close);
  return started;
}

/** Every way an error may be shown or logged; none may hold a credential. */
function expectNoCredential(error: unknown): void {
  for (const text of [String(error), inspect(error, { depth: 10 }), JSON.stringify(error), (error as Error).stack ?? '']) {
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(ACCESS_KEY);
  }
}

const ACL_HEADER = /^x-amz-(acl|grant-)/;

describe('S3 storage failures', () => {
  it('fails with a retryable StorageError within seconds when nothing listens', { timeout: 10_000 }, async () => {
    const port = await freePort();
    const storage = storageAt(`http://127.0.0.1:${port}`, { maxAttempts: 2 });
    for (const call of [
      () => storage.put('tasks/a.png', Buffer.from('x'), { contentType: 'image/png' }),
      () => storage.get('tasks/a.png'),
      () => storage.deleteMany(['tasks/a.png']),
      () => storage.ensureBucket(),
    ]) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageError);
      expect((error as StorageError).retryable).toBe(true);
      expect((error as StorageError).message).toMatch(/cannot reach 127\.0\.0\.1:\d+ \(ECONNREFUSED\) after 2 attempts/);
      expectNoCredential(error);
    }
    const listing = await readAllKeys(storage.list('tasks/')).catch((e: unknown) => e);
    expect((listing as StorageError).operation).toBe('list');
  });

  it('gives up on a server that never answers, after the request timeout and retries', { timeout: 10_000 }, async () => {
    const silent = await server(() => {
      // never answers
    });
    const storage = storageAt(silent.endpoint, { requestTimeoutMs: 300, maxAttempts: 2 });
    const error = await storage.get('tasks/slow.png').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect(error).toMatchObject({ operation: 'get', key: 'tasks/slow.png', retryable: true, notFound: false });
    expect((error as Error).message).toMatch(/no answer from 127\.0\.0\.1:\d+ in time after 2 attempts/);
    expect(silent.requests).toHaveLength(2);
  });

  it('retries 503 SlowDown with the SDK retry strategy, then succeeds', async () => {
    let calls = 0;
    const flaky = await server((_req, res) => {
      calls++;
      if (calls <= 2) {
        res.writeHead(503, { 'content-type': 'application/xml' }).end(s3ErrorXml('SlowDown', 'Please reduce your request rate.'));
        return;
      }
      res.writeHead(200, { etag: '"9b2cf535f27731c974343645a3985328"' }).end();
    });
    const storage = storageAt(flaky.endpoint);
    await storage.put('tasks/a.png', Buffer.from('x'), { contentType: 'image/png', cacheControl: 'public, max-age=60' });
    expect(flaky.requests).toHaveLength(3);
    const put = flaky.requests[2];
    expect(put?.method).toBe('PUT');
    expect(put?.url.split('?')[0]).toBe('/avatar-images/tasks/a.png');
    expect(put?.headers['content-type']).toBe('image/png');
    expect(put?.headers['cache-control']).toBe('public, max-age=60');
    expect(Object.keys(put?.headers ?? {}).filter((h) => ACL_HEADER.test(h))).toEqual([]);
  });

  it('names the operation, key and attempts when 5xx persists', async () => {
    const down = await server((_req, res) => {
      res.writeHead(500, { 'content-type': 'application/xml' }).end(s3ErrorXml('InternalError', 'We encountered an internal error.'));
    });
    const error = await storageAt(down.endpoint)
      .delete('tasks/x.png')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as Error).message).toMatch(
      /^delete tasks\/x\.png: 127\.0\.0\.1:\d+ answered InternalError \(HTTP 500\) after 3 attempts/,
    );
    expect((error as StorageError).retryable).toBe(true);
    expect(down.requests).toHaveLength(3);
  });

  it('treats 429 and a 400 RequestTimeout as retryable, other 4xx as not', async () => {
    const answers: Record<string, [number, string]> = {
      '/avatar-images/tasks/busy.png': [429, 'TooManyRequests'],
      '/avatar-images/tasks/slow-body.png': [400, 'RequestTimeout'],
      '/avatar-images/tasks/bad.png': [400, 'InvalidArgument'],
    };
    const s3 = await server((req, res) => {
      const [status, code] = answers[(req.url ?? '').split('?')[0] as string] ?? [500, 'InternalError'];
      res.writeHead(status, { 'content-type': 'application/xml' }).end(s3ErrorXml(code, 'no'));
    });
    const storage = storageAt(s3.endpoint, { maxAttempts: 1 });
    const put = (key: string) => storage.put(key, Buffer.from('x'), { contentType: 'image/png' }).catch((e: unknown) => e);
    expect(await put('tasks/busy.png')).toMatchObject({ retryable: true, status: 429 });
    expect(await put('tasks/slow-body.png')).toMatchObject({ retryable: true, status: 400 });
    expect(await put('tasks/bad.png')).toMatchObject({ retryable: false, status: 400 });
  });

  it('never shows a credential, even when the server echoes it', async () => {
    const echo = await server((req, res) => {
      const status = req.method === 'GET' ? 403 : 400;
      const code = status === 403 ? 'SignatureDoesNotMatch' : 'InvalidArgument';
      res
        .writeHead(status, { 'content-type': 'application/xml' })
        .end(s3ErrorXml(code, `Bad request from ${ACCESS_KEY} signed with ${SECRET}`));
    });
    const storage = storageAt(echo.endpoint);
    const denied = await storage.get('tasks/a.png').catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(StorageError);
    expect((denied as Error).message).toMatch(/SignatureDoesNotMatch, HTTP 403.*check the S3 access key/);
    expect((denied as StorageError).retryable).toBe(false);
    expectNoCredential(denied);
    const invalid = await storage.put('tasks/a.png', Buffer.from('x'), { contentType: 'image/png' }).catch((e: unknown) => e);
    expect((invalid as Error).message).toContain('InvalidArgument (HTTP 400): Bad request from [redacted] signed with [redacted]');
    expectNoCredential(invalid);
  });

  it('turns a body that breaks off while streaming into a StorageError', async () => {
    const broken = await server((_req, res) => {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': '100000' });
      res.write(Buffer.alloc(1000, 1));
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const stream = await storageAt(broken.endpoint).get('tasks/broken.png');
    const error = await readAll(stream).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).operation).toBe('get');
    expect((error as StorageError).key).toBe('tasks/broken.png');
  });

  it('drops a download that stalls longer than the idle timeout', { timeout: 10_000 }, async () => {
    const stalled = await server((_req, res) => {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': '100000' });
      res.write(Buffer.alloc(1000, 1));
    });
    const stream = await storageAt(stalled.endpoint, { idleTimeoutMs: 300 }).get('tasks/stalled.png');
    const error = await readAll(stream).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as Error).message).toMatch(/no answer from .* in time/);
  });

  it('reports the keys DeleteObjects could not delete, and ignores those already gone', async () => {
    let sent = '';
    const partial = await server((_req, res, body) => {
      sent = body.toString();
      res.writeHead(200, { 'content-type': 'application/xml' }).end(
        `<?xml version="1.0" encoding="UTF-8"?>
<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Error><Key>tasks/b.png</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error><Error><Key>tasks/c.png</Key><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error></DeleteResult>`,
      );
    });
    const error = await storageAt(partial.endpoint)
      .deleteMany(['tasks/a.png', 'tasks/b.png', 'tasks/c.png'])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as Error).message).toBe(
      'deleteMany tasks/b.png: 1 of 3 keys in batch 1 not deleted: tasks/b.png (AccessDenied: Access Denied)',
    );
    expect(partial.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['POST /avatar-images/?delete=']);
    expect(sent).toContain('<Quiet>true</Quiet>');
    expect(sent).toContain('<Key>tasks/b.png</Key>');
    // S3 refuses DeleteObjects without a body checksum.
    const headers = partial.requests[0]?.headers ?? {};
    expect(Object.keys(headers).some((h) => h === 'content-md5' || h.startsWith('x-amz-checksum-'))).toBe(true);

    const gone = await server((_req, res) => {
      res
        .writeHead(200, { 'content-type': 'application/xml' })
        .end(
          '<?xml version="1.0" encoding="UTF-8"?><DeleteResult><Error><Key>tasks/c.png</Key><Code>NoSuchKey</Code><Message>gone</Message></Error></DeleteResult>',
        );
    });
    await storageAt(gone.endpoint).deleteMany(['tasks/c.png']);
  });

  it('creates the bucket and puts the image-prefix policy, without ACL headers', async () => {
    const bodies: Array<{ method: string; url: string; body: string }> = [];
    const s3 = await server((req, res, body) => {
      bodies.push({ method: req.method ?? '', url: req.url ?? '', body: body.toString() });
      if (req.method === 'HEAD') res.writeHead(404).end();
      else if (req.url?.endsWith('?policy=')) res.writeHead(204).end();
      else if (req.method === 'PUT') res.writeHead(200, { location: '/avatar-images', etag: '"0"' }).end();
      else res.writeHead(400).end();
    });
    const storage = storageAt(s3.endpoint, { region: 'eu-central-1', publicPrefix: 'tasks/' });
    await storage.ensureBucket();
    await storage.put('tasks/a.png', Readable.from([Buffer.from('streamed')]), { contentType: 'image/png' });
    expect(bodies.map((b) => `${b.method} ${b.url}`)).toEqual([
      'HEAD /avatar-images/',
      'PUT /avatar-images/',
      'PUT /avatar-images/?policy=',
      'PUT /avatar-images/tasks/a.png?x-id=PutObject',
    ]);
    expect(bodies[1]?.body).toContain('<LocationConstraint>eu-central-1</LocationConstraint>');
    expect(JSON.parse(bodies[2]?.body ?? '')).toEqual(publicReadPolicy('avatar-images', 'tasks/'));
    for (const request of s3.requests) {
      expect(Object.keys(request.headers).filter((h) => ACL_HEADER.test(h))).toEqual([]);
    }
  });

  it('fails ensureBucket clearly when the server refuses the policy', async () => {
    const s3 = await server((req, res) => {
      if (req.url?.endsWith('?policy=')) {
        res.writeHead(403, { 'content-type': 'application/xml' }).end(s3ErrorXml('AccessDenied', 'Access Denied'));
      } else res.writeHead(200).end();
    });
    const warnings: string[] = [];
    const storage = storageAt(s3.endpoint, { logger: { warn: (_o, message) => warnings.push(message) } });
    const error = await storage.ensureBucket().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as Error).message).toMatch(/^ensureBucket: refused by .*AccessDenied, HTTP 403/);
    expect(warnings).toEqual([]);
  });
});

async function readAllKeys(iterable: AsyncIterable<{ key: string }>): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of iterable) keys.push(object.key);
  return keys;
}
