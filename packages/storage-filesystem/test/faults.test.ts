// The filesystem storage under real faults: a tmpfs of its own that the test remounts read-only or
// fills up, an ext4 image shut down to make every call fail with EIO, and a process without
// permission. Mounting needs root; without it every test here fails with one line saying so.
import { execFile, execFileSync } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteUnderPrefix, StorageError } from '@avatargen/core';
import { createFilesystemStorage, type FilesystemStorage, type FilesystemStorageOptions } from '../src/index.js';
import { TEMP_PREFIX } from '../src/paths.js';

const NEEDS_ROOT = 'faults.test.ts needs root for tmpfs mounts (mount -t tmpfs, mount -o loop); run it as root';
const PNG = { contentType: 'image/png' };
const HOUR_AGO = () => new Date(Date.now() - 60 * 60_000);

let base = '';
/** The tmpfs most tests use. */
let mnt = '';
const mounts: string[] = [];
const storages: FilesystemStorage[] = [];

function sh(command: string, args: string[]): void {
  execFileSync(command, args, { stdio: 'pipe' });
}

function mount(args: string[], target: string): void {
  try {
    sh('mount', [...args, target]);
  } catch (error) {
    const reason = String((error as { stderr?: Buffer }).stderr ?? error)
      .trim()
      .split('\n')[0];
    throw new Error(`${NEEDS_ROOT}: mount failed: ${reason}`);
  }
  mounts.push(target);
}

const remount = (mode: 'ro' | 'rw', target = mnt) => sh('mount', ['-o', `remount,${mode}`, target]);

function open(options: Partial<FilesystemStorageOptions> & { root: string }): FilesystemStorage {
  const storage = createFilesystemStorage({ sweepIntervalMs: 0, ...options });
  storages.push(storage);
  return storage;
}

async function listKeys(storage: FilesystemStorage, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of storage.list(prefix)) keys.push(object.key);
  return keys;
}

/** Every temporary file under a folder, as paths relative to it; links are not followed. */
async function tempFiles(dir: string, relative = ''): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = relative + entry.name;
    if (entry.isDirectory()) found.push(...(await tempFiles(join(dir, entry.name), `${path}/`)));
    else if (entry.name.startsWith(TEMP_PREFIX)) found.push(path);
  }
  return found;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

/** A retryable StorageError naming the operation, the key and the system's code, and no host path. */
function expectRetryable(error: unknown, operation: string, key: string, code: string): void {
  expect(error, `${operation} ${key}`).toBeInstanceOf(StorageError);
  const e = error as StorageError;
  expect(e.message).toMatch(new RegExp(`^${operation} ${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ${code}\\b`));
  expect(e).toMatchObject({ operation, key, retryable: true, notFound: false, keyRefused: false });
  expect(e.message).not.toContain(base);
}

