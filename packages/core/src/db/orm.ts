import { Migrator } from '@mikro-orm/migrations';
import { MikroORM, defineConfig } from '@mikro-orm/postgresql';
import pg from 'pg';
import type { Logger } from 'pino';
import { ENTITIES } from './entities.js';
import { MIGRATIONS } from './migrations/index.js';

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
    }),
  );
}

/** Applies every pending migration; returns the names applied. Safe to run from several processes at once. */
export async function runMigrations(orm: Orm, url: string): Promise<string[]> {
  // One process migrates at a time (a session lock on a connection of its own); the others
  // wait, then find nothing pending.
  const lock = new pg.Client({ connectionString: url });
  await lock.connect();
  try {
    await lock.query('select pg_advisory_lock(727274001)');
    const applied = await orm.getMigrator().up();
    return applied.map((m) => m.name);
  } finally {
    await lock.end();
  }
}
