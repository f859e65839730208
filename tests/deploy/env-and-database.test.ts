import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configSchema, databaseUrl, loadConfig, readEnvFile, type z } from '@avatargen/core';
import { testServerUrl } from '@avatargen/core/testing';
import flowise from '@avatargen/provider-flowise';
import openai from '@avatargen/provider-openai';
import s3 from '@avatargen/storage-s3';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { DEPLOY } from './support.js';

const ENV_EXAMPLE = join(DEPLOY, 'env.example');
const text = readFileSync(ENV_EXAMPLE, 'utf8');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** What a shell makes of an env file: `set -a; . file`, then the listed variables. */
function viaShell(path: string, names: string[]): Record<string, string> {
  const script = `set -a; . "$1"; set +a; for n in ${names.join(' ')}; do if [ -n "\${!n+x}" ]; then printf '%s=%s\\0' "$n" "\${!n}"; fi; done`;
  const out = execFileSync('bash', ['--norc', '--noprofile', '-c', script, 'env-test', path], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH },
  });
  return Object.fromEntries(
    out
      .split('\0')
      .filter(Boolean)
      .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
  );
}

/** The variables of core and of the plugins the host chooses from the environment. */
const PLUGINS = [s3(), flowise(), openai()];
const shape: Record<string, z.ZodType> = Object.assign({}, configSchema.shape, ...PLUGINS.map((p) => p.config?.shape ?? {}));

describe('deploy/env.example', () => {
  const keys = Object.keys(shape);

  it('lists every configuration variable, and nothing else', () => {
    const listed = [...text.matchAll(/^#? ?([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]);
    for (const key of keys) expect(listed, key).toContain(key);
    for (const key of listed) expect(keys, `${key} is not a configuration variable`).toContain(key);
  });

  it('shows the schema’s default in every commented-out "# NAME=value" that has one', () => {
    for (const [, key, value] of text.matchAll(/^# ([A-Z][A-Z0-9_]+)=(.*)$/gm)) {
      const field = shape[key as string] as z.ZodType;
      const fallback = field.safeParse(undefined);
      if (!fallback.success || fallback.data === undefined) continue;
      expect(value, key).toBe(String(fallback.data));
    }
  });

  it('is valid configuration, read alike by dotenv and by a shell, with # and $ kept literally', () => {
    const { values, warnings } = readEnvFile(ENV_EXAMPLE);
    expect(warnings).toEqual([]);
    expect(values.DB_PASSWORD).toBe('change-me#not$this');
    const shell = viaShell(ENV_EXAMPLE, keys);
    expect(shell).toEqual(values);
    const config = loadConfig(values);
    // the plugins' part of the example is valid too, where set
    expect(() => loadConfig({ ...values, S3_ENDPOINT: 'http://minio:9000', S3_ACCESS_KEY: 'k', S3_SECRET_KEY: 's' }, [s3()])).not.toThrow();
    expect(config.TRUST_PROXY).toBe(true);
    expect(config.DATA_DIR).toBe('/var/lib/avatargen');
    // DB_PASSWORD is percent-encoded into the URL the application connects with.
    expect(new URL(databaseUrl(config) as string).password).toBe(encodeURIComponent('change-me#not$this'));
    // The commented DATABASE_URL example encodes the same password.
    const example = /^# DATABASE_URL=(.+)$/m.exec(text)?.[1] as string;
    expect(decodeURIComponent(new URL(example).password)).toBe('change-me#not$this');
  });

  it('the quoting rule matters: unquoted, dotenv cuts at " #" (with a warning) and a shell expands $', () => {
    const dir = mkdtempSync(join(tmpdir(), 'avatargen-env-'));
    dirs.push(dir);
    const file = join(dir, 'bad.env');
    writeFileSync(file, 'DB_PASSWORD=abc #def\nSECRET_KEY=abc$HOME-xyz\n');
    const { values, warnings } = readEnvFile(file);
    expect(values.DB_PASSWORD).toBe('abc');
    expect(warnings.join('\n')).toContain('DB_PASSWORD');
    expect(viaShell(file, ['SECRET_KEY']).SECRET_KEY).not.toBe('abc$HOME-xyz');
  });
});

describe('deploy/postgres/setup-database.sql', () => {
  const psql = spawnSync('psql', ['--version']);
  const server = new URL(testServerUrl());
  const suffix = randomBytes(4).toString('hex');
  const role = `avatargen_setup_${suffix}`;
  const database = `avatargen_setup_db_${suffix}`;

  afterAll(async () => {
    if (psql.error) return;
    const admin = new pg.Client({ connectionString: testServerUrl() });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    await admin.query(`DROP ROLE IF EXISTS "${role}"`);
    await admin.end();
  });

  const run = (vars: Record<string, string>) =>
    spawnSync(
      'psql',
      [
        '-h',
        server.hostname,
        '-p',
        server.port || '5432',
        '-U',
        decodeURIComponent(server.username || 'postgres'),
        '-d',
        server.pathname.slice(1) || 'postgres',
        '-X',
        '-q',
        '-v',
        'ON_ERROR_STOP=1',
        ...Object.entries(vars).flatMap(([k, v]) => ['-v', `${k}=${v}`]),
        '-f',
        join(DEPLOY, 'postgres/setup-database.sql'),
      ],
      { encoding: 'utf8', env: { ...process.env, PGPASSWORD: decodeURIComponent(server.password) } },
    );

  it('creates the role and database (twice, safely), with a password holding # $ and quotes', async () => {
    const vars = { app_role: role, app_db: database, app_password: `p#ss$word 'with" quotes` };
    const first = run(vars);
    expect(first.status, first.stderr).toBe(0);
    const second = run({ ...vars, app_password: 'another#pa$$word' });
    expect(second.status, second.stderr).toBe(0);

    const admin = new pg.Client({ connectionString: testServerUrl() });
    await admin.connect();
    try {
      const { rows } = await admin.query(
        `select r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolpassword is not null as has_password,
                pg_get_userbyid(d.datdba) as owner, has_database_privilege('public', d.datname, 'CONNECT') as public_connect
           from pg_roles r join pg_authid a on a.oid = r.oid, pg_database d where r.rolname = $1 and d.datname = $2`,
        [role, database],
      );
      expect(rows[0]).toEqual({
        rolcanlogin: true,
        rolsuper: false,
        rolcreatedb: false,
        rolcreaterole: false,
        has_password: true,
        owner: role,
        public_connect: false,
      });
    } finally {
      await admin.end();
    }
    // As the role: migrations create tables in public, pg-boss creates its own schema.
    const url = new URL(testServerUrl());
    url.username = role;
    url.password = 'another#pa$$word';
    url.pathname = `/${database}`;
    const app = new pg.Client({ connectionString: url.toString() });
    await app.connect();
    try {
      await app.query('create table public.probe (id int); create schema pgboss; create table pgboss.probe (id int)');
      const { rows } = await app.query('select current_user as who');
      expect(rows[0].who).toBe(role);
    } finally {
      await app.end();
    }
  });

  it('refuses to run without a password', () => {
    const result = run({ app_role: role, app_db: database });
    expect(result.status).not.toBe(0);
    expect(result.stdout + result.stderr).toContain('app_password');
  });
});
