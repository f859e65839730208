import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AuthCache, rememberedKeys } from '../src/auth-cache.js';
import { PASSWORD, type Site, startSite } from './support/harness.js';

// The real session and account services on PostgreSQL; spies only count (and, in one test,
// delay) the calls that reach them.
let site: Site;
let userId: number;
beforeAll(async () => {
  site = await startSite({ worker: false });
  userId = (await site.gen.users.create({ email: 'cache@example.com', password: PASSWORD })).id;
});
afterAll(() => site?.close());

const HOUR = 3_600_000;

describe('AuthCache', () => {
  it('serves requests that miss together with one read of the session and one of the account', async () => {
    await site.gen.sessions.set('sid-shared', { userId, csrf: 'c1' }, HOUR);
    const cache = new AuthCache(site.gen, 60_000);
    const sessionReads = vi.spyOn(site.gen.sessions, 'get');
    const accountReads = vi.spyOn(site.gen.users, 'findById');
    try {
      const sessions = await Promise.all(Array.from({ length: 30 }, () => cache.store.get('sid-shared')));
      const accounts = await Promise.all(Array.from({ length: 30 }, () => cache.user(userId)));
      expect(sessionReads).toHaveBeenCalledTimes(1);
      expect(accountReads).toHaveBeenCalledTimes(1);
      for (const session of sessions) expect(session).toEqual({ userId, csrf: 'c1' });
      // each caller gets its own copy: koa-session changes the object it is given
      expect(new Set(sessions).size).toBe(30);
      for (const account of accounts) expect(account).toMatchObject({ id: userId, email: 'cache@example.com' });
      // an unknown session is remembered as unknown, also with one read
      await Promise.all(Array.from({ length: 5 }, () => cache.store.get('sid-unknown')));
      expect(await cache.store.get('sid-unknown')).toBeUndefined();
      expect(sessionReads).toHaveBeenCalledTimes(2);
    } finally {
      sessionReads.mockRestore();
      accountReads.mockRestore();
    }
  });

  it('reads again once the entry is older than its time to live', async () => {
    await site.gen.sessions.set('sid-ttl', { userId, csrf: 'c2' }, HOUR);
    const cache = new AuthCache(site.gen, 40);
    const sessionReads = vi.spyOn(site.gen.sessions, 'get');
    try {
      await cache.store.get('sid-ttl');
      await cache.store.get('sid-ttl');
      expect(sessionReads).toHaveBeenCalledTimes(1);
      await site.gen.sessions.set('sid-ttl', { userId, csrf: 'changed elsewhere' }, HOUR);
      await new Promise((r) => setTimeout(r, 60));
      expect(await cache.store.get('sid-ttl')).toEqual({ userId, csrf: 'changed elsewhere' });
      expect(sessionReads).toHaveBeenCalledTimes(2);
    } finally {
      sessionReads.mockRestore();
    }
  });

  it('with a time to live of 0 keeps nothing, but requests that miss together still share one read', async () => {
    await site.gen.sessions.set('sid-zero', { userId, csrf: 'c0' }, HOUR);
    const cache = new AuthCache(site.gen, 0);
    const sessionReads = vi.spyOn(site.gen.sessions, 'get');
    try {
      const together = await Promise.all(Array.from({ length: 5 }, () => cache.store.get('sid-zero')));
      for (const session of together) expect(session).toEqual({ userId, csrf: 'c0' });
      expect(sessionReads).toHaveBeenCalledTimes(1);
      await cache.store.set('sid-zero', { userId, csrf: 'c1' }, HOUR);
      expect(await cache.store.get('sid-zero')).toEqual({ userId, csrf: 'c1' });
      expect(sessionReads).toHaveBeenCalledTimes(2);
    } finally {
      sessionReads.mockRestore();
    }
  });

  it('keeps a write made while an older read is still on its way', async () => {
    await site.gen.sessions.set('sid-race', { userId, csrf: 'old' }, HOUR);
    const cache = new AuthCache(site.gen, 60_000);
    const read = site.gen.sessions.get.bind(site.gen.sessions);
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    // the read gets the old row at once but answers only after the write below
    const sessionReads = vi.spyOn(site.gen.sessions, 'get').mockImplementationOnce(async (key: string) => {
      const row = await read(key);
      await gate;
      return row;
    });
    try {
      const slow = cache.store.get('sid-race');
      await new Promise((r) => setTimeout(r, 50));
      await cache.store.set('sid-race', { userId, csrf: 'new' }, HOUR);
      release();
      expect(await slow).toEqual({ userId, csrf: 'old' });
      expect(await cache.store.get('sid-race')).toEqual({ userId, csrf: 'new' });
      expect(sessionReads).toHaveBeenCalledTimes(1);
      await cache.store.destroy('sid-race');
      expect(await cache.store.get('sid-race')).toBeUndefined();
    } finally {
      sessionReads.mockRestore();
    }
  });

  it('passes a failed read to everyone waiting on it, and tries again on the next request', async () => {
    await site.gen.sessions.set('sid-fail', { userId, csrf: 'c3' }, HOUR);
    const cache = new AuthCache(site.gen, 60_000);
    const sessionReads = vi.spyOn(site.gen.sessions, 'get').mockImplementationOnce(async () => {
      throw new Error('connection terminated');
    });
    try {
      const results = await Promise.allSettled(Array.from({ length: 3 }, () => cache.store.get('sid-fail')));
      expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
      expect(await cache.store.get('sid-fail')).toEqual({ userId, csrf: 'c3' });
      expect(sessionReads).toHaveBeenCalledTimes(2);
    } finally {
      sessionReads.mockRestore();
    }
  });
});

