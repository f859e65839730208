import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The node flags of the `avatargen` bin, read from its shebang, so that a bench that runs the
 * host in a child process runs it with the same V8 settings as the deployed command.
 */
export function hostNodeFlags(): string[] {
  // BENCH_HOST_FLAGS tries other V8 settings (printed with the result).
  if (process.env.BENCH_HOST_FLAGS !== undefined) return process.env.BENCH_HOST_FLAGS.split(/\s+/).filter(Boolean);
  const first = readFileSync(join(import.meta.dirname, '../packages/host-koa/bin/avatargen.cjs'), 'utf8').split('\n', 1)[0] ?? '';
  const match = /^#!\/usr\/bin\/env(?: -S)? node(.*)$/.exec(first);
  if (!match) throw new Error(`unexpected shebang in host-koa/bin/avatargen.cjs: ${first}`);
  return (match[1] ?? '').trim().split(/\s+/).filter(Boolean);
}

/**
 * Builds the packages (`npm run build`) so a bench's host runs them as in production; skipped for
 * BENCH_FROM=source (the host on the sources, through tsx) and BENCH_NO_BUILD=1.
 */
export function buildPackages(): void {
  if (process.env.BENCH_FROM === 'source' || process.env.BENCH_NO_BUILD) return;
  console.log('building the packages (npm run build) so the host runs as in production...');
  const build = spawnSync('npm', ['run', 'build'], { cwd: join(import.meta.dirname, '..'), stdio: 'ignore' });
  if (build.status !== 0) throw new Error('npm run build failed');
}