/** Writes a file until the file system is full. */
function fill(path: string): void {
  const fd = openSync(path, 'w');
  try {
    for (const size of [256 * 1024, 4096]) {
      const chunk = Buffer.alloc(size, 1);
      for (;;) {
        try {
          writeSync(fd, chunk);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw error;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** A body that sends one chunk, then waits for `release` before the rest. */
function heldStream() {
  const stream = new Readable({ read() {} });
  stream.push(Buffer.alloc(64 * 1024, 1));
  return {
    stream,
    release() {
      stream.push(Buffer.alloc(64 * 1024, 2));
      stream.push(null);
    },
  };
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error(NEEDS_ROOT);
  base = await mkdtemp(join(tmpdir(), 'avatargen-faults-'));
  await chmod(base, 0o755); // the permission test's unprivileged process must reach its folder
  mnt = join(base, 'tmpfs');
  await mkdir(mnt);
  mount(['-t', 'tmpfs', '-o', 'size=4m,mode=755', 'tmpfs'], mnt);
});

afterAll(async () => {
  for (const storage of storages) await storage.close().catch(() => undefined);
  // Unmounted even when a test failed half-way (read-only, full or shut down): lazily if busy.
  for (const target of mounts.reverse()) {
    try {
      sh('umount', [target]);
    } catch {
      sh('umount', ['-l', target]);
    }
  }
  if (base) await rm(base, { recursive: true, force: true });
});

describe('filesystem storage under real faults', () => {
  it('read-only file system: writes and deletes fail retryable with EROFS, reads go on; read-write again: the same storage works', async () => {
    const root = join(mnt, 'ro');
    const storage = open({ root });
    await storage.put('tasks/t1/a.png', Buffer.from('first'), PNG);
    remount('ro');
    try {
      const writes: Array<[string, () => Buffer | Readable]> = [
        ['tasks/t1/b.png', () => Buffer.from('bytes')],
        ['tasks/t1/c.png', () => Readable.from([Buffer.from('a stream')])],
        ['tasks/t2/d.png', () => Buffer.from('into a folder that does not exist yet')],
      ];
      for (const [key, body] of writes) {
        expectRetryable(await storage.put(key, body(), PNG).catch((e: unknown) => e), 'put', key, 'EROFS');
      }
      expectRetryable(await storage.delete('tasks/t1/a.png').catch((e: unknown) => e), 'delete', 'tasks/t1/a.png', 'EROFS');
      expectRetryable(await storage.deleteMany(['tasks/t1/a.png']).catch((e: unknown) => e), 'delete', 'tasks/t1/a.png', 'EROFS');
      expectRetryable(await storage.deletePrefix('tasks/').catch((e: unknown) => e), 'deletePrefix', 'tasks/t1/a.png', 'EROFS');
      expect((await readAll(await storage.get('tasks/t1/a.png'))).toString()).toBe('first');
      expect(await listKeys(storage)).toEqual(['tasks/t1/a.png']);
    } finally {
      remount('rw');
    }
    await storage.put('tasks/t1/b.png', Buffer.from('bytes'), PNG);
    await storage.put('tasks/t2/d.png', Readable.from([Buffer.from('streamed')]), PNG);
    expect(await listKeys(storage)).toEqual(['tasks/t1/a.png', 'tasks/t1/b.png', 'tasks/t2/d.png']);
    expect(await tempFiles(root)).toEqual([]);
  });

  it('full file system: writes fail retryable with ENOSPC and leave no temp file or partial object; space freed: works', async () => {
    const root = join(mnt, 'full');
    const storage = open({ root });
    await storage.put('tasks/t1/old.png', Buffer.from('old'), PNG);
    const filler = join(mnt, 'filler');
    fill(filler);
    try {
      const big = Buffer.alloc(200 * 1024, 7);
      const writes: Array<[string, () => Buffer | Readable]> = [
        ['tasks/t1/new.png', () => big],
        ['tasks/t1/streamed.png', () => Readable.from([big.subarray(0, 1000), big.subarray(1000)])],
        ['tasks/t2/other-folder.png', () => big],
        // an overwrite that fails keeps the old object
        ['tasks/t1/old.png', () => big],
      ];
      for (const [key, body] of writes) {
        expectRetryable(await storage.put(key, body(), PNG).catch((e: unknown) => e), 'put', key, 'ENOSPC');
      }
      expect(await listKeys(storage)).toEqual(['tasks/t1/old.png']);
      expect((await readAll(await storage.get('tasks/t1/old.png'))).toString()).toBe('old');
      // the temp files were created (a new file needs no data block on tmpfs) and removed again
      expect(await tempFiles(root)).toEqual([]);
    } finally {
      await unlink(filler);
    }
    await storage.put('tasks/t1/new.png', Buffer.alloc(200 * 1024, 7), PNG);
    expect(await listKeys(storage, 'tasks/t1/')).toEqual(['tasks/t1/new.png', 'tasks/t1/old.png']);
  });

  it('I/O errors (an ext4 image shut down): calls fail retryable with EIO; the temp file left behind is swept after remounting', async () => {
    const image = join(base, 'ext4.img');
    const dir = join(base, 'ext4');
    await mkdir(dir);
    try {
      sh('truncate', ['-s', '32M', image]);
      sh('mkfs.ext4', ['-q', '-F', image]);
    } catch (error) {
      throw new Error(`this test needs truncate and mkfs.ext4 (e2fsprogs): ${(error as Error).message.split('\n')[0]}`);
    }
    mount(['-o', 'loop', image], dir);
    const root = join(dir, 'storage');
    const storage = open({ root });
    await storage.put('tasks/t1/a.png', Buffer.from('kept'), PNG);

    // A write in progress when the disk fails: its temp file exists and cannot be removed.
    const held = heldStream();
    const pending = storage.put('tasks/t1/streamed.png', held.stream, PNG).catch((e: unknown) => e);
    await expect.poll(() => tempFiles(root)).toHaveLength(1);
    // EXT4_IOC_SHUTDOWN (flag 0: flush, then shut down); perl is in every Debian base system.
    sh('perl', [
      '-e',
      'open(my $f, "<", $ARGV[0]) or die "open: $!"; my $flags = pack("L", 0); ioctl($f, 0x8004587D, $flags) or die "ioctl: $!";',
      dir,
    ]);
    held.release();
    expectRetryable(await pending, 'put', 'tasks/t1/streamed.png', 'EIO');
    expectRetryable(await storage.put('tasks/t1/b.png', Buffer.from('x'), PNG).catch((e: unknown) => e), 'put', 'tasks/t1/b.png', 'EIO');
    expectRetryable(await storage.put('tasks/t9/c.png', Buffer.from('x'), PNG).catch((e: unknown) => e), 'put', 'tasks/t9/c.png', 'EIO');
    expectRetryable(await storage.get('tasks/t1/a.png').catch((e: unknown) => e), 'get', 'tasks/t1/a.png', 'EIO');
    expectRetryable(await storage.read?.('tasks/t1/a.png').catch((e: unknown) => e), 'read', 'tasks/t1/a.png', 'EIO');
    expectRetryable(await storage.delete('tasks/t1/a.png').catch((e: unknown) => e), 'delete', 'tasks/t1/a.png', 'EIO');

    sh('umount', [dir]);
    mounts.pop();
    mount(['-o', 'loop', image], dir);
    // The same storage object works again; the dead write's temp file is still there, never listed.
    const [left] = await tempFiles(root);
    expect(left).toMatch(new RegExp(`^tasks/t1/${TEMP_PREFIX}`));
    expect(await listKeys(storage)).toEqual(['tasks/t1/a.png']);
    expect((await readAll(await storage.get('tasks/t1/a.png'))).toString()).toBe('kept');
    await storage.put('tasks/t1/b.png', Buffer.from('after'), PNG);
    // Fresh, it is kept (it could be another process's write); once old enough, swept.
    expect(await storage.sweepTempFiles()).toBe(0);
    await utimes(join(root, left as string), HOUR_AGO(), HOUR_AGO());
    expect(await storage.sweepTempFiles()).toBe(1);
    expect(await tempFiles(root)).toEqual([]);
    expect(await listKeys(storage)).toEqual(['tasks/t1/a.png', 'tasks/t1/b.png']);
  });

  it('no permission (a process running as nobody): calls fail retryable with EACCES', async () => {
    const root = join(mnt, 'acl');
    const owner = open({ root });
    await owner.put('tasks/t1/private.png', Buffer.from('root only'), PNG);
    await chmod(join(root, 'tasks/t1/private.png'), 0o600);
    // As root, permissions do not stop anything: the storage runs in a child process as nobody.
    const script = join(base, 'as-nobody.mjs');
    await writeFile(
      script,
      `const { createFilesystemStorage } = await import(process.argv[2]);
const storage = createFilesystemStorage({ root: process.argv[3], sweepIntervalMs: 0 });
const calls = {
  'put tasks/t1/new.png': () => storage.put('tasks/t1/new.png', Buffer.from('x'), { contentType: 'image/png' }),
  'put tasks/t2/new.png': () => storage.put('tasks/t2/new.png', Buffer.from('x'), { contentType: 'image/png' }),
  'get tasks/t1/private.png': () => storage.get('tasks/t1/private.png'),
  'delete tasks/t1/private.png': () => storage.delete('tasks/t1/private.png'),
};
const results = {};
for (const [name, call] of Object.entries(calls)) {
  results[name] = await call().then(() => 'ok', (e) => ({ name: e.name, message: e.message, retryable: e.retryable, operation: e.operation, key: e.key }));
}
await storage.close();
process.stdout.write(JSON.stringify(results));
`,
    );
    await chmod(script, 0o644);
    const module = new URL('../src/storage.ts', import.meta.url).href;
    const { stdout } = await promisify(execFile)(process.execPath, ['--conditions=source', '--import', 'tsx', script, module, root], {
      uid: 65534,
      gid: 65534,
      cwd: fileURLToPath(new URL('..', import.meta.url)),
    });
    const results = JSON.parse(stdout) as Record<string, { name: string; message: string; retryable: boolean }>;
    for (const [call, result] of Object.entries(results)) {
      const [operation, key] = call.split(' ') as [string, string];
      expect(result, call).toMatchObject({ name: 'StorageError', operation, key, retryable: true });
      expect(result.message, call).toMatch(new RegExp(`^${call}: EACCES\\b`));
    }
    expect(await listKeys(owner)).toEqual(['tasks/t1/private.png']);
    expect(await readFile(join(root, 'tasks/t1/private.png'), 'utf8')).toBe('root only');
  });
});

describe('temp file sweep', () => {
  it('removes stale temp files at start, in the background, and keeps fresh ones (another process may be writing)', async () => {
    const root = join(mnt, 'sweep-start');
    await mkdir(join(root, 'tasks/t1'), { recursive: true });
    const stale = [`${TEMP_PREFIX}top`, `tasks/t1/${TEMP_PREFIX}deep`];
    for (const path of stale) {
      await writeFile(join(root, path), 'half a write');
      await utimes(join(root, path), HOUR_AGO(), HOUR_AGO());
    }
    await writeFile(join(root, `tasks/t1/${TEMP_PREFIX}fresh`), 'in progress');
    // a link is not followed: an old temp-named file outside the root stays
    const outside = join(mnt, 'sweep-outside');
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, `${TEMP_PREFIX}outside`), 'not ours');
    await utimes(join(outside, `${TEMP_PREFIX}outside`), HOUR_AGO(), HOUR_AGO());
    await symlink(outside, join(root, 'link'));

    const storage = open({ root, tempMaxAgeMs: 10 * 60_000 });
    await storage.close(); // waits for the sweep started at creation
    expect(await tempFiles(root)).toEqual([`tasks/t1/${TEMP_PREFIX}fresh`]);
    expect(await readdir(outside)).toEqual([`${TEMP_PREFIX}outside`]);
    // on demand, with an age of its own
    expect(await storage.sweepTempFiles({ maxAgeMs: 0 })).toBe(1);
    expect(await tempFiles(root)).toEqual([]);
  });

  it('sweeps periodically until closed', async () => {
    const root = join(mnt, 'sweep-periodic');
    await mkdir(join(root, 'a'), { recursive: true });
    const storage = open({ root, tempMaxAgeMs: 1000, sweepIntervalMs: 50 });
    const plant = async (name: string) => {
      await writeFile(join(root, 'a', name), 'x');
      await utimes(join(root, 'a', name), HOUR_AGO(), HOUR_AGO());
    };
    await plant(`${TEMP_PREFIX}one`);
    await expect.poll(() => tempFiles(root), { timeout: 5000 }).toEqual([]);
    await storage.close();
    await plant(`${TEMP_PREFIX}two`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await tempFiles(root)).toEqual([`a/${TEMP_PREFIX}two`]);
  });

  it('logs a failed background sweep instead of throwing, and construction does not wait for it', async () => {
    const root = join(mnt, 'sweep-ro');
    await mkdir(root, { recursive: true });
    await writeFile(join(root, `${TEMP_PREFIX}stuck`), 'x');
    await utimes(join(root, `${TEMP_PREFIX}stuck`), HOUR_AGO(), HOUR_AGO());
    const warnings: string[] = [];
    remount('ro');
    try {
      const storage = open({ root, logger: { warn: (_object, message) => warnings.push(message) } });
      await storage.close();
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(`sweepTempFiles ${TEMP_PREFIX}stuck: EROFS unlink`);
      expect(warnings[0]).not.toContain(base);
      const error = await storage.sweepTempFiles().catch((e: unknown) => e);
      expectRetryable(error, 'sweepTempFiles', `${TEMP_PREFIX}stuck`, 'EROFS');
    } finally {
      remount('rw');
    }
    await open({ root }).close(); // its start sweep, now on a writable file system
    expect(await tempFiles(root)).toEqual([]);
  });
});

describe('deletePrefix', () => {
  it('removes the objects, temp files and emptied folders under the prefix, and nothing outside it', async () => {
    const root = join(mnt, 'prefix');
    const storage = open({ root });
    const keys = [
      'tasks/t1/p1/a.png',
      'tasks/t1/p1/b.png',
      'tasks/t1/p2/c.png',
      'tasks/t1/d.csv',
      'tasks/t10/e.png',
      'tasks/t2/f.png',
      'other.png',
    ];
    for (const key of keys) await storage.put(key, Buffer.from(key), PNG);
    // a fresh temp file inside (a write of the task being deleted) and one outside
    await writeFile(join(root, `tasks/t1/p2/${TEMP_PREFIX}inside`), 'x');
    await writeFile(join(root, `tasks/t2/${TEMP_PREFIX}outside`), 'x');
    await mkdir(join(root, 'tasks/t1/empty/deeper'), { recursive: true });
    // a link inside is removed neither itself nor through: its target and the folder holding it stay
    const outside = join(mnt, 'prefix-outside');
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, 'precious.png'), 'keep');
    await mkdir(join(root, 'tasks/t3'), { recursive: true });
    await storage.put('tasks/t3/g.png', Buffer.from('g'), PNG);
    await symlink(outside, join(root, 'tasks/t3/link'));

    expect(await storage.deletePrefix('tasks/t1/')).toBe(4);
    expect(await listKeys(storage)).toEqual(['other.png', 'tasks/t10/e.png', 'tasks/t2/f.png', 'tasks/t3/g.png']);
    expect((await readdir(join(root, 'tasks'))).sort()).toEqual(['t10', 't2', 't3']);
    expect(await tempFiles(root)).toEqual([`tasks/t2/${TEMP_PREFIX}outside`]);

    expect(await deleteUnderPrefix(storage, 'tasks/t3/')).toBe(1);
    expect(await readdir(join(root, 'tasks/t3'))).toEqual(['link']);
    expect(await readdir(outside)).toEqual(['precious.png']);
    // a prefix through a link is refused, like a key
    await expect(storage.deletePrefix('tasks/t3/link/')).rejects.toMatchObject({ keyRefused: true, retryable: false });
    expect(await readdir(outside)).toEqual(['precious.png']);

    for (const bad of ['', '/', '../', 'tasks/../', 'tasks//t2/', 'tasks/t2\u0000/', 'tasks\\t2/', `tasks/${TEMP_PREFIX}x`]) {
      const error = await storage.deletePrefix(bad).catch((e: unknown) => e);
      expect(error, JSON.stringify(bad)).toBeInstanceOf(StorageError);
      expect(error, JSON.stringify(bad)).toMatchObject({ keyRefused: true, retryable: false });
    }
    expect(await storage.deletePrefix('nothing/here/')).toBe(0);
    expect(await listKeys(storage)).toEqual(['other.png', 'tasks/t10/e.png', 'tasks/t2/f.png']);
  });
});