describe('rememberedKeys', () => {
  const OLD = 'an older secret key, 0123456789abcdef';
  const SECRET = 'the current secret key, 0123456789abcdef';

  /** A Koa app that sets the signed cookie `c` on /set?v=… and answers its value (or "none") on /get. */
  async function cookieApp(keys: Koa['keys']) {
    const app = new Koa({ keys: keys as string[] });
    app.use((ctx) => {
      if (ctx.path === '/set') ctx.cookies.set('c', String(ctx.query.v), { signed: true });
      ctx.body = ctx.cookies.get('c', { signed: true }) ?? 'none';
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return {
      close: () => new Promise((r) => server.close(r)),
      set: async (v: string) =>
        (await fetch(`${base}/set?v=${v}`)).headers
          .getSetCookie()
          .map((c) => c.split(';')[0])
          .join('; '),
      get: async (cookie: string) => (await fetch(`${base}/get`, { headers: { cookie } })).text(),
    };
  }

  it('signs and checks cookies as Koa’s own keys do (over and over), and refuses a forged signature', async () => {
    const plain = await cookieApp([SECRET]);
    const remembered = await cookieApp(rememberedKeys([SECRET]) as unknown as Koa['keys']);
    const rotated = await cookieApp(rememberedKeys([SECRET, OLD]) as unknown as Koa['keys']);
    const old = await cookieApp([OLD]);
    try {
      const fromPlain = await plain.set('a1');
      expect(await remembered.get(fromPlain)).toBe('a1');
      expect(await remembered.get(fromPlain)).toBe('a1');
      const fromRemembered = await remembered.set('b2');
      expect(fromRemembered).toBe(await plain.set('b2'));
      expect(await plain.get(fromRemembered)).toBe('b2');
      const forged = fromRemembered.replace(/c\.sig=[^;]+/, 'c.sig=AAAAAAAAAAAAAAAAAAAAAAAAAAA');
      expect(forged).not.toBe(fromRemembered);
      expect(await remembered.get(forged)).toBe('none');
      expect(await remembered.get(forged)).toBe('none');
      expect(await remembered.get(fromPlain.replace('c=a1', 'c=a2'))).toBe('none');
      // a cookie signed with an older secret still counts while that secret is listed
      const fromOld = await old.set('c3');
      expect(await rotated.get(fromOld)).toBe('c3');
      expect(await remembered.get(fromOld)).toBe('none');
    } finally {
      await Promise.all([plain.close(), remembered.close(), rotated.close(), old.close()]);
    }
  });
});
