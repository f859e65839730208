import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The access key s3rver knows (it does not check the secret). */
export const S3RVER_KEY = 'S3RVER';

export interface TestS3rver {
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

/** A real s3rver (in a child process) on a free port over a temp folder, with `buckets` made. */
export async function startS3rver(buckets: string[] = []): Promise<TestS3rver> {
  const directory = await mkdtemp(join(tmpdir(), 'avatargen-s3rver-'));
  let server: Running | undefined = await spawnS3rver(directory, 0, buckets);
  const port = server.port;
  const stop = async () => {
    const running = server;
    server = undefined;
    if (!running || running.child.exitCode !== null || running.child.signalCode !== null) return;
    running.child.kill('SIGKILL');
    await running.exited;
  };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    directory,
    stop,
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
