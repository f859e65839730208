/**
 * Run once before the tests (vitest globalSetup): everything `npm test` needs outside npm. A
 * missing piece fails the run at once with one line naming it and the command that installs it,
 * rather than tests failing one by one or skipping in silence.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import pg from 'pg';

interface Tool {
  what: string;
  found: () => boolean;
  /** The Debian package that brings it. */
  apt: string;
}

const onPath = (command: string) => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;

const TOOLS: Tool[] = [
  { what: 'Chromium at /usr/bin/chromium (browser tests)', found: () => existsSync('/usr/bin/chromium'), apt: 'chromium' },
  { what: 'nginx (deploy tests)', found: () => onPath('nginx') || existsSync('/usr/sbin/nginx'), apt: 'nginx' },
  { what: 'exiftool (provenance tests)', found: () => onPath('exiftool'), apt: 'libimage-exiftool-perl' },
  { what: 'psql (database setup script test)', found: () => onPath('psql'), apt: 'postgresql-client' },
  { what: 'systemd-analyze (systemd unit tests)', found: () => onPath('systemd-analyze'), apt: 'systemd' },
];

export default async function prerequisites(): Promise<void> {
  const missing = TOOLS.filter((tool) => !tool.found());
  if (missing.length > 0) {
    throw new Error(
      `npm test needs ${missing.map((t) => t.what).join(', ')}: install with "apt-get install -y ${missing.map((t) => t.apt).join(' ')}" (README, "What npm test needs")`,
    );
  }
  const url = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    await client.query('select 1');
  } catch (error) {
    const where = url.replace(/\/\/([^:@/]+):[^@]*@/, '//$1:***@');
    throw new Error(
      `npm test needs PostgreSQL at ${where} (${(error as Error).message}): start it ("apt-get install -y postgresql", trust for 127.0.0.1 in pg_hba.conf), or set TEST_DATABASE_URL to a server whose user may create databases`,
    );
  } finally {
    await client.end().catch(() => undefined);
  }
}
