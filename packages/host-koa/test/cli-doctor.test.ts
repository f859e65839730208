import { existsSync, mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, type DoctorReport, type TaskView } from '@avatargen/core';
import { createTestDatabase, type TestDatabase } from '@avatargen/core/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { thumbnailKey, thumbnailSource } from '@avatargen/core';
import { EXIT_PARTIAL, generateOutcome, type Io, main } from '../src/cli.js';
import { startBackend } from '../src/host.js';
import { readSite } from '../src/site.js';
import { readZip } from './support/zip.js';

let db: TestDatabase;
let dir: string;
let sql: pg.Client;

const env = () => ({ DATABASE_URL: db.url, DATA_DIR: join(dir, 'data'), LOG_LEVEL: 'silent', IMAGE_PROCESSOR_THREADS: '1' });
const storageRoot = () => join(dir, 'data', 'storage');

function io() {
  const out: string[] = [];
  const err: string[] = [];
  const value: Io = {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    errRaw: (text) => err.push(text),
    isTTY: false,
    env: env(),
    cwd: dir,
  };
  return { io: value, out, err };
}

async function doctor(...args: string[]) {
  const run = io();
  const code = await main(['doctor', ...args], run.io);
  return { code, text: run.out.join('\n'), out: run.out, err: run.err.join('\n') };
}

