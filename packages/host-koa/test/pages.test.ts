import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listLanguages, type TaskView } from '@avatargen/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, SESSION_COOKIE } from '../src/app.js';
import { listen, type RunningServer } from '../src/host.js';
import { Client } from './support/client.js';
import { PASSWORD, SECRET, type Site, startSite, waitForStatus } from './support/harness.js';

const ADMIN = 'admin@example.com';
const MEMBER = 'member@example.com';
let site: Site;
let task: TaskView;

// Each client gets its own address (the host trusts X-Forwarded-For here), so the
// throttling tests do not share buckets with the others.
let nextIp = 1;
const client = (extra: Record<string, string> = {}) => new Client(site.url, { 'x-forwarded-for': `10.1.0.${nextIp++}`, ...extra });

async function loggedIn(email = ADMIN): Promise<Client> {
  const c = client();
  const reply = await c.login(email, PASSWORD);
  expect(reply.status).toBe(303);
  await c.get('/dashboard'); // the session's new CSRF token
  return c;
}

beforeAll(async () => {
  site = await startSite({ host: { trustProxy: true, throttle: { perIp: 8, perAccountIp: 3, windowMs: 60_000 } } });
  const admin = await site.gen.users.create({ email: ADMIN, password: PASSWORD, isAdmin: true });
  await site.gen.users.create({ email: MEMBER, password: PASSWORD });
  const submitted = await site.gen.tasks.submit(
    { description: 'Retired teachers in Porto', language: 'pt', count: 21, imagesPerPersona: 4 },
    { userId: admin.id },
  );
  task = await waitForStatus(site.gen, submitted.id, ['completed', 'failed']);
  expect(task.status).toBe('completed');
});
afterAll(() => site?.close());

const PAGES = ['/dashboard', '/generate', '/history', '/datasets', '/exports', '/settings'];

