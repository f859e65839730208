import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../src/index.js';

const repoRoot = resolve(import.meta.dirname, '../../..');

function startChild(dataDir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', resolve(import.meta.dirname, 'support/embedded-child.ts'), dataDir],
    {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  return new Promise((ok, fail) => {
    child.stdout?.on('data', (d) => {
      const match = /ready (\S+)/.exec(String(d));
      if (match) ok({ child, url: match[1] as string });
    });
    child.once('exit', (code) => fail(new Error(`child exited with ${code}`)));
  });
}

describe('embedded PostgreSQL left running by a host that died', () => {
  let base = '';
  afterAll(async () => {
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('shares the server of a folder a live process uses, and takes over from one whose host was killed', async () => {
    base = await mkdtemp(join(tmpdir(), 'avatargen-orphan-'));
    await chmod(base, 0o755);
    const dataDir = join(base, 'pg');
    const { child, url } = await startChild(dataDir);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query('create table kept (n int); insert into kept values (42)');
    await client.end();

    // Its host is alive: the folder is not ours to take, but its server is ours to share (the CLI
    // beside a running site), and stopping the shared handle leaves it running for its host.
    const shared = await startEmbeddedPostgres({ dataDir, database: 'second' });
    expect(shared.sharedWith).toBe(child.pid);
    const s = new pg.Client({ connectionString: shared.url.replace(/\/second$/, '/avatargen') });
    await s.connect();
    expect((await s.query('select n from kept')).rows).toEqual([{ n: 42 }]);
    await s.end();
    await shared.stop();
    const still = new pg.Client({ connectionString: url });
    await still.connect(); // the host's server still runs
    await still.end();

    // The host dies without stopping its server: the server is orphaned, and a new start takes over.
    await new Promise((r) => {
      child.once('exit', r);
      child.kill('SIGKILL');
    });
    const again = await startEmbeddedPostgres({ dataDir });
    try {
      const c = new pg.Client({ connectionString: again.url });
      await c.connect();
      expect((await c.query('select n from kept')).rows).toEqual([{ n: 42 }]);
      await c.end();
    } finally {
      await again.stop();
    }
  }, 120_000);
});