beforeAll(async () => {
  db = await createTestDatabase('avatargen_cli_doctor');
  dir = mkdtempSync(join(tmpdir(), 'avatargen-cli-doctor-'));
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
});
afterAll(async () => {
  await sql?.end();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('generate exit codes', () => {
  it('0 with a ZIP when completed, 3 with a ZIP when partial, 1 without one when failed or cancelled', () => {
    const task = (status: TaskView['status'], imagesStored = 40) =>
      ({
        id: 't1',
        status,
        progress: { personasStored: 10, personasTotal: 10, imagesStored, imagesTotal: 40, percent: 0 },
      }) as TaskView;
    expect(generateOutcome(task('completed'))).toEqual({ code: 0, zip: true, message: null });
    expect(EXIT_PARTIAL).toBe(3);
    expect(generateOutcome(task('partial', 36))).toEqual({
      code: 3,
      zip: true,
      message: expect.stringContaining('Task t1 ended partial: personas 10 of 10, images 36 of 40.'),
    });
    expect(generateOutcome(task('failed', 0))).toEqual({ code: 1, zip: false, message: 'Task t1 failed.' });
    expect(generateOutcome(task('cancelled', 0))).toEqual({ code: 1, zip: false, message: 'Task t1 cancelled.' });
  });
});

describe('avatargen doctor', () => {
  it('is in the help, with its own help', async () => {
    const top = io();
    expect(await main(['--help'], top.io)).toBe(0);
    expect(top.out.join('\n')).toContain('doctor');
    const own = io();
    expect(await main(['doctor', '--help'], own.io)).toBe(0);
    expect(own.out.join('\n')).toContain('avatargen doctor [--fix] [--json]');
    expect((await doctor('--limit', 'many')).code).toBe(2);
  });

  it('a task that ends partial (a persona whose folder cannot be made): generate exits 3 with the ZIP; the doctor finds, fixes, and the retry completes it', async () => {
    expect(await main(['migrate'], io().io)).toBe(0);
    expect((await doctor()).code).toBe(0);

    // The next persona ids, the last of which gets a file where its folder must go: its images
    // cannot be stored (EEXIST is no outage: not retried), the other nine are complete.
    const [seq] = (await sql.query(`select case when is_called then last_value else last_value - 1 end as n from personas_id_seq`)).rows;
    const blocked = Number(seq.n) + 10;
    // Planted as soon as the task is there: its submission notifies every process (core's task channel).
    let blocker: string | undefined;
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    await listener.query('listen avatargen_task');
    const planting = new Promise<void>((resolve, reject) => {
      let started = false;
      listener.on('notification', (message) => {
        if (started || !message.payload) return;
        started = true;
        listener.query('select storage_prefix from generation_tasks where id = $1', [message.payload]).then(({ rows }) => {
          const folder = join(storageRoot(), 'tasks', rows[0].storage_prefix);
          mkdirSync(folder, { recursive: true });
          blocker = join(folder, String(blocked));
          writeFileSync(blocker, 'not a folder');
          resolve();
        }, reject);
      });
    });
    const run = io();
    const out = join(dir, 'partial.zip');
    let code: number;
    try {
      code = await main(['generate', '-d', 'Bakers in Lyon', '-n', '10', '-i', '4', '-o', out], run.io);
      // the notification came long before generate ended: this only waits for the write to finish
      let timer: NodeJS.Timeout | undefined;
      const never = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('the task was never notified')), 5_000);
      });
      await Promise.race([planting, never]).finally(() => clearTimeout(timer));
    } finally {
      await listener.end();
    }
    const stderr = run.err.join('\n');
    expect(stderr).toMatch(/ended partial: personas 10 of 10, images 36 of 40\./);
    expect(code).toBe(EXIT_PARTIAL);
    expect(run.out).toEqual([out]);
    const entries = await readZip(await readFile(out));
    expect([...entries.keys()].filter((k) => k.endsWith('/details.json'))).toHaveLength(10);
    // 9 personas x (base + 4 pictures)
    expect([...entries.keys()].filter((k) => k.includes('/images/'))).toHaveLength(45);

    const [task] = (await sql.query('select id, storage_prefix, status from generation_tasks')).rows;
    expect(task.status).toBe('partial');
    const prefix = task.storage_prefix as string;
    const blockerKey = `tasks/${prefix}/${blocked}`;

    // One more fault: a picture of another persona lost from the folder.
    const [lost] = (
      await sql.query('select persona_id, idx, key from persona_images where task_id = $1 order by persona_id, idx limit 1', [task.id])
    ).rows;
    unlinkSync(join(storageRoot(), lost.key));
    // A cached thumbnail of a picture that is there is not an orphan.
    const [kept] = (await sql.query('select key from persona_images where task_id = $1 order by persona_id desc, idx limit 1', [task.id]))
      .rows;
    const thumb = thumbnailKey(kept.key, 240) as string;
    expect(thumbnailSource(thumb)).toBe(kept.key);
    mkdirSync(join(storageRoot(), thumb, '..'), { recursive: true });
    writeFileSync(join(storageRoot(), thumb), 'webp');

    const found = await doctor();
    expect(found.code).toBe(1);
    expect(found.out[0]).toBe('Checked 46 objects under tasks/ and 45 rows of 1 ended task.');
    expect(found.text).toContain('Rows whose object is missing: 1');
    expect(found.text).toContain(`  ${lost.key}  (task ${task.id}, persona ${lost.persona_id}, image ${lost.idx})`);
    expect(found.text).toContain('Objects no row references: 1 (12 B)');
    expect(found.text).toContain(`  ${blockerKey}  (task ${task.id}, 12 B)`);
    expect(found.text).toContain('Run "avatargen doctor --fix" to repair.');
    expect(found.out.at(-1)).toBe('Problems remain.');

    const json = await doctor('--json', '--limit', '0');
    expect(json.code).toBe(1);
    const report = JSON.parse(json.text) as DoctorReport;
    expect(report).toMatchObject({
      objects: 46,
      rows: 45,
      tasks: 1,
      missing: { count: 1, items: [] },
      orphans: { count: 1, bytes: 12, items: [] },
      fixed: null,
      healthy: false,
    });

    const fixed = await doctor('--fix');
    expect(fixed.code).toBe(0);
    expect(fixed.text).toContain(
      `Fixed: 1 orphan object deleted; 1 image row removed, 0 base images cleared, 1 persona back to pending; retried ${task.id}.`,
    );
    expect(fixed.out.at(-1)).toBe('Repaired.');
    expect(existsSync(blocker as string)).toBe(false);
    expect(existsSync(join(storageRoot(), thumb))).toBe(true);

    // A worker makes what is missing: the blocked persona's images and the lost picture's grid.
    const site = await readSite(env(), dir);
    const backend = await startBackend(site, createLogger(site.config, undefined, site.secrets));
    try {
      await backend.gen.worker.start();
      const view = await backend.gen.tasks.waitUntilEnded(task.id, { timeoutMs: 60_000 });
      expect(view.progress).toMatchObject({ personasStored: 10, imagesStored: 40 });
      expect(view.status).toBe('completed');
    } finally {
      await backend.close();
    }
    const healthy = await doctor();
    expect(healthy.code).toBe(0);
    expect(healthy.out[0]).toBe('Checked 51 objects under tasks/ and 50 rows of 1 ended task.');
    expect(healthy.out.at(-1)).toBe('Healthy.');
    const healthyJson = JSON.parse((await doctor('--json')).text) as DoctorReport;
    expect(healthyJson).toMatchObject({ healthy: true, missing: { count: 0 }, orphans: { count: 0 } });
  }, 180_000);
});
