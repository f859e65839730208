import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './support.js';

/** The `avatargen` command from sources, as `npm start` runs it. */
const BIN = ['--conditions=source', '--import', 'tsx', join(ROOT, 'packages/host-koa/src/bin.ts')];

export interface HostProcess {
  child: ChildProcess;
  port: number;
  /** Every line the process wrote (pino JSON on stdout, messages on stderr). */
  lines: string[];
  /** Parsed JSON log lines. */
  logs(): Array<Record<string, unknown>>;
}

function collect(child: ChildProcess, lines: string[], onLine?: (line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      const parts = (rest + chunk).split('\n');
      rest = parts.pop() ?? '';
      lines.push(...parts);
      for (const line of parts) onLine?.(line);
    });
  }
}

/** Runs `avatargen <args>` to completion; rejects with its output when it exits non-zero. */
export function runCommand(args: string[], env: Record<string, string>, stdin?: string): Promise<string[]> {
  const child = spawn(process.execPath, [...BIN, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  collect(child, lines);
  child.stdin?.end(stdin ?? '');
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code === 0) resolve(lines);
      else reject(new Error(`avatargen ${args.join(' ')} exited ${code}:\n${lines.join('\n')}`));
    });
  });
}

/** Starts `avatargen web` on a port and resolves once it listens. */
export async function startWeb(port: number, env: Record<string, string>): Promise<HostProcess> {
  const child = spawn(process.execPath, [...BIN, 'web'], {
    cwd: ROOT,
    env: { ...process.env, ...env, APP_PORT: String(port), APP_HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let listening: () => void = () => undefined;
  const started = new Promise<void>((resolve) => {
    listening = resolve;
  });
  collect(child, lines, (line) => {
    if (line.includes('listening on')) listening();
  });
  const host: HostProcess = {
    child,
    port,
    lines,
    logs: () =>
      lines.flatMap((line) => {
        if (!line.startsWith('{')) return [];
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      }),
  };
  // Its "listening on" line, or its exit, or a minute without either.
  let timer: NodeJS.Timeout | undefined;
  let onExit: (code: number | null) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => {
    onExit = (code) => reject(new Error(`avatargen web exited (${code}):\n${lines.join('\n')}`));
    child.once('exit', onExit);
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`avatargen web did not start:\n${lines.join('\n')}`));
    }, 60_000);
  });
  try {
    await Promise.race([started, failed]);
  } finally {
    clearTimeout(timer);
    child.off('exit', onExit);
  }
  return host;
}
