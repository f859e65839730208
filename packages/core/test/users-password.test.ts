import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  NEW_PASSWORD_MIN,
  NotFoundError,
  openDatabase,
  type Orm,
  runMigrations,
  SessionStore,
  STATUS_LABELS,
  statusLabel,
  TASK_STATUSES,
  UsersService,
  ValidationError,
} from '../src/index.js';
import { createTestDatabase, type TestDatabase } from '../src/testing.js';

describe('UsersService.changePassword', () => {
  let db: TestDatabase;
  let orm: Orm;
  let users: UsersService;
  let sessions: SessionStore;
  const OLD = 'old password 0123';
  beforeAll(async () => {
    db = await createTestDatabase();
    orm = await openDatabase({ url: db.url });
    await runMigrations(orm, db.url);
    users = new UsersService(orm);
    sessions = new SessionStore(orm);
  });
  afterAll(async () => {
    await orm?.close();
    await db?.drop();
  });

  const failure = (promise: Promise<unknown>) =>
    promise.then(
      () => null,
      (error: unknown) => error,
    );

  it.each<[string, string, string, Record<string, string>]>([
    ['a wrong current password', 'not my password', 'brand new password', { current: 'The current password is wrong.' }],
    [
      'a wrong current password with a short new one (the current one is checked first)',
      'not my password',
      'short',
      { current: 'The current password is wrong.' },
    ],
    ['an empty current password', '', 'brand new password', { current: 'The current password is wrong.' }],
    ['a current password over 72 bytes', 'x'.repeat(73), 'brand new password', { current: 'The current password is wrong.' }],
    ['a new password under 12 characters', OLD, 'eleven char', { next: `Use at least ${NEW_PASSWORD_MIN} characters.` }],
    [
      'a new password over 72 bytes',
      OLD,
      'é'.repeat(37),
      { next: 'Use at most 72 bytes (bcrypt ignores the rest); a shorter passphrase is as strong.' },
    ],
    ['the same password again', OLD, OLD, { next: 'Choose a password different from the current one.' }],
  ])('refuses %s and keeps the old one', async (_name, current, next, fields) => {
    const user = await users.create({ email: `refuse-${Math.random().toString(36).slice(2)}@example.com`, password: OLD });
    const error = await failure(users.changePassword(user.id, current, next));
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).fields).toEqual(fields);
    expect(await users.authenticate(user.email, OLD)).not.toBeNull();
  });

  it('stores the new password (bcrypt), refuses the old one and ends every session of the account only', async () => {
    const user = await users.create({ email: 'changer@example.com', password: OLD });
    const other = await users.create({ email: 'bystander@example.com', password: OLD });
    await sessions.set('mine-1', { userId: user.id }, 60_000);
    await sessions.set('mine-2', { userId: user.id }, 60_000);
    await sessions.set('theirs', { userId: other.id }, 60_000);
    await users.changePassword(user.id, OLD, 'a much longer new passphrase');
    expect(await users.authenticate(user.email, OLD)).toBeNull();
    expect(await users.authenticate(user.email, 'a much longer new passphrase')).toMatchObject({ id: user.id });
    expect(await sessions.get('mine-1')).toBeUndefined();
    expect(await sessions.get('mine-2')).toBeUndefined();
    expect(await sessions.get('theirs')).toEqual({ userId: other.id });
    const [row] = await orm.em.fork().execute('select password_hash from users where id = ?', [user.id]);
    expect(row?.password_hash).toMatch(/^\$2[aby]\$12\$/);
  });

  it('knows no such account, and no disabled one', async () => {
    expect(await failure(users.changePassword(999_999, OLD, 'brand new password'))).toBeInstanceOf(NotFoundError);
    const user = await users.create({ email: 'disabled@example.com', password: OLD });
    await users.setActive(user.email, false);
    expect(await failure(users.changePassword(user.id, OLD, 'brand new password'))).toBeInstanceOf(NotFoundError);
  });
});

describe('status labels', () => {
  it('has a human wording for every status, and passes unknown names through', () => {
    for (const status of TASK_STATUSES) {
      expect(STATUS_LABELS[status]).toMatch(/^[A-Z][a-z ]+$/);
      expect(statusLabel(status)).toBe(STATUS_LABELS[status]);
    }
    expect(statusLabel('generating-images')).toBe('Making pictures');
    expect(statusLabel('toString')).toBe('toString');
  });
});
