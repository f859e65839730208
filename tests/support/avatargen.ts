import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The `avatargen` command run from sources, as `npm start` does. */
export const BIN = fileURLToPath(new URL('../../packages/host-koa/src/bin.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');
/** The installed command's entry (bin/avatargen.cjs), which sizes libuv's thread pool first. */
export const COMMAND = fileURLToPath(new URL('../../packages/host-koa/bin/avatargen.cjs', import.meta.url));

export interface AvatargenProcess {
  child: ChildProcess;
  /** Everything printed so far (stdout and stderr, in order). */
  output(): string;
  /** Resolves with the match once a line of stdout/stderr matches. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** SIGTERM, then the exit code (SIGKILL after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<number | null>;
  /** Ctrl+C as a terminal sends it: SIGINT to the whole process group (started with `group`), then the exit code. */
  interrupt(): Promise<number | null>;
  exited: Promise<number | null>;
}

/**
 * Starts `avatargen <args>` as a child process in `cwd` with exactly `env` (plus PATH and HOME):
 * nothing from the test runner's environment leaks in.
 */
export function runAvatargen(
  args: string[],
  options: {
    cwd: string;
    env?: Record<string, string>;
    /** through bin/avatargen.cjs, as `npm start` */
    command?: boolean;
    /** in a process group of its own, as in a terminal (for interrupt()) */
    group?: boolean;
    /**
     * A command that runs node, e.g. `['ip', 'netns', 'exec', 'ns1']` for a process on another
     * (network namespace) host; it must exec node, so that signals reach the process itself.
     */
    prefix?: string[];
  },
): AvatargenProcess {
  const argv = options.command ? [COMMAND, ...args] : ['--conditions=source', '--import', TSX, BIN, ...args];
  const [file, ...before] = options.prefix?.length ? [...options.prefix, process.execPath] : [process.execPath];
  const child = spawn(file as string, [...before, ...argv], {
    cwd: options.cwd,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      ...(options.command ? { AVATARGEN_FROM_SOURCE: '1' } : {}),
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.group === true,
  });
  return watchProcess(child, 'avatargen');
}

/** Collects a child's stdout and stderr in order, and waits for patterns in them or for its exit. */
export function watchProcess(child: ChildProcess, name: string): AvatargenProcess {
  let text = '';
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    text += chunk.toString();
    for (const check of waiters) check();
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    exited,
    output: () => text,
    waitFor(pattern, timeoutMs = 90_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${pattern}; output:\n${text.slice(-3000)}`));
        }, timeoutMs);
        const check = () => {
          const match = pattern.exec(text);
          if (match) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(match);
          }
        };
        waiters.add(check);
        exited.then(() => {
          if (waiters.has(check)) {
            clearTimeout(timer);
            waiters.delete(check);
            reject(new Error(`${name} exited before ${pattern}; output:\n${text.slice(-3000)}`));
          }
        });
        check();
      });
    },
    async interrupt() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      process.kill(-(child.pid as number), 'SIGINT');
      return exited;
    },
    async stop(timeoutMs = 30_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
