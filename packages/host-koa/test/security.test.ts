import {
  ConflictError,
  LoginAttempts,
  NotFoundError,
  openDatabase,
  type Orm,
  runMigrations,
  StorageError,
  thumbnailKey,
  ValidationError,
} from '@avatargen/core';
import { createTestDatabase, type TestDatabase } from '@avatargen/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpError, statusFor } from '../src/errors.js';
import { contentSecurityPolicy, csrfMatches, LoginThrottle, safeNext } from '../src/security.js';

describe('LoginThrottle', () => {
  const limits = { perIp: 4, perAccountIp: 2, windowMs: 1000 };
  let db: TestDatabase;
  let orm: Orm;
  beforeAll(async () => {
    db = await createTestDatabase('avatargen_throttle');
    orm = await openDatabase({ url: db.url, poolSize: 4 });
    await runMigrations(orm, db.url);
  });
  afterAll(async () => {
    await orm?.close();
    await db?.drop();
  });
  const throttle = () => new LoginThrottle(new LoginAttempts(orm), limits);

  it('blocks the account from the guessing address only, until the window ends', async () => {
    const t = throttle();
    expect(await t.attempt('1.1.1.1', 'Ann@Example.com', 0)).toBe(0);
    expect(await t.attempt('1.1.1.1', 'ann@example.com', 10)).toBe(0);
    expect(await t.attempt('1.1.1.1', 'ann@example.com', 20)).toBe(980);
    expect(await t.attempt('2.2.2.2', 'ann@example.com', 20)).toBe(0);
    expect(await t.attempt('1.1.1.1', 'bob@example.com', 20)).toBe(0);
    // refused attempts do not stretch the window; an attempt after it starts a new one
    expect(await t.attempt('1.1.1.1', 'ann@example.com', 999)).toBe(1);
    expect(await t.attempt('1.1.1.1', 'ann@example.com', 1000)).toBe(0);
  });

  it('blocks an address after failures across accounts; a success clears its pair and is not counted', async () => {
    const t = throttle();
    for (const who of ['a', 'b', 'c', 'd']) expect(await t.attempt('3.3.3.3', who, 0)).toBe(0);
    expect(await t.attempt('3.3.3.3', 'e', 5)).toBe(995);
    expect(await t.attempt('4.4.4.4', 'a', 0)).toBe(0);
    await t.succeeded('4.4.4.4', 'a');
    expect(await t.attempt('4.4.4.4', 'a', 0)).toBe(0);
    expect(await t.attempt('4.4.4.4', 'a', 0)).toBe(0);
    await t.succeeded('4.4.4.4', 'a');
    // an office behind one address: many people log in, none of it adds up against the address
    for (let i = 0; i < 10; i++) {
      expect(await t.attempt('7.7.7.7', `colleague${i % 3}`, 1)).toBe(0);
      await t.succeeded('7.7.7.7', `colleague${i % 3}`);
    }
  });

  it('counts attempts made at the same moment and through other processes: the counters are in the database', async () => {
    // two web processes are two throttles over one database
    const [web1, web2] = [throttle(), throttle()];
    expect(await web1.attempt('5.5.5.5', 'carol', 0)).toBe(0);
    expect(await web2.attempt('5.5.5.5', 'carol', 1)).toBe(0);
    expect(await web1.attempt('5.5.5.5', 'carol', 2)).toBe(998);
    // a burst for one account: only as many as the limit go on to the password check
    const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? web1 : web2).attempt('6.6.6.6', 'dave', 0)));
    expect(burst.filter((wait) => wait === 0)).toHaveLength(limits.perAccountIp);
    const spray = await Promise.all(['w', 'x', 'y', 'z', 'v'].map((who, i) => (i % 2 ? web1 : web2).attempt('8.8.8.8', who, 0)));
    expect(spray.filter((wait) => wait === 0)).toHaveLength(limits.perIp);
    expect(await new LoginAttempts(orm).deleteExpired(10_000)).toBeGreaterThan(0);
    expect(await web1.attempt('6.6.6.6', 'dave', 10_001)).toBe(0);
  });
});

describe('helpers', () => {
  it('safeNext keeps local paths only', () => {
    expect(safeNext('/datasets/abc?page=2')).toBe('/datasets/abc?page=2');
    for (const bad of ['//evil.example', 'https://evil.example', '/\\evil', 'javascript:alert(1)', '/x"onload=', undefined, 42]) {
      expect(safeNext(bad)).toBe('/dashboard');
    }
  });

  it('csrfMatches compares in constant time and refuses empties', () => {
    expect(csrfMatches('abc', 'abc')).toBe(true);
    expect(csrfMatches('abc', 'abd')).toBe(false);
    expect(csrfMatches('abc', 'ab')).toBe(false);
    expect(csrfMatches('', '')).toBe(false);
    expect(csrfMatches(undefined, 'abc')).toBe(false);
    expect(csrfMatches('abc', ['abc'])).toBe(false);
  });

  it('thumbnail keys stay inside the task folder and are never made of thumbnails', () => {
    expect(thumbnailKey('tasks/t1/3/01ABC.png', 240)).toBe('tasks/t1/thumbs/w240/3/01ABC.png.webp');
    expect(thumbnailKey('tasks/t1/thumbs/w240/3/01ABC.png.webp', 240)).toBeNull();
    expect(thumbnailKey('other/t1/x.png', 240)).toBeNull();
  });

  it('the CSP allows images from the storage origin and nothing inline', () => {
    const csp = contentSecurityPolicy(['https://cdn.example.com']);
    expect(csp).toContain("img-src 'self' data: https://cdn.example.com");
    expect(csp).not.toMatch(/unsafe/);
  });

  it('maps typed errors to statuses', () => {
    expect(statusFor(new ValidationError({ a: 'b' }))).toBe(422);
    expect(statusFor(new NotFoundError('x'))).toBe(404);
    expect(statusFor(new ConflictError('x'))).toBe(409);
    expect(statusFor(new StorageError('get', 'k', 'gone', { notFound: true }))).toBe(404);
    expect(statusFor(new StorageError('get', 'k', 'disk on fire'))).toBe(500);
    expect(statusFor(new HttpError(429, 'slow down'))).toBe(429);
    expect(statusFor(Object.assign(new Error('bad json'), { status: 400, expose: true }))).toBe(400);
    expect(statusFor(new Error('boom'))).toBe(500);
  });
});
