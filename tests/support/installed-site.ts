import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AvatargenProcess, watchProcess } from './avatargen.js';

/**
 * Helpers for tests that use the packages as npm users get them: build each workspace package
 * into a staging folder (never the repository's dist/), pack it, install the tarballs into a
 * fresh site folder, and run the installed `avatargen` command there.
 */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface Manifest {
  name: string;
  version: string;
  files?: string[];
  bin?: string | Record<string, string>;
  exports?: Record<string, string | Record<string, string>>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  allowScripts?: Record<string, boolean>;
  workspaces?: string[];
}

export const readManifest = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest;

/** The workspace packages by name: `@avatargen/core` -> `<root>/packages/core`. */
export function workspacePackages(): Map<string, string> {
  const packages = new Map<string, string>();
  for (const entry of readdirSync(join(ROOT, 'packages'), { withFileTypes: true })) {
    const dir = join(ROOT, 'packages', entry.name);
    if (entry.isDirectory() && existsSync(join(dir, 'package.json'))) packages.set(readManifest(dir).name, dir);
  }
  return packages;
}

/**
 * What a site needs to run `avatargen`: host-koa, core, and every `@avatargen/*` package they
 * depend on (read from the manifests, followed transitively), in a stable order.
 */
export function sitePackages(): Array<{ name: string; dir: string }> {
  const all = workspacePackages();
  const wanted = new Set<string>();
  const visit = (name: string) => {
    if (wanted.has(name)) return;
    const dir = all.get(name);
    if (!dir) throw new Error(`${name} is not a workspace package`);
    wanted.add(name);
    const manifest = readManifest(dir);
    for (const dep of Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies })) {
      if (dep.startsWith('@avatargen/')) visit(dep);
    }
  };
  visit('@avatargen/host-koa');
  visit('@avatargen/core');
  return [...wanted].sort().map((name) => ({ name, dir: all.get(name) as string }));
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * The test runner's environment without npm's own variables (`npm test` sets npm_config_*, which
 * would steer a nested npm) and with this Node first on PATH (installed bins start with
 * `#!/usr/bin/env node`).
 */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || /^npm_/i.test(key) || key === 'INIT_CWD' || key === 'NODE_OPTIONS') continue;
    env[key] = value;
  }
  env.PATH = [dirname(process.execPath), process.env.PATH ?? '/usr/bin:/bin'].join(delimiter);
  return { ...env, ...extra };
}

/** Runs a command to its end; rejects with its output when it fails or runs past `timeoutMs`. */
export function run(
  command: string,
  args: string[],
  options: { cwd: string; env?: Record<string, string>; timeoutMs?: number; allowFailure?: boolean },
): Promise<RunResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result = { code, stdout, stderr, ms: Date.now() - started };
      if ((code === 0 || options.allowFailure) && !signal) resolve(result);
      else {
        reject(
          new Error(
            `${command} ${args.join(' ')} (in ${options.cwd}) ${signal ? `was killed (${signal})` : `exited ${code}`}\n${stdout.slice(-3000)}\n${stderr.slice(-3000)}`,
          ),
        );
      }
    });
  });
}

/** The files tsup writes for a package's entries (`index`, `bin`, `domain`...), from its tsup.config.ts. */
export async function tsupEntries(dir: string): Promise<string[]> {
  const config = ((await import(join(dir, 'tsup.config.ts'))) as { default: { entry: string[] | Record<string, string> } }).default;
  const entry = config.entry;
  return Array.isArray(entry) ? entry.map((file) => basename(file).replace(/\.[cm]?[jt]sx?$/, '')) : Object.keys(entry);
}

/**
 * Builds a workspace package's JavaScript (no type declarations) into `<stage>/<name>/dist` with
 * the package's own tsup config, copies its manifest and the other `files` entries (views,
 * public, README.md) beside it, and packs that folder into `tarballs`. The repository's dist/
 * is left alone. Returns the tarball's path.
 */
export async function stageAndPack(dir: string, stage: string, tarballs: string): Promise<{ tarball: string; folder: string }> {
  const manifest = readManifest(dir);
  const folder = join(stage, manifest.name.replace('/', '+'));
  mkdirSync(folder, { recursive: true });
  await run(process.execPath, [join(ROOT, 'node_modules/tsup/dist/cli-default.js'), '--no-dts', '--out-dir', join(folder, 'dist')], {
    cwd: dir,
    env: cleanEnv(),
    timeoutMs: 120_000,
  });
  cpSync(join(dir, 'package.json'), join(folder, 'package.json'));
  for (const entry of manifest.files ?? []) {
    if (entry === 'dist' || !existsSync(join(dir, entry))) continue;
    cpSync(join(dir, entry), join(folder, entry), { recursive: true });
  }
  return { tarball: await pack(folder, tarballs), folder };
}

/** `npm pack` of a folder (its prepack script runs) into `tarballs`; returns the tarball's path. */
export async function pack(folder: string, tarballs: string): Promise<string> {
  mkdirSync(tarballs, { recursive: true });
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', tarballs], {
    cwd: folder,
    env: cleanEnv(),
    timeoutMs: 180_000,
  });
  // prepack's own output may come first; the JSON array is the end of stdout
  const json = JSON.parse(stdout.slice(stdout.lastIndexOf('\n[') + 1 || stdout.indexOf('['))) as Array<{ filename: string }>;
  const file = json[0]?.filename;
  if (!file) throw new Error(`npm pack in ${folder} named no tarball:\n${stdout}`);
  return join(tarballs, file.replace(/^@/, '').replace('/', '-'));
}

/**
 * A fresh site folder: a private ESM package.json with the root's `allowScripts` (embedded
 * PostgreSQL's, bcrypt's and esbuild's install scripts run without npm 11 warnings), then
 * `npm install` of the tarballs. Returns how long the install took.
 */
export async function installSite(site: string, tarballs: string[]): Promise<RunResult> {
  mkdirSync(site, { recursive: true });
  const root = readManifest(ROOT);
  writeFileSync(
    join(site, 'package.json'),
    `${JSON.stringify({ private: true, type: 'module', allowScripts: root.allowScripts ?? {} }, null, 2)}\n`,
  );
  return run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs], {
    cwd: site,
    env: cleanEnv(),
    timeoutMs: 300_000,
  });
}

export type SiteProcess = AvatargenProcess;

/** Starts an installed command (e.g. `<site>/node_modules/.bin/avatargen start`) as a child process. */
export function startCommand(command: string, args: string[], options: { cwd: string; env: Record<string, string> }): SiteProcess {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
  return watchProcess(child, command);
}
