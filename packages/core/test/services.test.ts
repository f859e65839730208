import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MIGRATIONS } from '../src/db/migrations/index.js';
import {
  ConflictError,
  defaultSettings,
  NotFoundError,
  openDatabase,
  type Orm,
  runMigrations,
  SessionStore,
  SettingsService,
  UsersService,
  ValidationError,
} from '../src/index.js';
import { createTestDatabase, type TestDatabase } from '../src/testing.js';

describe('database services', () => {
  let db: TestDatabase;
  let orm: Orm;
  beforeAll(async () => {
    db = await createTestDatabase();
    // Two processes starting at once both run migrations: one applies them, the other waits and finds none.
    const [a, b] = await Promise.all([openDatabase({ url: db.url }), openDatabase({ url: db.url })]);
    const applied = await Promise.all([runMigrations(a, db.url), runMigrations(b, db.url)]);
    expect(applied.flat()).toEqual(MIGRATIONS.map((m) => m.name));
    await b.close();
    orm = a;
  });
  afterAll(async () => {
    await orm.close();
    await db.drop();
  });

  describe('settings', () => {
    it('returns typed defaults and stores validated changes', async () => {
      const settings = new SettingsService(orm);
      expect(await settings.get()).toEqual(defaultSettings());
      const updated = await settings.update({ max_concurrent_tasks: '5', crop_white_borders: 'off', bio_prompt_x: '  short  ' });
      expect(updated).toMatchObject({ max_concurrent_tasks: 5, crop_white_borders: false, bio_prompt_x: 'short' });
      expect(await settings.get()).toEqual(updated);
    });

    it('refuses bad values with a message per field and stores nothing', async () => {
      const settings = new SettingsService(orm);
      const before = await settings.get();
      const error = await settings
        .update({ max_concurrent_tasks: 21, bio_prompt_facebook: '', randomize_face_base: 'maybe' })
        .catch((e) => e);
      expect(error).toBeInstanceOf(ValidationError);
      expect(error.fields).toEqual({
        max_concurrent_tasks: 'At most 20 tasks can run at once.',
        bio_prompt_facebook: 'Enter instructions for this platform.',
        randomize_face_base: 'Must be on or off.',
      });
      expect(await settings.get()).toEqual(before);
      await expect(settings.update({ nope: 1 } as never)).rejects.toThrow('nope: Unknown setting.');
    });
  });

  describe('users', () => {
    it('hashes passwords with bcrypt and authenticates', async () => {
      const users = new UsersService(orm);
      const user = await users.create({ email: ' Admin@Example.com ', password: 'correct horse battery', isAdmin: true });
      expect(user.email).toBe('admin@example.com');
      const [row] = await orm.em.fork().execute('select password_hash from users where id = ?', [user.id]);
      expect(row?.password_hash).toMatch(/^\$2b\$12\$/);
      expect(await users.authenticate('ADMIN@example.com', 'correct horse battery')).toMatchObject({ id: user.id });
      expect(await users.authenticate('admin@example.com', 'wrong password!')).toBeNull();
      expect(await users.authenticate('nobody@example.com', 'correct horse battery')).toBeNull();
      await expect(users.create({ email: 'admin@example.com', password: 'another password' })).rejects.toBeInstanceOf(ConflictError);
    });

    it('refuses passwords over 72 bytes and short ones, with a message', async () => {
      const users = new UsersService(orm);
      const long = 'é'.repeat(37); // 74 bytes
      const error = await users.create({ email: 'long@example.com', password: long }).catch((e) => e);
      expect(error).toBeInstanceOf(ValidationError);
      expect(error.fields.password).toMatch(/at most 72 bytes/);
      await expect(users.create({ email: 'short@example.com', password: 'short' })).rejects.toThrow(/at least 12 characters/);
      for (const email of ['not-an-email', 'a@b', 'a b@example.com', 'x@-bad.com', '@example.com']) {
        await expect(users.create({ email, password: 'long enough pw' })).rejects.toThrow(/valid email/);
      }
      expect((await users.create({ email: 'admin@localhost', password: 'long enough pw' })).email).toBe('admin@localhost');
    });

    it('disables accounts and changes passwords, ending the account’s sessions', async () => {
      const users = new UsersService(orm);
      const sessions = new SessionStore(orm);
      const bob = await users.create({ email: 'bob@example.com', password: 'bob password 1' });
      const carol = await users.create({ email: 'carol@example.com', password: 'carol password 1' });
      await sessions.set('bob-laptop', { userId: bob.id }, 60_000);
      await sessions.set('bob-phone', { userId: bob.id }, 60_000);
      await sessions.set('carol-laptop', { userId: carol.id }, 60_000);
      await users.setPassword('bob@example.com', 'bob password 2');
      expect(await users.authenticate('bob@example.com', 'bob password 1')).toBeNull();
      expect(await users.authenticate('bob@example.com', 'bob password 2')).not.toBeNull();
      expect(await sessions.get('bob-laptop')).toBeUndefined();
      expect(await sessions.get('bob-phone')).toBeUndefined();
      expect(await sessions.get('carol-laptop')).toEqual({ userId: carol.id });
      await sessions.set('bob-again', { userId: bob.id }, 60_000);
      await users.setActive('bob@example.com', false);
      expect(await users.authenticate('bob@example.com', 'bob password 2')).toBeNull();
      expect(await sessions.get('bob-again')).toBeUndefined();
      await expect(users.setPassword('nobody@example.com', 'long enough pw')).rejects.toBeInstanceOf(NotFoundError);
      expect(await sessions.get('carol-laptop')).toEqual({ userId: carol.id });
    });

    it('issues API tokens shown once, stored hashed, revocable', async () => {
      const users = new UsersService(orm);
      const user = await users.create({ email: 'token@example.com', password: 'token password' });
      const { token, view } = await users.createToken(user.id, 'ci');
      expect(token).toMatch(/^agt_/);
      const stored = await orm.em.fork().execute('select token_hash from api_tokens where id = ?', [view.id]);
      expect(stored[0]?.token_hash).not.toContain(token);
      expect(await users.authenticateToken(token)).toMatchObject({ id: user.id });
      expect(await users.authenticateToken(`${token}x`)).toBeNull();
      await users.revokeToken(user.id, view.id);
      expect(await users.authenticateToken(token)).toBeNull();
      expect((await users.listTokens(user.id))[0]?.revokedAt).toBeInstanceOf(Date);
    });

    it('refuses a token name with a control character, a lone surrogate or bytes that were not UTF-8', async () => {
      const users = new UsersService(orm);
      const user = await users.create({ email: 'names@example.com', password: 'names password' });
      for (const name of ['ci\u0000', 'a\u0007b', 'c1 \u0085', 'half \ud800', 'bad \ufffd', 'line\nbreak']) {
        await expect(users.createToken(user.id, name)).rejects.toBeInstanceOf(ValidationError);
      }
      expect(await users.listTokens(user.id)).toEqual([]);
      expect((await users.createToken(user.id, 'laptop 😀 é')).view.name).toBe('laptop 😀 é');
    });

    it('writes last_used_at at most once a minute, without making token requests wait on each other', async () => {
      const users = new UsersService(orm);
      const user = await users.create({ email: 'busy@example.com', password: 'busy password' });
      const { token, view } = await users.createToken(user.id, 'shared');
      // epoch milliseconds (raw rows hold timestamps as text)
      const lastUsed = async () =>
        ((
          await orm.em
            .fork()
            .execute('select (extract(epoch from last_used_at) * 1000)::float8 as ms from api_tokens where id = ?', [view.id])
        )[0]?.ms as number | null) ?? null;
      expect(await lastUsed()).toBeNull();
      // 50 requests at once with one token all pass; the first records the use, in the background
      const all = await Promise.all(Array.from({ length: 50 }, () => users.authenticateToken(token)));
      expect(all.every((u) => u?.id === user.id)).toBe(true);
      await users.authenticate('busy@example.com', 'busy password'); // a last login time to compare too
      expect(await users.authenticateToken(token)).toEqual(await users.findById(user.id));
      await expect.poll(lastUsed).toBeTypeOf('number');
      const first = (await lastUsed()) as number;
      // The write is not awaited by the request: catch each one the services start, to wait for its end.
      const writes: Promise<unknown>[] = [];
      const fork = orm.em.fork.bind(orm.em);
      const forks = vi.spyOn(orm.em, 'fork').mockImplementation((...args) => {
        const em = fork(...args);
        const execute = em.execute.bind(em);
        em.execute = ((query: string, ...rest: unknown[]) => {
          const result = (execute as (...all: unknown[]) => Promise<unknown>)(query, ...rest);
          if (/^\s*update api_tokens set last_used_at/.test(String(query))) writes.push(result.catch((e: unknown) => e));
          return result;
        }) as typeof em.execute;
        return em;
      });
      try {
        await users.authenticateToken(token);
        expect(writes).toHaveLength(0); // within the minute: this process does not even try a second write
        expect(await lastUsed()).toEqual(first);
        // another process (a fresh service) writing within the minute is skipped by the update's condition
        await new UsersService(orm).authenticateToken(token);
        expect(writes).toHaveLength(1);
        expect(await writes[0]).not.toBeInstanceOf(Error);
        expect(await lastUsed()).toEqual(first);
      } finally {
        forks.mockRestore();
      }
      // an hour later (the row says so), the next use is recorded again
      await orm.em.fork().execute(`update api_tokens set last_used_at = now() - interval '1 hour' where id = ?`, [view.id]);
      await new UsersService(orm).authenticateToken(token);
      await expect.poll(async () => (await lastUsed()) as number).toBeGreaterThan(Date.now() - 60_000);
    });

    it('revokes every token of a disabled account for good: enabling it again does not bring them back', async () => {
      const users = new UsersService(orm);
      const user = await users.create({ email: 'leaver@example.com', password: 'leaver password' });
      const { token } = await users.createToken(user.id, 'old laptop');
      expect(await users.authenticateToken(token)).toMatchObject({ id: user.id });
      await users.setActive('leaver@example.com', false);
      expect(await users.authenticateToken(token)).toBeNull();
      expect((await users.listTokens(user.id)).every((t) => t.revokedAt instanceof Date)).toBe(true);
      await users.setActive('leaver@example.com', true);
      expect(await users.authenticateToken(token)).toBeNull();
      expect(await users.authenticate('leaver@example.com', 'leaver password')).toMatchObject({ id: user.id });
      const { token: fresh } = await users.createToken(user.id, 'new laptop');
      expect(await users.authenticateToken(fresh)).toMatchObject({ id: user.id });
    });
  });

  describe('sessions', () => {
    it('stores, expires and destroys sessions', async () => {
      const store = new SessionStore(orm);
      await store.set('s1', { userId: null, csrf: 'abc' }, 60_000);
      expect(await store.get('s1')).toEqual({ userId: null, csrf: 'abc' });
      await store.set('s1', { csrf: 'def' }, 60_000);
      expect(await store.get('s1')).toEqual({ csrf: 'def' });
      await store.set('old', { csrf: 'x' }, -1000);
      expect(await store.get('old')).toBeUndefined();
      expect(await store.deleteExpired()).toBe(1);
      await store.destroy('s1');
      expect(await store.get('s1')).toBeUndefined();
    });
  });
});
