import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, UsersService } from '@avatargen/core';
import { createTestDatabase, type TestDatabase } from '@avatargen/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Io, main } from '../src/cli.js';
import { resolveSecretKey } from '../src/host.js';
import { readZip } from './support/zip.js';

let db: TestDatabase;
let dir: string;

function io(env: Record<string, string | undefined> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const value: Io = {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    errRaw: (text) => err.push(text),
    isTTY: false,
    env: { DATABASE_URL: db.url, DATA_DIR: join(dir, 'data'), LOG_LEVEL: 'silent', IMAGE_PROCESSOR_THREADS: '1', ...env },
    cwd: dir,
  };
  return { io: value, out, err };
}

beforeAll(async () => {
  db = await createTestDatabase('avatargen_cli');
  dir = mkdtempSync(join(tmpdir(), 'avatargen-cli-'));
});
afterAll(async () => {
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('avatargen command', () => {
  it('prints help for the command and every subcommand', async () => {
    const top = io();
    expect(await main(['--help'], top.io)).toBe(0);
    for (const command of ['start', 'web', 'worker', 'migrate', 'user create', 'user set-password', 'user disable', 'generate']) {
      expect(top.out.join('\n')).toContain(command);
    }
    for (const command of ['start', 'web', 'worker', 'migrate', 'user', 'generate']) {
      const run = io();
      expect(await main([command, '--help'], run.io), command).toBe(0);
      expect(run.out.join('\n'), command).toContain(`avatargen ${command}`);
    }
    const none = io();
    expect(await main([], none.io)).toBe(2);
    const unknown = io();
    expect(await main(['frobnicate'], unknown.io)).toBe(2);
    expect(unknown.err.join('\n')).toContain('unknown command "frobnicate"');
  });

  it('names a bad variable without printing any secret', async () => {
    const run = io({ APP_PORT: 'eighty', SECRET_KEY: 'short-secret-value' });
    expect(await main(['migrate'], run.io)).toBe(2);
    const text = run.err.join('\n');
    expect(text).toContain('APP_PORT must be a whole number from 1 to 65535');
    expect(text).toContain('SECRET_KEY must be at least 32 characters');
    expect(text).not.toContain('short-secret-value');
  });

  it('reads .env from the current folder', async () => {
    writeFileSync(join(dir, '.env'), 'LOG_LEVEL=verbose\n');
    const run = io({ LOG_LEVEL: undefined });
    expect(await main(['migrate'], run.io)).toBe(2);
    expect(run.err.join('\n')).toContain('LOG_LEVEL');
    rmSync(join(dir, '.env'));
  });

  it('migrates, then manages users (72-byte limit, set-password, disable)', async () => {
    const migrate = io();
    expect(await main(['migrate'], migrate.io)).toBe(0);
    const tooLong = io();
    expect(await main(['user', 'create', '--email', 'cli@example.com', '--password', 'ü'.repeat(37)], tooLong.io)).toBe(2);
    expect(tooLong.err.join('\n')).toContain('password: Use at most 72 bytes');
    const created = io();
    expect(await main(['user', 'create', '--email', 'cli@example.com', '--admin'], created.io)).toBe(0);
    const password = /password: (\S+)/.exec(created.out.join('\n'))?.[1] as string;
    expect(password.length).toBeGreaterThanOrEqual(16);
    const orm = await openDatabase({ url: db.url });
    try {
      const users = new UsersService(orm);
      expect(await users.authenticate('cli@example.com', password)).toMatchObject({ isAdmin: true });
      expect(await main(['user', 'set-password', '--email', 'cli@example.com', '--password', 'a brand new passphrase'], io().io)).toBe(0);
      expect(await users.authenticate('cli@example.com', 'a brand new passphrase')).not.toBeNull();
      expect(await main(['user', 'disable', '--email', 'cli@example.com'], io().io)).toBe(0);
      expect(await users.authenticate('cli@example.com', 'a brand new passphrase')).toBeNull();
      const missing = io();
      expect(await main(['user', 'disable', '--email', 'ghost@example.com'], missing.io)).toBe(1);
      expect(missing.err.join('\n')).toContain('No account for ghost@example.com');
    } finally {
      await orm.close();
    }
  });

  it('generate runs a task for an account, headless, with a progress bar, and writes the ZIP beside the data', async () => {
    // The only admin was disabled above: nothing runs, and one line says how to make one.
    const none = io();
    expect(await main(['generate', '-d', 'Beekeepers in Provence'], none.io)).toBe(2);
    expect(none.err.join('\n')).toContain('No active admin account: make one with "avatargen user create --admin --email <email>".');
    const ghost = io();
    expect(await main(['generate', '-d', 'Beekeepers in Provence', '--user', 'ghost@example.com'], ghost.io)).toBe(2);
    expect(ghost.err.join('\n')).toContain('no account ghost@example.com');
    expect(await main(['user', 'enable', '--email', 'cli@example.com'], io().io)).toBe(0);

    const run = io();
    const code = await main(['generate', '-d', 'Beekeepers in Provence', '-n', '10', '-i', '4', '-l', 'fr'], run.io);
    const err = run.err.join('\n');
    expect(err).toMatch(/\[#{30}\] 100\.0%\s+10\/10 personas\s+40\/40 images\s+completed/);
    expect(err).toContain('Admin account: cli@example.com');
    expect(code).toBe(0);
    // stdout holds the ZIP's path only; by default it lands in DATA_DIR/exports, not the current folder
    expect(run.out).toHaveLength(1);
    const out = run.out[0] as string;
    expect(out).toMatch(new RegExp(`^${join(dir, 'data', 'exports')}/avatargen-\\w+\\.zip$`));
    const entries = await readZip(await readFile(out));
    expect([...entries.keys()].filter((k) => k.endsWith('/details.json'))).toHaveLength(10);
    expect([...entries.keys()].filter((k) => k.includes('/images/'))).toHaveLength(50);
    // the task belongs to the admin: the site and the API show it to them
    const taskId = /Task (\S+) of cli@example\.com/.exec(err)?.[1] as string;
    const orm = await openDatabase({ url: db.url });
    try {
      const [row] = await orm.em
        .fork()
        .execute('select u.email from generation_tasks t join users u on u.id = t.user_id where t.id = ?', [taskId]);
      expect(row?.email).toBe('cli@example.com');
      // one line of usage and cost on stderr, its figures those recorded for the task
      const [counts] = await orm.em
        .fork()
        .execute(
          'select c.images_requested, c.images_made, (select sum(calls)::int from task_usage u where u.task_id = c.task_id) as calls from task_counters c where c.task_id = ?',
          [taskId],
        );
      expect(counts).toEqual({ images_requested: 50, images_made: 50, calls: counts?.calls });
      expect(err).toContain(
        `Usage: ${counts?.calls} provider calls, 0 input and 0 output tokens, 50 of 50 images requested made, 0 retries, 0 moderation blocks, 0 rejected personas. Estimated cost: unknown (no price in the settings for the models used)`,
      );
    } finally {
      await orm.close();
    }
    // progress never goes backwards
    const percents = [...err.matchAll(/\] +(\d+\.\d)%/g)].map((m) => Number(m[1]));
    expect(percents).toEqual([...percents].sort((a, b) => a - b));

    const named = io();
    const chosen = join(dir, 'out', 'set.zip');
    expect(await main(['generate', '-d', 'Beekeepers in Provence', '-o', chosen, '--user', 'cli@example.com'], named.io)).toBe(0);
    expect(named.out).toEqual([chosen]);
    const bad = io();
    expect(await main(['generate', '-d', 'x', '-n', '3'], bad.io)).toBe(2);
    expect(bad.err.join('\n')).toContain('count: Generate at least 10 personas.');
    // languages by name, and a near miss named
    const byName = io();
    expect(await main(['generate', '-d', 'Tram drivers in Lisbon', '-l', 'Portuguese', '-o', join(dir, 'out', 'pt.zip')], byName.io)).toBe(
      0,
    );
    expect(byName.err.join('\n')).toMatch(/Task \S+ of /);
    const near = io();
    expect(await main(['generate', '-d', 'x', '-l', 'Portugese'], near.io)).toBe(2);
    expect(near.err.join('\n')).toContain('language: Choose a bio language from the list. Did you mean Portuguese (pt)');
  });
});

describe('avatargen generate with demographic targets', () => {
  it('stores the targets given as options, and names the option of a bad one without starting anything', async () => {
    const help = io();
    expect(await main(['generate', '--help'], help.io)).toBe(0);
    for (const option of ['--genders', '--ages', '--ethnicities', '--locations']) expect(help.out.join('\n')).toContain(option);

    const bad = io();
    expect(await main(['generate', '-d', 'Beekeepers in Provence', '--ages', '40-20', '--genders', 'robots'], bad.io)).toBe(2);
    const said = bad.err.join('\n');
    expect(said).toContain('--ages: An age band starts at or below its end (25-40, not 40-25).');
    expect(said).toContain('--genders: "robots" is not a gender: write female or male (or f, m), or a split such as 50/50.');
    expect(said).not.toContain('Task ');
    const sum = io();
    expect(await main(['generate', '-d', 'x', '--ethnicities', 'French 60%, Italian 30%'], sum.io)).toBe(2);
    expect(sum.err.join('\n')).toContain('--ethnicities: The ethnicity shares add up to 90%, not 100%.');

    const run = io();
    const args = ['generate', '-d', 'Beekeepers in Provence', '--user', 'cli@example.com', '-o', join(dir, 'out', 'targets.zip')];
    expect(await main([...args, '--genders', 'f 7, m 3', '--locations', 'Avignon; Arles, France'], run.io)).toBe(0);
    const taskId = /Task (\S+) of cli@example\.com/.exec(run.err.join('\n'))?.[1] as string;
    const orm = await openDatabase({ url: db.url });
    try {
      const [row] = await orm.em.fork().execute('select targets from generation_tasks where id = ?', [taskId]);
      expect(row?.targets).toEqual({
        genders: [
          { gender: 'f', share: 7 },
          { gender: 'm', share: 3 },
        ],
        locations: [
          { name: 'Avignon', share: 1 },
          { name: 'Arles, France', share: 1 },
        ],
      });
    } finally {
      await orm.close();
    }
  });
});

describe('secret key', () => {
  it('is made once in DATA_DIR with mode 0600, then reused; SECRET_KEY wins', async () => {
    const dataDir = join(dir, 'keys');
    const first = await resolveSecretKey({ DATA_DIR: dataDir, SECRET_KEY: undefined });
    expect(first.length).toBeGreaterThanOrEqual(32);
    expect(statSync(join(dataDir, 'secret-key')).mode & 0o777).toBe(0o600);
    expect(await resolveSecretKey({ DATA_DIR: dataDir, SECRET_KEY: undefined })).toBe(first);
    const configured = 'x'.repeat(40);
    expect(await resolveSecretKey({ DATA_DIR: dataDir, SECRET_KEY: configured })).toBe(configured);
  });
});
