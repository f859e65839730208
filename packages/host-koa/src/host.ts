import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { type AvatarGen, type AvatarGenConfig, createAvatarGen, type CreateAvatarGenOptions, databaseUrl } from '@avatargen/core';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '@avatargen/embedded-postgres';
import type { Logger } from 'pino';
import { createApp, type HostApp, type HostOptions } from './app.js';
import { type Assembly, assemblePlugins } from './plugins.js';
import type { Site } from './site.js';

const SECRET_FILE = 'secret-key';

/**
 * SECRET_KEY, or the key kept in `${DATA_DIR}/secret-key` (made once, mode 0600), so sessions
 * survive restarts and every process on this machine signs cookies alike with zero setup.
 */
export async function resolveSecretKey(config: Pick<AvatarGenConfig, 'SECRET_KEY' | 'DATA_DIR'>): Promise<string> {
  if (config.SECRET_KEY) return config.SECRET_KEY;
  const path = join(config.DATA_DIR, SECRET_FILE);
  try {
    const stored = (await readFile(path, 'utf8')).trim();
    if (stored.length >= 32) return stored;
  } catch {
    // not made yet
  }
  await mkdir(config.DATA_DIR, { recursive: true });
  const key = randomBytes(48).toString('base64url');
  try {
    await writeFile(path, `${key}\n`, { mode: 0o600, flag: 'wx' });
    return key;
  } catch {
    // another process made it first: use theirs
    const stored = (await readFile(path, 'utf8')).trim();
    if (stored.length < 32) throw new Error(`${path} holds no usable key; delete it or set SECRET_KEY`);
    return stored;
  }
}

export interface Backend {
  gen: AvatarGen;
  site: Site;
  assembly: Assembly;
  /** The embedded PostgreSQL server when neither DATABASE_URL nor DB_* is set. */
  embedded: EmbeddedPostgres | null;
  close(): Promise<void>;
}

/**
 * The AvatarGen instance of a process: embedded PostgreSQL when no database is configured,
 * plugins chosen from the config, migrations run.
 */
export async function startBackend(
  site: Site,
  logger: Logger,
  options: { plugins?: CreateAvatarGenOptions['plugins']; pipeline?: CreateAvatarGenOptions['pipeline'] } = {},
): Promise<Backend> {
  const { config, env } = site;
  let url = databaseUrl(config);
  let embedded: EmbeddedPostgres | null = null;
  if (!url) {
    embedded = await startEmbeddedPostgres({ dataDir: join(config.DATA_DIR, 'pg'), logger: logger.child({ component: 'postgres' }) });
    url = embedded.url;
  }
  const assembly = site.assembly;
  let gen: AvatarGen | undefined;
  for (let attempt = 1; !gen; attempt++) {
    try {
      // A retry registers fresh plugin objects: a failed start closed the first ones' resources.
      const plugins = options.plugins ?? (attempt === 1 ? assembly.plugins : (await assemblePlugins(config, env, site.cwd)).plugins);
      gen = await createAvatarGen({ config, env, logger, databaseUrl: url, plugins, pipeline: options.pipeline });
    } catch (error) {
      // Processes started together (web and workers under systemd) can deadlock while the queue
      // creates its tables; that is transient: wait a moment and try again.
      if (isDeadlock(error) && attempt < 5) {
        logger.warn({ attempt }, 'database deadlock while starting; retrying');
        await new Promise((r) => setTimeout(r, 200 * attempt + Math.random() * 300));
        continue;
      }
      await embedded?.stop().catch(() => undefined);
      throw error;
    }
  }
  const started = gen;
  let closing: Promise<void> | undefined;
  return {
    gen: started,
    site,
    assembly,
    embedded,
    close() {
      closing ??= (async () => {
        await started.close();
        await embedded?.stop();
      })();
      return closing;
    },
  };
}

function isDeadlock(error: unknown): boolean {
  for (
    let e = error as { code?: unknown; message?: unknown; cause?: unknown } | undefined, depth = 0;
    e && depth < 5;
    e = e.cause as typeof e, depth++
  ) {
    if (e.code === '40P01' || (typeof e.message === 'string' && e.message.includes('deadlock detected'))) return true;
  }
  return false;
}

/** How often a web process deletes ended sessions and login counters. */
export const SWEEP_INTERVAL_MS = 30 * 60_000;

export interface RunningServer {
  server: Server;
  url: string;
  /** Stops taking connections, ends event streams and waits (at most `timeoutMs`) for requests in flight. */
  close(timeoutMs?: number): Promise<void>;
}

export async function listen(host: HostApp, options: { port: number; hostname: string }): Promise<RunningServer> {
  const server = createServer(host.app.callback());
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0; // exports and event streams may last long
  // Requests in flight, so shutdown waits for them (an export being downloaded) and for nothing
  // else: idle keep-alive sockets and sockets a client opened without sending anything yet.
  let inFlight = 0;
  server.on('request', (_req, res) => {
    inFlight++;
    res.once('close', () => inFlight--);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.hostname, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Ended sessions and login counters would otherwise stay in the database forever. Every web
  // process sweeps (the deletes are idempotent), soon after start and then every half hour.
  const sweep = () => void host.sweepExpired().catch(() => undefined); // sweepExpired logs its failures
  const firstSweep = setTimeout(sweep, 5_000).unref();
  const sweeper = setInterval(sweep, SWEEP_INTERVAL_MS).unref();
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    url: `http://${shown === '0.0.0.0' ? '127.0.0.1' : shown}:${address.port}`,
    close(timeoutMs = 10_000) {
      clearTimeout(firstSweep);
      clearInterval(sweeper);
      return new Promise<void>((resolve) => {
        const deadline = Date.now() + timeoutMs;
        let closed = false;
        server.close(() => {
          closed = true;
          resolve();
        });
        host.sse.closeAll();
        server.closeIdleConnections();
        const check = () => {
          if (closed) return;
          if (inFlight === 0 || Date.now() > deadline) {
            server.closeAllConnections();
            return;
          }
          setTimeout(check, 50).unref();
        };
        check();
      });
    },
  };
}

/** Builds the app for a backend with the host's defaults (secret key from the config or DATA_DIR). */
export async function createHostApp(backend: Backend, options: Partial<HostOptions> = {}): Promise<HostApp> {
  const config = backend.gen.config;
  const secretKey = options.secretKey ?? (await resolveSecretKey(config));
  // Whichever plugin stores the images: site-relative URLs are served at /media through the port;
  // absolute ones (S3, a CDN) are allowed as image sources by the CSP.
  const sample = backend.gen.port('objectStorage').publicUrl('tasks/probe.png');
  const serveMedia = sample.startsWith('/');
  const imageOrigins = serveMedia ? [] : [new URL(sample).origin];
  return createApp(backend.gen, { serveMedia, imageOrigins, ...options, secretKey });
}
