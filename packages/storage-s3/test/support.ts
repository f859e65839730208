import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { S3Client } from '@aws-sdk/client-s3';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

/** The access key s3rver knows (it does not check the secret; see STACK.md). */
export const S3RVER_KEY = 'S3RVER';

export interface TestS3 {
  /** http://127.0.0.1:<port>; the same after restart(). */
  endpoint: string;
  /** The folder that holds the buckets. */
  directory: string;
  /** Kills the server as a crash would (SIGKILL: connections reset, then refused); its folder stays. */
  stop(): Promise<void>;
  /** Starts it again on the same port over the same folder (after stop()). */
  restart(): Promise<void>;
  /** Stops it and removes its folder. */
  close(): Promise<void>;
}

interface Running {
  child: ChildProcess;
  exited: Promise<unknown>;
  port: number;
}

/**
 * A real s3rver on a random port over a temp folder, in a child process (so a test can kill it as
 * a crash would); removed on close. Also used by the end-to-end outage tests in tests/.
 */
export async function startS3rver(buckets: string[] = []): Promise<TestS3> {
  const directory = await mkdtemp(join(tmpdir(), 'storage-s3-'));
  let server: Running | undefined = await spawnS3rver(directory, 0, buckets);
  const port = server.port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    directory,
    async stop() {
      const running = server;
      server = undefined;
      if (!running || running.child.exitCode !== null || running.child.signalCode !== null) return;
      running.child.kill('SIGKILL');
      await running.exited;
    },
    async restart() {
      if (server) return;
      // The port was given back a moment ago: try again for a few seconds if it is still taken.
      for (let attempt = 0; ; attempt++) {
        try {
          server = await spawnS3rver(directory, port, buckets);
          return;
        } catch (error) {
          if (attempt >= 20) throw error;
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
    },
    async close() {
      const running = server;
      server = undefined;
      if (running && running.child.exitCode === null && running.child.signalCode === null) {
        running.child.stdin?.end();
        const timer = setTimeout(() => running.child.kill('SIGKILL'), 5_000);
        await running.exited;
        clearTimeout(timer);
      }
      await rm(directory, { recursive: true, force: true });
    },
  };
}

async function spawnS3rver(directory: string, port: number, buckets: string[]): Promise<Running> {
  const script = fileURLToPath(new URL('./s3rver-process.mjs', import.meta.url));
  const child = spawn(process.execPath, ['--openssl-legacy-provider', script, directory, ...buckets], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', S3RVER_PORT: String(port) },
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = once(child, 'exit');
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  try {
    const first = await Promise.race([
      once(lines, 'line').then(([line]) => String(line)),
      exited.then(([code]) => {
        throw new Error(`s3rver exited with code ${code} before listening: ${stderr}`);
      }),
    ]);
    return { child, exited, port: (JSON.parse(first) as { port: number }).port };
  } finally {
    lines.close();
  }
}

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
}

/**
 * A plain HTTP server for the S3 answers s3rver cannot give (a DeleteObjects result with Errors,
 * 503 SlowDown, a server that never answers); the handler writes the exact S3 wire format.
 */
export async function startHttpServer(
  handler: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void,
): Promise<{ endpoint: string; requests: RecordedRequest[]; close(): Promise<void> }> {
  const requests: RecordedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      handler(req, res, Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port on 127.0.0.1 where nothing listens (bound, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export function s3ErrorXml(code: string, message: string, resource = '/'): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><Resource>${resource}</Resource><RequestId>4442587FB7D0A2F9</RequestId></Error>`;
}

export async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

/** Runs `fn` over the items with at most `limit` in flight. */
export async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  });
  await Promise.all(workers);
}

/** Counts the commands a client sends, by name, through the SDK's middleware stack. */
export function countCommands(client: S3Client): Map<string, number> {
  const counts = new Map<string, number>();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = context.commandName ?? 'unknown';
      counts.set(name, (counts.get(name) ?? 0) + 1);
      return next(args);
    },
    { step: 'initialize', name: `count-${Math.random()}` },
  );
  return counts;
}
