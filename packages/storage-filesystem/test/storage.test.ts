import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildContainer, createLogger, loadConfig, type ObjectStorage, readObject, StorageError } from '@avatargen/core';
import { describeObjectStorageContract } from '@avatargen/core/testing';
import filesystemStorage, { createFilesystemStorage, filesystemStoragePlugin } from '../src/index.js';

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

async function listKeys(storage: ReturnType<typeof createFilesystemStorage>, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of storage.list(prefix)) keys.push(object.key);
  return keys;
}

let base: string;
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'avatargen-fs-'));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describeObjectStorageContract('filesystem', {
  create: async () => createFilesystemStorage({ root: await mkdtemp(join(tmpdir(), 'avatargen-fs-contract-')) }),
});

describe('filesystem storage', () => {
  it('round-trips an object to a file under the root, atomically and without leftovers', async () => {
    const root = join(base, 'roundtrip');
    const storage = createFilesystemStorage({ root });
    const bytes = Buffer.from('hello image');
    await storage.put('tasks/t1/persona-1/base.png', bytes, { contentType: 'image/png' });
    expect(await readFile(join(root, 'tasks/t1/persona-1/base.png'))).toEqual(bytes);
    expect(await readAll(await storage.get('tasks/t1/persona-1/base.png'))).toEqual(bytes);
    // overwriting replaces the whole object, and no temporary file stays behind
    await storage.put('tasks/t1/persona-1/base.png', Readable.from([Buffer.from('v2')]), { contentType: 'image/png' });
    expect((await readAll(await storage.get('tasks/t1/persona-1/base.png'))).toString()).toBe('v2');
    expect(await readdir(join(root, 'tasks/t1/persona-1'))).toEqual(['base.png']);
  });

  it('removes a failed write and keeps the old object', async () => {
    const root = join(base, 'failed');
    const storage = createFilesystemStorage({ root });
    await storage.put('a/b.bin', Buffer.from('old'), { contentType: 'application/octet-stream' });
    const failing = new Readable({
      read() {
        this.push(Buffer.from('partial'));
        this.destroy(new Error('upstream broke'));
      },
    });
    const error = await storage.put('a/b.bin', failing, { contentType: 'application/octet-stream' }).catch((e) => e);
    expect(error).toBeInstanceOf(StorageError);
    // the caller's stream broke, not the disk: the same stream cannot be tried again
    expect(error).toMatchObject({ operation: 'put', key: 'a/b.bin', retryable: false });
    expect((error as StorageError).message).toBe('put a/b.bin: the source stream failed: Error: upstream broke');
    expect((await readAll(await storage.get('a/b.bin'))).toString()).toBe('old');
    expect(await readdir(join(root, 'a'))).toEqual(['b.bin']);
  });

  it('lists by a partial name prefix like S3, and an empty prefix lists everything', async () => {
    const storage = createFilesystemStorage({ root: join(base, 'prefix') });
    for (const key of ['p/abc.txt', 'p/abd.txt', 'p/x/ab.txt', 'q.txt']) {
      await storage.put(key, Buffer.from(key), { contentType: 'text/plain' });
    }
    expect(await listKeys(storage, 'p/ab')).toEqual(['p/abc.txt', 'p/abd.txt']);
    expect(await listKeys(storage, '')).toEqual(['p/abc.txt', 'p/abd.txt', 'p/x/ab.txt', 'q.txt']);
    expect(await listKeys(storage, 'nothing/here/')).toEqual([]);
  });

  it('refuses sweep options that are not durations', () => {
    for (const options of [{ tempMaxAgeMs: -1 }, { tempMaxAgeMs: Number.NaN }, { sweepIntervalMs: 1.5 }, { sweepIntervalMs: 2 ** 31 }]) {
      expect(() => createFilesystemStorage({ root: base, ...options }), JSON.stringify(options)).toThrow(StorageError);
    }
  });

  it('builds public URLs under the base path, default /media', () => {
    expect(createFilesystemStorage({ root: base }).publicUrl('tasks/a b/c#d?.png')).toBe('/media/tasks/a%20b/c%23d%3F.png');
    expect(createFilesystemStorage({ root: base, publicBaseUrl: 'https://cdn.example.com/files/' }).publicUrl('x/y.jpg')).toBe(
      'https://cdn.example.com/files/x/y.jpg',
    );
  });

  const badKeys: Array<[string, string]> = [
    ['../escape.txt', '".." segment'],
    ['a/../../escape.txt', '".." segment'],
    ['a/./b.txt', '"." segment'],
    ['/etc/passwd', 'absolute path'],
    ['a\\..\\..\\b', 'backslash'],
    ['a/b\u0000.txt', 'control character'],
    ['a/b\n.txt', 'control character'],
    ['a//b.txt', 'empty segment'],
    ['a/', 'empty segment'],
    ['', 'empty'],
    ['C:/Windows/x', 'drive letter'],
    [`a/${'x'.repeat(300)}`, 'longer than 255 bytes'],
  ];

  it.each(badKeys)('refuses the key %j with a StorageError (%s) in every operation', async (key, reason) => {
    const root = join(base, 'escape', 'root');
    await mkdir(root, { recursive: true });
    const storage = createFilesystemStorage({ root });
    const attempts: Array<() => unknown> = [
      () => storage.put(key, Buffer.from('x'), { contentType: 'text/plain' }),
      () => storage.get(key),
      () => storage.delete(key),
      () => storage.deleteMany(['fine.txt', key]),
      () => storage.publicUrl(key),
    ];
    for (const attempt of attempts) {
      const error = await Promise.resolve()
        .then(attempt)
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(error).toBeInstanceOf(StorageError);
      expect((error as StorageError).message).toContain('invalid key');
      expect((error as StorageError).message).toContain(reason.split(' ')[0]);
      expect((error as StorageError).retryable).toBe(false);
    }
    // nothing was written next to or above the root
    expect(await readdir(join(base, 'escape'))).toEqual(['root']);
  });

  it('does not follow symbolic links out of the root', async () => {
    const root = join(base, 'links', 'root');
    const outside = join(base, 'links', 'outside');
    await mkdir(root, { recursive: true });
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, 'secret.txt'), 'secret');
    await symlink(outside, join(root, 'door'));
    await symlink(join(outside, 'secret.txt'), join(root, 'file-link.txt'));
    const storage = createFilesystemStorage({ root });

    for (const attempt of [
      () => storage.get('door/secret.txt'),
      () => storage.put('door/new.txt', Buffer.from('x'), { contentType: 'text/plain' }),
      () => storage.put('door/deeper/new.txt', Buffer.from('x'), { contentType: 'text/plain' }),
      () => storage.delete('door/secret.txt'),
      () => storage.get('file-link.txt'),
      () => (storage.read as (key: string) => Promise<Uint8Array>)('door/secret.txt'),
      () => (storage.read as (key: string) => Promise<Uint8Array>)('file-link.txt'),
      () => storage.put('file-link.txt', Buffer.from('overwritten'), { contentType: 'text/plain' }),
    ]) {
      const error = await attempt().then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(StorageError);
      expect((error as StorageError).message).toContain('symbolic link');
    }
    expect(await readdir(outside)).toEqual(['secret.txt']);
    expect(await readFile(join(outside, 'secret.txt'), 'utf8')).toBe('secret');
    // links are not objects: listing does not descend into them
    await storage.put('real.txt', Buffer.from('r'), { contentType: 'text/plain' });
    expect(await listKeys(storage, '')).toEqual(['real.txt']);
  });

  it('serves objects under a root reached through a link, empty and multi-chunk ones too, and refuses links inside it', async () => {
    const real = join(base, 'linked-root', 'real');
    await mkdir(real, { recursive: true });
    await symlink(real, join(base, 'linked-root', 'alias'));
    const storage = createFilesystemStorage({ root: join(base, 'linked-root', 'alias') });
    const big = Buffer.alloc(2.5 * 1024 * 1024, 7);
    await storage.put('a/empty.bin', Buffer.alloc(0), { contentType: 'application/octet-stream' });
    await storage.put('a/big.bin', big, { contentType: 'application/octet-stream' });
    const read = async (key: string) => {
      const chunks: Buffer[] = [];
      for await (const chunk of await storage.get(key)) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    };
    expect((await read('a/empty.bin')).length).toBe(0);
    expect((await read('a/big.bin')).equals(big)).toBe(true);
    // a link to a folder inside the root is still a link: not followed
    await symlink(join(real, 'a'), join(real, 'inner'));
    await expect(storage.get('inner/big.bin')).rejects.toThrow(/symbolic link/);
    await expect(storage.get('a/none.bin')).rejects.toMatchObject({ notFound: true });
    // read() follows the same rules
    expect(Buffer.from(await storage.read('a/big.bin')).equals(big)).toBe(true);
    expect((await storage.read('a/empty.bin')).length).toBe(0);
    await expect(storage.read('inner/big.bin')).rejects.toThrow(/symbolic link/);
    for (const key of ['a/none.bin', 'a', 'none/deeper.bin']) {
      await expect(storage.read(key), key).rejects.toMatchObject({ notFound: true });
    }
  });

  it('refuses a FIFO planted in the folder as not found, without waiting for a writer', async () => {
    const root = join(base, 'fifo');
    const storage = createFilesystemStorage({ root });
    await storage.put('x/real.bin', Buffer.from('real'), { contentType: 'application/octet-stream' });
    execFileSync('mkfifo', [join(root, 'x', 'pipe.bin')]);
    // Opened without O_NONBLOCK, each of these would wait for a writer forever.
    await expect(storage.get('x/pipe.bin')).rejects.toMatchObject({ notFound: true });
    await expect((storage.read as (key: string) => Promise<Uint8Array>)('x/pipe.bin')).rejects.toMatchObject({ notFound: true });
    expect(await listKeys(storage, 'x/')).toEqual(['x/real.bin']);
  });

  it('readObject reads whole objects by read() or by the stream, and refuses ones over the limit', async () => {
    const storage = createFilesystemStorage({ root: join(base, 'read-object') });
    const bytes = Buffer.alloc(2.2 * 1024 * 1024, 9);
    await storage.put('x/big.bin', bytes, { contentType: 'application/octet-stream' });
    // the same storage without its read(): the stream path
    const streamOnly: ObjectStorage = { ...storage, read: undefined };
    for (const subject of [storage, streamOnly]) {
      expect((await readObject(subject, 'x/big.bin')).equals(bytes)).toBe(true);
      await expect(readObject(subject, 'x/big.bin', 1024 * 1024)).rejects.toThrow(/larger than 1048576 bytes/);
      await expect(readObject(subject, 'x/none.bin')).rejects.toMatchObject({ notFound: true });
    }
  });

  it('is the objectStorage of filesystemStoragePlugin, under DATA_DIR/storage by default', async () => {
    const config = loadConfig({ DATA_DIR: join(base, 'data'), LOG_LEVEL: 'silent' });
    const built = await buildContainer([filesystemStoragePlugin()], { config, logger: createLogger(config) }, ['objectStorage']);
    const storage = built.resolvePort('objectStorage');
    await storage.put('k/v.txt', Buffer.from('via plugin'), { contentType: 'text/plain' });
    expect(await readFile(join(base, 'data', 'storage', 'k', 'v.txt'), 'utf8')).toBe('via plugin');
    expect(storage.publicUrl('k/v.txt')).toBe('/media/k/v.txt');
  });

  it("is the package's default export, named after the package", () => {
    expect(filesystemStorage).toBe(filesystemStoragePlugin);
    expect(filesystemStoragePlugin()).toMatchObject({ name: '@avatargen/storage-filesystem', provides: ['objectStorage'] });
  });
});
