/**
 * `@avatargen/embedded-postgres/testing`: a PostgreSQL server a test owns (`startOwnedPostgres`),
 * to stop, start and restart under the code being tested.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type EmbeddedPostgres, findFreePort, startEmbeddedPostgres } from './index.js';

/**
 * A PostgreSQL server that a test owns and may stop, start and restart while the code under test
 * runs against it: the real fault an operator meets (a restart for an upgrade, an outage). It is
 * embedded PostgreSQL in a temporary folder on a fixed free port, so the URL stays the same.
 */
export interface OwnedPostgres {
  /** postgresql://postgres:<password>@127.0.0.1:<port>/<database>; unchanged across restarts. */
  readonly url: string;
  readonly port: number;
  readonly running: boolean;
  /** Fast shutdown: open connections are terminated ("the database system is shutting down"). */
  stop(): Promise<void>;
  start(): Promise<void>;
  restart(): Promise<void>;
  /** Stops the server and removes its folder. */
  close(): Promise<void>;
}

export async function startOwnedPostgres(options: { database?: string } = {}): Promise<OwnedPostgres> {
  const folder = await mkdtemp(join(tmpdir(), 'avatargen-owned-pg-'));
  // As root, PostgreSQL runs as the "postgres" user, which must be able to enter the folder.
  await chmod(folder, 0o755);
  const dataDir = join(folder, 'pg');
  const port = await findFreePort();
  const database = options.database ?? 'avatargen';
  let server: EmbeddedPostgres | undefined = await startEmbeddedPostgres({ dataDir, port, database });
  const url = server.url;
  const owned: OwnedPostgres = {
    url,
    port,
    get running() {
      return server !== undefined;
    },
    async stop() {
      const current = server;
      server = undefined;
      await current?.stop();
    },
    async start() {
      if (server) return;
      server = await startEmbeddedPostgres({ dataDir, port, database });
    },
    async restart() {
      await owned.stop();
      await owned.start();
    },
    async close() {
      await owned.stop().catch(() => undefined);
      await rm(folder, { recursive: true, force: true });
    },
  };
  return owned;
}
