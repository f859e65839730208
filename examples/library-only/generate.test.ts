import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readImageInfo } from '@avatargen/core';
import { createTestDatabase, type TestDatabase } from '@avatargen/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readZip } from '../../tests/support/web-client.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
let db: TestDatabase;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase('avatargen_example');
  dir = mkdtempSync(join(tmpdir(), 'avatargen-library-only-'));
});
afterAll(async () => {
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs the example as a user would, in its own process. */
function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', join(HERE, 'generate.ts'), ...args], {
    cwd: ROOT,
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((done) => child.on('exit', (code) => done({ code, stdout, stderr })));
}

describe('examples/library-only', () => {
  it('generates a dataset on PostgreSQL with a worker in the same process and writes its ZIP', async () => {
    const out = join(dir, 'nested/dataset.zip');
    const result = await run(
      ['--count', '10', '--images', '4', '--image-size', '64', '--description', 'Bakers in Lyon', '--language', 'fr', '--out', out],
      {
        DATABASE_URL: db.url,
        DATA_DIR: join(dir, 'data'),
        LOG_LEVEL: 'warn',
        IMAGE_PROCESSOR_THREADS: '1',
      },
    );
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout.trim()) as { taskId: string; zip: string; personas: number; images: number };
    expect(summary).toMatchObject({ zip: out, personas: 10, images: 40 });

    const entries = await readZip(readFileSync(out));
    const profiles = [...entries.keys()].filter((name) => name.endsWith('/details.json'));
    expect(profiles).toHaveLength(10);
    const images = [...entries.keys()].filter((name) => /^profiles\/[^/]+\/images\//.test(name));
    expect(images.length).toBeGreaterThanOrEqual(40);
    // Real pictures made by the image processor from provider-local's grids.
    for (const name of images.slice(0, 4)) {
      const info = readImageInfo(entries.get(name) as Buffer);
      expect(info.width, name).toBeGreaterThan(0);
    }
    const first = JSON.parse((entries.get(profiles[0] as string) as Buffer).toString('utf8'));
    expect(first.firstName).toEqual(expect.any(String));
    // The manifest lists every other file with its sha256.
    const manifest = JSON.parse((entries.get('manifest.json') as Buffer).toString('utf8'));
    expect(JSON.stringify(manifest)).toContain(profiles[0]);
  });

  it('explains what is missing when no database is configured, without starting', async () => {
    const result = await run(['--out', join(dir, 'never.zip')], { DATABASE_URL: '', DB_HOST: '', DATA_DIR: join(dir, 'data2') });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Set DATABASE_URL');
  });
});
