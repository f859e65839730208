import { Migrator } from '@mikro-orm/migrations';
import { MikroORM, defineConfig } from '@mikro-orm/postgresql';
import pg from 'pg';
import type { Logger } from 'pino';
import { ENTITIES } from './entities.js';
import { MIGRATIONS } from './migrations/index.js';
import { describeError, isDatabaseUnavailable } from '../errors.js';
import { delay } from '../util.js';

export type Orm = MikroORM;

export interface OpenDatabaseOptions {
  url: string;
  /** Connections in the pool. Default 10. */
  poolSize?: number;
  logger?: Logger;
}

/** Opens MikroORM on PostgreSQL with our entities and migrations. */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Orm> {
  return MikroORM.init(
    defineConfig({
      clientUrl: options.url,
      entities: ENTITIES,
      extensions: [Migrator],
      pool: { min: 0, max: options.poolSize ?? 10 },
      migrations: {
        migrationsList: MIGRATIONS,
        tableName: 'mikro_orm_migrations',
        transactional: true,
        allOrNothing: true,
        snapshot: false,
      },
      debug: false,
      allowGlobalContext: false,
      forceUtcTimezone: true,
      logger: (message) => options.logger?.debug({ orm: true }, message),
      // knex's own messages ("Connection Error: Connection ended unexpectedly" while PostgreSQL
      // restarts) go to our log, not the console: the outage itself is logged once by who meets it.
      driverOptions: {
        log: {
          warn: (message: unknown) => options.logger?.debug({ knex: true }, String(message)),
          error: (message: unknown) => options.logger?.warn({ knex: true }, String(message)),
          deprecate: (message: unknown) => options.logger?.debug({ knex: true }, String(message)),
          debug: (message: unknown) => options.logger?.trace({ knex: true }, String(message)),
        },
      },
    }),
  );
}

/**
 * Waits until PostgreSQL accepts a connection: a process started while the database restarts or
 * is down waits for it (one log line when it starts waiting, one when it is back) instead of
 * exiting. Errors that waiting cannot fix (a wrong password, a missing database) are thrown at
 * once. `timeoutMs` 0 waits for ever.
 */
export async function waitForDatabase(
  url: string,
  options: { logger?: Logger; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<void> {
  const started = Date.now();
  let waiting = false;
  for (let attempt = 0; ; attempt++) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
    client.on('error', () => undefined); // a failed connect also rejects connect(); this only stops a crash
    try {
      await client.connect();
      await client.query('select 1');
      await client.end();
      if (waiting) options.logger?.warn('PostgreSQL is reachable; starting');
      return;
    } catch (error) {
      await client.end().catch(() => undefined);
      if (!isDatabaseUnavailable(error)) throw error;
      const timeoutMs = options.timeoutMs ?? 0;
      if (timeoutMs > 0 && Date.now() - started >= timeoutMs) throw error;
      if (!waiting) {
        const where = safeHost(url);
        options.logger?.warn(
          { error: describeError(error) },
          `PostgreSQL at ${where} is not reachable; waiting for it (retrying with backoff)`,
        );
        waiting = true;
      }
      await delay(Math.min(250 * 2 ** Math.min(attempt, 6), 10_000), options.signal);
    }
  }
}

/** host:port of a PostgreSQL URL, never its user or password. */
function safeHost(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || 5432}`;
  } catch {
    return 'the configured address';
  }
}

/** Applies every pending migration; returns the names applied. Safe to run from several processes at once. */
export async function runMigrations(orm: Orm, url: string): Promise<string[]> {
  // One process migrates at a time (a session lock on a connection of its own); the others
  // wait, then find nothing pending.
  const lock = new pg.Client({ connectionString: url });
  lock.on('error', () => undefined); // a lost connection fails the query below; it must not crash the process
  await lock.connect();
  try {
    await lock.query('select pg_advisory_lock(727274001)');
    const applied = await orm.getMigrator().up();
    return applied.map((m) => m.name);
  } finally {
    await lock.end();
  }
}