describe('anonymous visitors', () => {
  it('are sent to the login page, with the page they asked for', async () => {
    const c = client();
    expect((await c.get('/')).location).toBe('/login');
    for (const path of [...PAGES, `/datasets/${task.id}`]) {
      const reply = await c.get(path);
      expect(reply.status, path).toBe(302);
      expect(reply.location).toBe(`/login?next=${encodeURIComponent(path)}`);
    }
    const login = await c.get('/login?next=%2Fhistory');
    expect(login.status).toBe(200);
    expect(login.text).toContain('<input type="hidden" name="next" value="/history">');
    expect(login.text).toMatch(/<label for="email">Email<\/label>/);
    expect(login.text).toMatch(/<label for="password">Password<\/label>/);
  });

  it('get a 404 page for unknown paths, with no stack trace', async () => {
    const reply = await client().get('/no/such/page');
    expect(reply.status).toBe(404);
    expect(reply.text).toContain('Not found.');
    expect(reply.text).not.toMatch(/at \w+ \(|node_modules|\.ts:\d+/);
  });

  it('can read /healthz, which checks the database and the storage', async () => {
    const reply = await client().get('/healthz');
    expect(reply.status).toBe(200);
    expect(reply.json()).toEqual({ status: 'ok', database: true, storage: true });
  });

  it('get the static assets, and nothing outside them', async () => {
    const c = client();
    const css = await c.get('/static/app.css');
    expect(css.status).toBe(200);
    expect(css.headers.get('content-type')).toContain('text/css');
    const js = await c.get('/static/app.js');
    expect(js.headers.get('content-type')).toContain('text/javascript');
    expect(css.headers.get('cache-control')).toBe('public, max-age=3600');
    // pages link to versioned URLs, which may be cached for good; a stale version is revalidated
    const page = (await c.get('/login')).text;
    const links = [...page.matchAll(/(?:href|src)="(\/static\/[\w.-]+\?v=[\w-]+)"/g)].map((m) => m[1] as string);
    expect(links).toHaveLength(3);
    for (const link of links) expect((await c.get(link)).headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect((await c.get('/static/app.css?v=old')).headers.get('cache-control')).toBe('public, max-age=3600');
    expect((await c.get('/static/%2e%2e/package.json')).status).toBe(404);
    expect((await c.get('/static/../package.json')).status).toBe(404);
  });
});

describe('security headers and cookies', () => {
  it('sends a CSP without inline script, nosniff, frame-ancestors none and a referrer policy', async () => {
    const reply = await client().get('/login');
    const csp = reply.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    expect(reply.headers.get('x-content-type-options')).toBe('nosniff');
    expect(reply.headers.get('referrer-policy')).toBe('same-origin');
    expect(reply.headers.get('strict-transport-security')).toBeNull();
    expect(reply.headers.get('x-request-id')).toMatch(/^[\w-]{8,}$/);
  });

  it('no page has an inline script or an inline event handler', async () => {
    const c = await loggedIn();
    for (const path of [...PAGES, `/datasets/${task.id}`, '/login']) {
      const { text } = await c.get(path);
      expect(text, path).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
      expect(text, path).not.toMatch(/\son[a-z]+=/);
      expect(text, path).not.toMatch(/\sstyle=/);
    }
  });

  it('sets the session cookie HttpOnly, SameSite=Lax and signed; Secure only over TLS', async () => {
    const plain = await client().get('/login');
    const cookie = plain.setCookies.find((c) => c.name === SESSION_COOKIE);
    expect(cookie?.attributes.httponly).toBe(true);
    expect(cookie?.attributes.samesite).toBe('lax');
    expect(cookie?.attributes.secure).toBeUndefined();
    expect(plain.setCookies.some((c) => c.name === `${SESSION_COOKIE}.sig`)).toBe(true);

    const tls = await client({ 'x-forwarded-proto': 'https' }).get('/login');
    const secure = tls.setCookies.find((c) => c.name === SESSION_COOKIE);
    expect(secure?.attributes.secure).toBe(true);
    expect(tls.headers.get('strict-transport-security')).toContain('max-age=');
  });

  it('ignores X-Forwarded-Proto when the proxy is not trusted', async () => {
    const untrusting = createApp(site.gen, { secretKey: SECRET, trustProxy: false });
    const server: RunningServer = await listen(untrusting, { port: 0, hostname: '127.0.0.1' });
    try {
      const reply = await new Client(server.url, { 'x-forwarded-proto': 'https' }).get('/login');
      expect(reply.setCookies.find((c) => c.name === SESSION_COOKIE)?.attributes.secure).toBeUndefined();
      expect(reply.headers.get('strict-transport-security')).toBeNull();
    } finally {
      await server.close(1000);
    }
  });
});

describe('login and logout', () => {
  it('rotates the session id at login and destroys the old session', async () => {
    const c = client();
    await c.get('/login');
    const before = c.cookies.get(SESSION_COOKIE) as string;
    const beforeSig = c.cookies.get(`${SESSION_COOKIE}.sig`) as string;
    expect(await site.gen.sessions.get(before)).toMatchObject({ csrf: expect.any(String) });
    const reply = await c.post('/login', { email: ADMIN, password: PASSWORD, next: '/history' });
    expect(reply.status).toBe(303);
    expect(reply.location).toBe('/history');
    const after = c.cookies.get(SESSION_COOKIE) as string;
    expect(after).toBeTruthy();
    expect(after).not.toBe(before);
    expect(await site.gen.sessions.get(before)).toBeUndefined();
    expect(await site.gen.sessions.get(after)).toMatchObject({ userId: expect.any(Number) });
    expect((await c.get('/dashboard')).status).toBe(200);
    // the visitor's session lived an hour; the logged-in one lives the configured week
    const hoursLeft = async (id: string) => {
      const [row] = await site.gen.orm.em
        .fork()
        .execute('select extract(epoch from expires_at - now()) / 3600 as hours from sessions where id = ?', [id]);
      return Number(row?.hours);
    };
    expect(await hoursLeft(after)).toBeGreaterThan(7 * 24 - 1);
    const visitor = client();
    await visitor.get('/login');
    const visitorHours = await hoursLeft(visitor.cookies.get(SESSION_COOKIE) as string);
    expect(visitorHours).toBeGreaterThan(0.9);
    expect(visitorHours).toBeLessThan(1.1);
    // The pre-login cookie (what a fixation attacker would hold) is worth nothing.
    const attacker = client();
    attacker.cookies.set(SESSION_COOKIE, before);
    attacker.cookies.set(`${SESSION_COOKIE}.sig`, beforeSig);
    expect((await attacker.get('/dashboard')).status).toBe(302);
  });

  it('only follows a next path on this site', async () => {
    for (const next of ['https://evil.example/', '//evil.example/x', '/\\evil.example']) {
      const c = client();
      await c.get('/login');
      const reply = await c.post('/login', { email: ADMIN, password: PASSWORD, next });
      expect(reply.location, next).toBe('/dashboard');
    }
  });

  it('refuses a wrong password, an empty form and a password over 72 bytes with a message', async () => {
    const c = client();
    await c.get('/login');
    const wrong = await c.post('/login', { email: ADMIN, password: 'not the password' });
    expect(wrong.status).toBe(401);
    expect(wrong.text).toContain('The email or the password is wrong.');
    expect(wrong.text).toContain(`value="${ADMIN}"`);
    const empty = await c.post('/login', { email: '', password: '' });
    expect(empty.status).toBe(422);
    expect(empty.text).toContain('Enter your email and password.');
    const long = await c.post('/login', { email: ADMIN, password: 'é'.repeat(40) });
    expect(long.status).toBe(422);
    expect(long.text).toContain('Passwords are at most 72 bytes long.');
    const unknown = await c.post('/login', { email: 'nobody@example.com', password: PASSWORD });
    expect(unknown.text).toContain('The email or the password is wrong.');
  });

  it('logout needs the CSRF token and destroys the server-side session', async () => {
    const c = await loggedIn();
    const sid = c.cookies.get(SESSION_COOKIE) as string;
    const sig = c.cookies.get(`${SESSION_COOKIE}.sig`) as string;
    expect((await c.post('/logout', {}, { csrf: false })).status).toBe(403);
    expect(await site.gen.sessions.get(sid)).toBeDefined();
    const out = await c.post('/logout');
    expect(out.status).toBe(303);
    expect(out.location).toBe('/login');
    expect(await site.gen.sessions.get(sid)).toBeUndefined();
    expect(c.cookies.has(SESSION_COOKIE)).toBe(false);
    const replay = client();
    replay.cookies.set(SESSION_COOKIE, sid);
    replay.cookies.set(`${SESSION_COOKIE}.sig`, sig);
    expect((await replay.get('/dashboard')).status).toBe(302);
  });

  it('a disabled account loses its session (within the auth cache time, 1 s by default)', async () => {
    await site.gen.users.create({ email: 'leaver@example.com', password: PASSWORD });
    const c = await loggedIn('leaver@example.com');
    expect((await c.get('/dashboard')).status).toBe(200);
    // Disabled elsewhere (the CLI, another process): this process notices once its short memory expires.
    await site.gen.users.setActive('leaver@example.com', false);
    await expect.poll(async () => (await c.get('/dashboard')).status, { timeout: 5000, interval: 50 }).toBe(302);
    expect((await client().login('leaver@example.com', PASSWORD)).status).toBe(401);
  });
});

describe('login throttling', () => {
  it('locks an account out only from the address that guessed, never from its owner', async () => {
    const account = 'throttled@example.com';
    await site.gen.users.create({ email: account, password: PASSWORD });
    const attacker = client();
    await attacker.get('/login');
    for (let i = 0; i < 3; i++) expect((await attacker.post('/login', { email: account, password: `guess ${i} guess` })).status).toBe(401);
    const blocked = await attacker.post('/login', { email: account, password: PASSWORD });
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(blocked.text).toMatch(/Too many failed attempts\. Try again in \d+ minute/);
    // The owner, from their own address, logs in as usual.
    const owner = client();
    expect((await owner.login(account, PASSWORD)).status).toBe(303);
    // The attacker's address may still log in to other accounts (the pair is blocked, not the IP yet).
    const other = await attacker.post('/login', { email: MEMBER, password: PASSWORD });
    expect(other.status).toBe(303);
  });

  it('lets no more guesses through than the limit when they arrive all at once', async () => {
    const account = 'burst@example.com';
    await site.gen.users.create({ email: account, password: PASSWORD });
    const attacker = client();
    await attacker.get('/login');
    const replies = await Promise.all(
      Array.from({ length: 12 }, (_, i) => attacker.post('/login', { email: account, password: `burst guess ${i}` })),
    );
    const statuses = replies.map((r) => r.status).sort();
    // perAccountIp is 3: three passwords are checked, every other attempt is refused unchecked
    expect(statuses).toEqual([...Array(3).fill(401), ...Array(9).fill(429)]);
    expect((await attacker.post('/login', { email: account, password: PASSWORD })).status).toBe(429);
    expect((await client().login(account, PASSWORD)).status).toBe(303);
  });

  it('refuses an email with control characters or of absurd length before counting or checking it', async () => {
    const visitor = client();
    await visitor.get('/login');
    for (const email of ['a\nb@example.com', `${'x'.repeat(300)}@example.com`]) {
      const reply = await visitor.post('/login', { email, password: PASSWORD });
      expect(reply.status).toBe(422);
      expect(reply.text).toContain('That is not an email address.');
    }
    // a NUL (or any control character other than a line break) is refused for every route, before the route runs
    const nul = await visitor.post('/login', { email: 'member@example.com\u0000', password: PASSWORD });
    expect(nul.status).toBe(400);
    expect(nul.text).toContain('Remove control characters');
  });

  it('blocks an address that guesses across many accounts', async () => {
    const sprayer = client();
    await sprayer.get('/login');
    for (let i = 0; i < 8; i++) {
      expect((await sprayer.post('/login', { email: `user${i}@example.com`, password: 'wrong password!' })).status).toBe(401);
    }
    expect((await sprayer.post('/login', { email: ADMIN, password: PASSWORD })).status).toBe(429);
    expect((await client().login(ADMIN, PASSWORD)).status).toBe(303);
  });

  it('sweeps ended sessions and login counters out of the database, and keeps live ones', async () => {
    const live = client();
    await live.login(MEMBER, PASSWORD);
    await site.gen.sessions.set('ended-session', { userId: null }, -1000);
    await site.gen.loginAttempts.count(['ip:192.0.2.1'], Date.now() - 3_600_000, 60_000);
    await site.gen.loginAttempts.count(['ip:192.0.2.2'], Date.now(), 60_000);
    const deleted = await site.host.sweepExpired();
    expect(deleted.sessions).toBeGreaterThanOrEqual(1);
    expect(deleted.loginAttempts).toBeGreaterThanOrEqual(1);
    const em = site.gen.orm.em.fork();
    expect(await em.execute(`select count(*)::int as n from sessions where id = 'ended-session'`)).toEqual([{ n: 0 }]);
    expect(await em.execute(`select key from login_attempts where key like 'ip:192.0.2.%'`)).toEqual([{ key: 'ip:192.0.2.2' }]);
    expect((await live.get('/dashboard')).status).toBe(200);
  });

  it('forgets the failures of an account and address after a success', async () => {
    const c = client();
    await c.get('/login');
    for (let i = 0; i < 2; i++) await c.post('/login', { email: MEMBER, password: 'wrong password!' });
    expect((await c.post('/login', { email: MEMBER, password: PASSWORD })).status).toBe(303);
    await c.post('/logout');
    await c.get('/login');
    for (let i = 0; i < 2; i++) expect((await c.post('/login', { email: MEMBER, password: 'wrong password!' })).status).toBe(401);
    expect((await c.post('/login', { email: MEMBER, password: PASSWORD })).status).toBe(303);
  });
});

describe('CSRF', () => {
  it('refuses every state change without the session token, exports included', async () => {
    const c = await loggedIn();
    const other = await loggedIn(MEMBER); // a valid token, but of another session
    const posts: Array<[string, Record<string, string>]> = [
      ['/generate', { description: 'x', language: 'en', count: '10', imagesPerPersona: '4' }],
      ['/settings', { max_concurrent_tasks: '3' }],
      ['/settings/tokens', { name: 'ci' }],
      [`/datasets/${task.id}/export`, { format: 'zip' }],
      [`/datasets/${task.id}/export`, { format: 'csv' }],
      [`/datasets/${task.id}/cancel`, {}],
      [`/datasets/${task.id}/retry`, {}],
      [`/datasets/${task.id}/delete`, {}],
      ['/logout', {}],
    ];
    for (const [path, form] of posts) {
      const missing = await c.post(path, form, { csrf: false });
      expect(missing.status, path).toBe(403);
      expect(missing.text).toContain('This form has expired or did not come from this site.');
      expect(missing.headers.get('content-disposition'), path).toBeNull();
      const foreign = await c.post(path, { ...form, _csrf: other.csrf }, { csrf: false });
      expect(foreign.status, path).toBe(403);
    }
    const api = await c.request('POST', '/api/v1/tasks', {
      json: { description: 'x', language: 'en', count: 10, imagesPerPersona: 4 },
      csrf: false,
    });
    expect(api.status).toBe(403);
    expect(api.json()).toMatchObject({ error: expect.stringContaining('expired') });
    expect((await site.gen.tasks.list({})).total).toBe(1);
    expect((await c.get('/dashboard')).status).toBe(200); // still logged in: nothing happened
  });

  it('refuses a login form posted without the token (login CSRF)', async () => {
    const c = client();
    const reply = await c.post('/login', { email: ADMIN, password: PASSWORD }, { csrf: false });
    expect(reply.status).toBe(403);
  });
});

describe('pages', () => {
  it('dashboard shows totals, the 7-day chart and recent tasks', async () => {
    const c = await loggedIn();
    const { status, text } = await c.get('/dashboard');
    expect(status).toBe(200);
    expect(text).toContain('<span class="big mono" id="total-tasks">1</span>');
    expect(text).toContain('<span class="big mono" id="total-personas">21</span>');
    expect(text).toContain('<span class="big mono" id="total-images">84</span>');
    expect(text).toMatch(/<svg class="chart"[^>]*role="img"/);
    expect(text.match(/class="bar-images"/g)).toHaveLength(7);
    expect(text).toContain(`href="/datasets/${task.id}"`);
    // The member has no tasks of their own.
    const member = await loggedIn(MEMBER);
    expect((await member.get('/dashboard')).text).toContain('<span class="big mono" id="total-tasks">0</span>');
  });

  it('dashboard shows the estimated cost per day of the last 7 days at the settings prices', async () => {
    const c = await loggedIn();
    expect((await c.get('/dashboard')).text).toContain('No prices set');
    const [db] = (await site.gen.orm.em.fork().execute(
      `select to_char((t.created_at at time zone 'utc')::date, 'YYYY-MM-DD') as date, sum(u.images)::int as images
       from task_usage u join generation_tasks t on t.id = u.task_id where t.id = ? group by 1`,
      [task.id],
    )) as Array<{ date: string; images: number }>;
    if (!db) throw new Error('no usage recorded');
    await site.gen.settings.update({ prices: 'local dicebear image 0.5', currency: 'EUR' });
    try {
      let text = (await c.get('/dashboard')).text;
      expect(text).toContain('Estimated cost per day (EUR)');
      expect(text.match(/<td class="mono" data-date=/g)).toHaveLength(7);
      expect(text).toContain(`<td class="mono" data-date="${db.date}">${(db.images * 0.5).toFixed(2)}</td>`);
      // usage of a model without a price makes that day's figure incomplete
      await site.gen.orm.em
        .fork()
        .execute(`insert into task_usage (task_id, provider, model, calls, input_tokens) values (?, 'openai', 'gpt-4.1-mini', 1, 1000)`, [
          task.id,
        ]);
      text = (await c.get('/dashboard')).text;
      expect(text).toContain(`<td class="mono" data-date="${db.date}">${(db.images * 0.5).toFixed(2)} (incomplete)</td>`);
      const stats = JSON.parse((await c.get('/api/v1/stats')).text);
      expect(stats.costs.currency).toBe('EUR');
      expect(stats.costs.days.find((d: { date: string }) => d.date === db.date)).toEqual({
        date: db.date,
        amount: db.images * 0.5,
        complete: false,
      });
      // a member sees the cost of their own tasks only: none
      const member = await loggedIn(MEMBER);
      expect((await member.get('/dashboard')).text).toContain(`<td class="mono" data-date="${db.date}">0.00</td>`);
    } finally {
      await site.gen.orm.em.fork().execute(`delete from task_usage where task_id = ? and provider = 'openai'`, [task.id]);
      await site.gen.settings.update({ prices: [], currency: 'USD' });
    }
  });

  it('generate: every field labelled, a searchable language list, errors beside the fields', async () => {
    const c = await loggedIn();
    const form = await c.get('/generate');
    for (const id of ['description', 'language', 'count', 'imagesPerPersona']) expect(form.text).toContain(`<label for="${id}">`);
    expect(form.text).toContain('<datalist id="language-list">');
    expect(form.text.match(/<option value="[^"]+">[^<]+<\/option>/g)?.length).toBeGreaterThanOrEqual(listLanguages().length);
    const bad = await c.post('/generate', { description: '   ', language: 'xx-nope', count: '5', imagesPerPersona: '5' });
    expect(bad.status).toBe(422);
    expect(bad.text).toContain('<p class="error" id="description-error">Describe the people to generate.</p>');
    expect(bad.text).toContain('<p class="error" id="language-error">Choose a bio language from the list.</p>');
    expect(bad.text).toContain('<p class="error" id="count-error">Generate at least 10 personas.</p>');
    expect(bad.text).toContain('<p class="error" id="imagesPerPersona-error">Images per persona must be one of 4, 8, 12, 16, 20.</p>');
    expect(bad.text).toContain('value="xx-nope"');
    const tooMany = await c.post('/generate', { description: 'Nurses', language: 'en', count: '301', imagesPerPersona: '4' });
    expect(tooMany.text).toContain('Generate at most 300 personas.');
    expect(tooMany.text).toContain('>Nurses</textarea>');
  });

  it('generate: the task’s own image output options, the site’s shown, errors beside the fields, the snapshot records them', async () => {
    const c = await loggedIn();
    const form = await c.get('/generate');
    for (const id of ['output_quality', 'output_size', 'output_format', 'output_compression', 'output_background']) {
      expect(form.text).toContain(`<label for="${id}">`);
    }
    expect(form.text).toContain('<option value="">Site setting (auto)</option>');
    const base = { description: 'Glassblowers in Murano', language: 'it', count: '10', imagesPerPersona: '4' };
    const bad = await c.post('/generate', {
      ...base,
      output_quality: 'ultra',
      output_format: 'jpeg',
      output_background: 'transparent',
      output_compression: '150',
    });
    expect(bad.status).toBe(422);
    expect(bad.text).toContain('<p class="error" id="output_quality-error">Choose one of auto, low, medium, high.</p>');
    expect(bad.text).toContain('<p class="error" id="output_compression-error">Enter a whole number from 0 to 100.</p>');
    expect(bad.text).toContain('<details class="field" open>');
    const transparent = await c.post('/generate', { ...base, output_format: 'jpeg', output_background: 'transparent' });
    expect(transparent.text).toContain(
      '<p class="error" id="output_background-error">A transparent background needs the png or webp output format.</p>',
    );
    const good = await c.post('/generate', {
      ...base,
      output_quality: 'high',
      output_format: 'webp',
      output_compression: '80',
      output_size: '',
      output_background: '',
    });
    expect(good.status).toBe(303);
    const id = /\/datasets\/(\w+)/.exec(good.location ?? '')?.[1] as string;
    expect((await site.gen.tasks.get(id)).settings).toMatchObject({
      image_quality: 'high',
      image_output_format: 'webp',
      image_output_compression: 80,
      image_size: 'auto',
      image_background: 'auto',
    });
  });

  it('history, datasets and exports list the user’s tasks, with a status filter', async () => {
    const c = await loggedIn();
    for (const path of ['/history', '/datasets', '/exports']) {
      const { status, text } = await c.get(path);
      expect(status, path).toBe(200);
      expect(text, path).toContain(task.id);
    }
    expect((await c.get('/history?status=failed')).text).not.toContain(`/datasets/${task.id}"`);
    expect((await c.get('/history?status=completed')).text).toContain(`/datasets/${task.id}"`);
    expect((await c.get('/history?status=bogus')).status).toBe(422);
    const exports = await c.get('/exports');
    expect(exports.text).toContain(`action="/datasets/${task.id}/export"`);
    expect(exports.text).toMatch(/name="format" value="zip"/);
  });

  it('dataset detail: facts, progress, demographics, 20 personas a page with bios and a gallery', async () => {
    const c = await loggedIn();
    const { status, text } = await c.get(`/datasets/${task.id}`);
    expect(status).toBe(200);
    expect(text).toContain('Retired teachers in Porto');
    expect(text).toContain('<progress id="task-progress" max="100" value="100"');
    expect(text).toContain(`data-events="/datasets/${task.id}/events"`);
    const demographics = await site.gen.personas.demographics(task.id);
    expect(text).toContain(`<b id="age-min">${demographics.age.min}</b>`);
    expect(text).toContain(`<b id="age-max">${demographics.age.max}</b>`);
    expect(text.match(/<meter /g)).toHaveLength(demographics.ethnicity.length);
    expect(text.match(/<article class="panel persona"/g)).toHaveLength(20);
    expect(text.match(/<dt>Instagram<\/dt>/g)).toHaveLength(20);
    // base selfie + 4 images per persona, thumbnails served by the host, full size from /media
    expect(text.match(/<img src="\/thumbs\/tasks\//g)).toHaveLength(20 * 5);
    expect(text.match(/data-full="\/media\/tasks\//g)).toHaveLength(20 * 5);
    expect(text).toContain('rel="next"');
    const second = await c.get(`/datasets/${task.id}?page=2`);
    expect(second.text.match(/<article class="panel persona"/g)).toHaveLength(1);
    expect(second.text).toContain('rel="prev"');
    expect(text).toContain(`action="/datasets/${task.id}/delete"`);
    expect(text).not.toContain(`action="/datasets/${task.id}/cancel"`); // completed: nothing to cancel
    expect((await c.get(`/datasets/${task.id}?page=zero`)).status).toBe(422);
    expect((await c.get('/datasets/nosuchtask')).status).toBe(404);
  });

  it('dataset detail shows the tokens a text model reported, in all and per model', async () => {
    const c = await loggedIn();
    // provider-local reports its images (model dicebear) and no tokens; set aside here for the token figures
    const [local] = (await site.gen.orm.em
      .fork()
      .execute(`select calls, images from task_usage where task_id = ? and provider = 'local' and model = 'dicebear'`, [
        task.id,
      ])) as Array<{
      calls: number;
      images: number;
    }>;
    if (!local) throw new Error('provider-local reported no images');
    expect((await c.get(`/datasets/${task.id}`)).text).toContain(`local/dicebear: 0 in · 0 out · ${local.calls} calls`);
    await site.gen.orm.em.fork().execute('delete from task_usage where task_id = ?', [task.id]);
    await site.gen.orm.em
      .fork()
      .execute(
        `insert into task_usage (task_id, provider, model, calls, input_tokens, output_tokens) values (?, 'openai-chat', 'gpt-4.1-mini', 3, 12345, 678), (?, 'flowise', 'persona-flow', 1, 10, 5)`,
        [task.id, task.id],
      );
    // Usage is written while the task runs, before the change that ends it; here it comes after,
    // so tell the host's dataset cache as the task's notification would.
    site.gen.pipeline.events.emit('task', task.id);
    const { text } = await c.get(`/datasets/${task.id}`);
    expect(text).toContain('<dd class="mono small" id="task-usage">12,355 in · 683 out · 4 calls');
    expect(text).toContain('openai-chat/gpt-4.1-mini: 12,345 in · 678 out · 3 calls');
    expect(text).toContain('flowise/persona-flow: 10 in · 5 out · 1 calls');
    const api = await c.get(`/api/v1/tasks/${task.id}`);
    expect(JSON.parse(api.text).usage).toMatchObject({ calls: 4, inputTokens: 12355, outputTokens: 683 });
    await site.gen.orm.em.fork().execute('delete from task_usage where task_id = ?', [task.id]);
    await site.gen.orm.em
      .fork()
      .execute(`insert into task_usage (task_id, provider, model, calls, images) values (?, 'local', 'dicebear', ?, ?)`, [
        task.id,
        local.calls,
        local.images,
      ]);
    site.gen.pipeline.events.emit('task', task.id);
  });

  it('dataset detail shows the dataset card, its figures those of the database', async () => {
    const c = await loggedIn();
    const [db] = (await site.gen.orm.em.fork().execute(
      `select (select count(*)::int from personas where task_id = ?) as personas,
              (select count(*)::int from persona_images where task_id = ?) as images,
              (select coalesce(sum(rejected), 0)::int from persona_batches where task_id = ?) as rejected,
              (select count(*) filter (where age >= 25 and age < 35)::int from personas where task_id = ?) as age25`,
      [task.id, task.id, task.id, task.id],
    )) as Array<{ personas: number; images: number; rejected: number; age25: number }>;
    if (!db) throw new Error('no row');
    const { text } = await c.get(`/datasets/${task.id}`);
    expect(text).toContain(`<dd class="mono" id="card-personas">${db.personas}</dd>`);
    expect(text).toContain(`<dd class="mono" id="card-images">${db.images}</dd>`);
    expect(text).toContain(`<dd class="mono" id="card-rejected">${db.rejected}</dd>`);
    expect(text).toContain('<dd class="mono" id="card-retries">0</dd>');
    expect(text).toContain('<dd class="mono" id="card-blocks">0</dd>');
    if (db.age25 > 0) expect(text).toMatch(new RegExp(`id="card-ages">[^<]*25-34: ${db.age25}`));
    expect(text).toContain('<dt>imageProvider</dt><dd class="mono small">@avatargen/provider-local</dd>');
    expect(text).toContain('<dd class="mono small">local/dicebear</dd>');
    expect(text).toContain('Every person in this dataset is fictional');
  });

  it('dataset detail and the API show the usage counts and the estimated cost at the settings prices', async () => {
    const c = await loggedIn();
    const [db] = (await site.gen.orm.em.fork().execute(
      `select (select images_requested from task_counters where task_id = ?) as requested,
              (select images_made from task_counters where task_id = ?) as made,
              (select images from task_usage where task_id = ? and provider = 'local') as reported,
              (select count(*)::int from persona_images where task_id = ?) + (select count(*)::int from personas where task_id = ? and base_image_key is not null) as stored,
              (select coalesce(sum(rejected), 0)::int from persona_batches where task_id = ?) as rejected`,
      [task.id, task.id, task.id, task.id, task.id, task.id],
    )) as Array<{ requested: number; made: number; reported: number; stored: number; rejected: number }>;
    if (!db) throw new Error('no row');
    // nothing failed here: every image asked for was made, reported and stored
    const { rejected, ...images } = db;
    expect(images).toEqual({ requested: db.stored, made: db.stored, reported: db.stored, stored: db.stored });
    let text = (await c.get(`/datasets/${task.id}`)).text;
    // (offline personas can repeat a first name, age and city: such a persona is refused and asked for again)
    expect(text).toContain(
      `images ${db.made} made of ${db.requested} requested · 0 retries · 0 moderation blocks · ${rejected} rejected personas`,
    );
    expect(text).toContain('<dd class="mono small" id="task-cost">no prices set</dd>');
    await site.gen.settings.update({ prices: 'local dicebear image 0.5', currency: 'EUR' });
    try {
      site.gen.pipeline.events.emit('task', task.id);
      text = (await c.get(`/datasets/${task.id}`)).text;
      expect(text).toContain(`<dd class="mono small" id="task-cost">EUR ${(db.made * 0.5).toFixed(2)}</dd>`);
      const api = JSON.parse((await c.get(`/api/v1/tasks/${task.id}`)).text);
      expect(api.cost).toEqual({ currency: 'EUR', amount: db.made * 0.5, complete: true });
      expect(api.usage).toMatchObject({
        imagesRequested: db.requested,
        imagesMade: db.made,
        retries: 0,
        moderationBlocks: 0,
        rejectedPersonas: rejected,
      });
      expect(api.plugins).toMatchObject({ personaProvider: '@avatargen/provider-local', imageProvider: '@avatargen/provider-local' });
    } finally {
      await site.gen.settings.update({ prices: [], currency: 'USD' });
    }
  });

  it('serves thumbnails (WebP, cached in storage) and full-size images with immutable caching', async () => {
    const c = await loggedIn();
    const persona = (await site.gen.personas.list(task.id, { perPage: 1 })).personas[0];
    const image = persona?.images[0];
    if (!image) throw new Error('no image');
    const full = await fetch(new URL(image.url, site.url), { headers: { cookie: [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ') } });
    expect(full.status).toBe(200);
    expect(full.headers.get('content-type')).toBe(image.contentType);
    expect(full.headers.get('cache-control')).toContain('immutable');
    const thumb = await c.get(`/thumbs/${image.key}`);
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get('content-type')).toBe('image/webp');
    const cached = [];
    for await (const object of site.gen.port('objectStorage').list(`tasks/${task.id}/thumbs/`)) cached.push(object.key);
    expect(cached).toContain(`tasks/${task.id}/thumbs/w240/${image.key.split('/').slice(2).join('/')}.webp`);
    expect((await c.get(`/thumbs/${cached[0]}`)).status).toBe(404); // no thumbnails of thumbnails
    expect((await c.get('/media/tasks/../secret-key')).status).toBe(404);
    // keys no object can have, under the user's own task: refused by the storage, a plain 404
    const folder = image.key.split('/').slice(0, 2).join('/');
    for (const bad of [`${folder}/./x.png`, `${folder}//x.png`, `${folder}/1/%00.png`, `${folder}/1/%01.png`]) {
      for (const route of ['/media/', '/thumbs/']) {
        const reply = await c.get(`${route}${bad}`);
        expect(reply.status, `${route}${bad}`).toBe(404);
        expect(reply.text).not.toContain('invalid key');
      }
    }
    const missing = await c.get(`/media/${folder}/no-such-image.png`);
    expect(missing.status).toBe(404);
    expect(missing.text).not.toContain('no such object'); // the storage's wording and key stay in the log
  });

  it('an internal error shows a short page with the request id and no stack trace', async () => {
    const c = await loggedIn();
    const persona = (await site.gen.personas.list(task.id, { page: 2, perPage: 20 })).personas[0];
    const image = persona?.images[1];
    if (!image) throw new Error('no image');
    writeFileSync(join(site.dataDir, 'storage', image.key), 'this is not an image at all');
    const reply = await c.get(`/thumbs/${image.key}`);
    expect(reply.status).toBe(500);
    expect(reply.text).toContain('Something went wrong on our side.');
    expect(reply.text).toContain(`request id ${reply.headers.get('x-request-id')}`);
    expect(reply.text).not.toMatch(/at \w+ \(|node_modules|\.ts:\d+|InvalidImageError/);
  });
});

describe('settings', () => {
  it('shows which plugin fills each port; variables only to administrators', async () => {
    const page = await (await loggedIn()).get('/settings');
    const rows = [...page.text.matchAll(/<td class="mono">(\w+)<\/td>\s*<td class="mono">([^<]+)<\/td>/g)].map((m) => [m[1], m[2]]);
    expect(rows).toEqual([
      ['personaProvider', '@avatargen/provider-local'],
      ['imagePromptProvider', '@avatargen/provider-local'],
      ['imageProvider', '@avatargen/provider-local'],
      ['imageProcessor', '@avatargen/image-opencv'],
      ['objectStorage', '@avatargen/storage-filesystem'],
      ['faceSource', 'none'],
    ]);
    const member = await (await loggedIn(MEMBER)).get('/settings');
    expect(member.text).toContain('<td class="mono">imageProvider</td>');
    expect(member.text).not.toContain('plugin-variables');
  });

  it('validates, saves, and treats an unticked box as off', async () => {
    const c = await loggedIn();
    const page = await c.get('/settings');
    expect(page.text).toContain('<button type="reset" class="ghost">Reset to saved</button>');
    for (const id of [
      'bio_prompt_facebook',
      'bio_prompt_instagram',
      'bio_prompt_x',
      'bio_prompt_tiktok',
      'crop_white_borders',
      'max_concurrent_tasks',
    ]) {
      expect(page.text).toContain(`<label for="${id}">`);
    }
    const current = await site.gen.settings.get();
    const form = {
      bio_prompt_facebook: current.bio_prompt_facebook,
      bio_prompt_instagram: '',
      bio_prompt_x: current.bio_prompt_x,
      bio_prompt_tiktok: current.bio_prompt_tiktok,
      crop_white_borders: 'on',
      max_concurrent_tasks: '0',
    };
    const bad = await c.post('/settings', form);
    expect(bad.status).toBe(422);
    expect(bad.text).toContain('Enter instructions for this platform.');
    expect(bad.text).toContain('At least 1 task must be able to run.');
    expect(await site.gen.settings.get()).toEqual(current);
    const good = await c.post('/settings', { ...form, bio_prompt_instagram: 'Short and sunny.', max_concurrent_tasks: '3' });
    expect(good.status).toBe(303);
    expect(good.location).toBe('/settings?saved=1');
    const saved = await site.gen.settings.get();
    expect(saved).toMatchObject({
      bio_prompt_instagram: 'Short and sunny.',
      max_concurrent_tasks: 3,
      crop_white_borders: true,
      randomize_image_style: false,
    });
    expect((await c.get('/settings?saved=1')).text).toContain('Settings saved.');
  });

  it('shows the fleet-wide provider limits and the target retries, saves them from the text form, and keeps them', async () => {
    const c = await loggedIn();
    const page = await c.get('/settings');
    expect(page.text).toContain('<label for="provider_limits">');
    expect(page.text).toContain('<label for="target_retries">');
    // What the page shows is what it posts back: a form saved as it is changes nothing.
    const form = (text: string) =>
      Object.fromEntries([...text.matchAll(/<(?:input|textarea)[^>]* name="([a-z_]+)"[^>]*>/g)].map((m) => [m[1], '']));
    expect(Object.keys(form(page.text))).toEqual(expect.arrayContaining(['provider_limits', 'target_retries']));
    const current = await site.gen.settings.get();
    const base = {
      bio_prompt_facebook: current.bio_prompt_facebook,
      bio_prompt_instagram: current.bio_prompt_instagram,
      bio_prompt_x: current.bio_prompt_x,
      bio_prompt_tiktok: current.bio_prompt_tiktok,
      max_concurrent_tasks: String(current.max_concurrent_tasks),
      image_output_compression: String(current.image_output_compression),
      currency: current.currency,
    };
    const bad = await c.post('/settings', { ...base, target_retries: '3', provider_limits: 'openai gpt-image-1\nflowise in_flight=0' });
    expect(bad.status).toBe(422);
    expect(bad.text).toContain('Enter 0, 1 or 2.');
    expect(bad.text).toMatch(/Give a limit|at least 1/);
    const good = await c.post('/settings', {
      ...base,
      target_retries: '1',
      provider_limits: 'openai gpt-image-1 images_per_minute=120 in_flight=8\n# a comment\nflowise in_flight=4',
    });
    expect(good.status).toBe(303);
    const saved = await site.gen.settings.get();
    expect(saved.target_retries).toBe(1);
    expect(saved.provider_limits).toEqual([
      { provider: 'openai', model: 'gpt-image-1', images_per_minute: 120, in_flight: 8 },
      { provider: 'flowise', in_flight: 4 },
    ]);
    const shown = (await c.get('/settings')).text;
    expect(shown).toContain('openai gpt-image-1 images_per_minute=120 in_flight=8\nflowise in_flight=4</textarea>');
    // Saving the page again with what it shows keeps the limits.
    expect(
      (
        await c.post('/settings', {
          ...base,
          target_retries: '1',
          provider_limits: 'openai gpt-image-1 images_per_minute=120 in_flight=8\nflowise in_flight=4',
        })
      ).status,
    ).toBe(303);
    expect((await site.gen.settings.get()).provider_limits).toEqual(saved.provider_limits);
    await site.gen.settings.update({ provider_limits: [], target_retries: 2 });
  });

  it('lists the image output defaults and saves them, refusing a transparent jpeg on its field', async () => {
    const c = await loggedIn();
    const page = await c.get('/settings');
    for (const id of ['image_quality', 'image_size', 'image_output_format', 'image_output_compression', 'image_background']) {
      expect(page.text).toContain(`<label for="${id}">`);
    }
    const current = await site.gen.settings.get();
    const form = {
      ...current,
      crop_white_borders: 'on',
      image_output_format: 'jpeg',
      image_background: 'transparent',
      image_output_compression: '60',
    } as Record<string, unknown>;
    const bad = await c.post('/settings', form as Record<string, string>);
    expect(bad.status).toBe(422);
    expect(bad.text).toContain(
      '<p class="error" id="image_background-error">A transparent background needs the png or webp output format.</p>',
    );
    const good = await c.post('/settings', { ...form, image_background: 'opaque', image_quality: 'medium' } as Record<string, string>);
    expect(good.status).toBe(303);
    expect(await site.gen.settings.get()).toMatchObject({
      image_output_format: 'jpeg',
      image_background: 'opaque',
      image_output_compression: 60,
      image_quality: 'medium',
    });
    expect((await c.get('/settings')).text).toContain('<option value="jpeg" selected>jpeg</option>');
    await site.gen.settings.update({
      image_output_format: 'png',
      image_background: 'auto',
      image_quality: 'auto',
      image_output_compression: 100,
    });
  });

  it('saves the price table and currency, naming the wrong line and field', async () => {
    const c = await loggedIn();
    expect((await c.get('/settings')).text).toContain('<label for="prices">Price table</label>');
    const current = await site.gen.settings.get();
    const form = {
      ...current,
      crop_white_borders: 'on',
      prices: 'openai gpt-image-1 image 0.04\nopenai gpt-image-1 0.04',
      currency: 'euro',
    } as Record<string, unknown>;
    const bad = await c.post('/settings', form as Record<string, string>);
    expect(bad.status).toBe(422);
    expect(bad.text).toContain('<p class="error" id="prices-error">Line 2: write &quot;provider model unit price&quot;');
    expect(bad.text).toContain('<p class="error" id="currency-error">Enter a three-letter currency code such as USD or EUR.</p>');
    expect((await site.gen.settings.get()).prices).toEqual([]);
    const good = await c.post('/settings', {
      ...form,
      prices: 'openai gpt-image-1 image 0.04\nopenai gpt-4.1-mini input_token 0.4',
      currency: 'eur',
    } as Record<string, string>);
    expect(good.status).toBe(303);
    expect(await site.gen.settings.get()).toMatchObject({
      currency: 'EUR',
      prices: [
        { provider: 'openai', model: 'gpt-image-1', unit: 'image', price: 0.04 },
        { provider: 'openai', model: 'gpt-4.1-mini', unit: 'input_token', price: 0.4 },
      ],
    });
    expect((await c.get('/settings')).text).toContain('>openai gpt-image-1 image 0.04\nopenai gpt-4.1-mini input_token 0.4</textarea>');
    await site.gen.settings.update({ prices: [], currency: 'USD' });
  });

  it('only administrators change settings', async () => {
    const member = await loggedIn(MEMBER);
    const page = await member.get('/settings');
    expect(page.text).toContain('<fieldset disabled>');
    const reply = await member.post('/settings', { max_concurrent_tasks: '9' });
    expect(reply.status).toBe(403);
    expect((await site.gen.settings.get()).max_concurrent_tasks).not.toBe(9);
  });

  it('API tokens are shown once, listed, and revoked', async () => {
    const c = await loggedIn(MEMBER);
    const empty = await c.post('/settings/tokens', { name: ' ' });
    expect(empty.status).toBe(422);
    expect(empty.text).toContain('Name the token (1-100 characters).');
    const created = await c.post('/settings/tokens', { name: 'laptop' });
    expect(created.status).toBe(201);
    const token = /id="new-token" readonly value="(agt_[^"]+)"/.exec(created.text)?.[1] as string;
    expect(token).toBeTruthy();
    const listing = await c.get('/settings');
    expect(listing.text).toContain('laptop');
    expect(listing.text).not.toContain(token);
    const api = new Client(site.url, { authorization: `Bearer ${token}` });
    expect((await api.get('/api/v1/stats')).status).toBe(200);
    const tokenId = /action="\/settings\/tokens\/(\d+)\/revoke"/.exec(listing.text)?.[1] as string;
    // Someone else's token id is not found.
    const admin = await loggedIn();
    expect((await admin.post(`/settings/tokens/${tokenId}/revoke`)).status).toBe(404);
    expect((await api.get('/api/v1/stats')).status).toBe(200);
    expect((await c.post(`/settings/tokens/${tokenId}/revoke`)).status).toBe(303);
    expect((await api.get('/api/v1/stats')).status).toBe(401);
    expect((await c.get('/settings')).text).toContain('revoked');
  });
});
