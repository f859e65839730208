import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
// Through the package's own name: the `./testing` subpath export is what other packages' tests use.
import { type OwnedPostgres, startOwnedPostgres } from '@avatargen/embedded-postgres/testing';

async function answer(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<{ n: number }>('select 42 as n')).rows[0]?.n as number;
  } finally {
    await client.end();
  }
}

describe('startOwnedPostgres (@avatargen/embedded-postgres/testing)', () => {
  let owned: OwnedPostgres | undefined;
  afterAll(async () => {
    await owned?.close();
  });

  it('stops, starts and restarts on the same URL, and close() removes its folder', async () => {
    owned = await startOwnedPostgres({ database: 'avatargen_owned' });
    expect(owned.url).toMatch(new RegExp(`^postgresql://postgres:[^@]+@127\\.0\\.0\\.1:${owned.port}/avatargen_owned$`));
    expect(owned.running).toBe(true);
    expect(await answer(owned.url)).toBe(42);

    await owned.stop();
    expect(owned.running).toBe(false);
    await expect(answer(owned.url)).rejects.toThrow();

    await owned.start();
    expect(await answer(owned.url)).toBe(42);
    await owned.restart();
    expect(owned.running).toBe(true);
    expect(await answer(owned.url)).toBe(42);

    const client = new pg.Client({ connectionString: owned.url });
    await client.connect();
    const folder = dirname(
      (await client.query<{ setting: string }>("select setting from pg_settings where name = 'data_directory'")).rows[0]?.setting as string,
    );
    await client.end();
    expect(existsSync(folder)).toBe(true);
    await owned.close();
    owned = undefined;
    expect(existsSync(folder)).toBe(false);
  }, 120_000);
});
