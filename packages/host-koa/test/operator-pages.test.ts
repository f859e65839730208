import { statusLabel, type TaskView } from '@avatargen/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from './support/client.js';
import { collectEvents } from './support/sse.js';
import { PASSWORD, type Site, startSite, waitForStatus } from './support/harness.js';

/**
 * What an operator trips on (issue 21, items 5-9): languages by name, the live dataset page's
 * fragments, the persona page, cancel with a confirm step, flash messages, human status words,
 * filters that say they match nothing, and changing one's own password.
 */
const OWNER = 'owner@example.com';
const OTHER = 'other@example.com';
let site: Site;
let done: TaskView;
let ownerId: number;

let nextIp = 1;
const client = () => new Client(site.url, { 'x-forwarded-for': `10.2.0.${nextIp++}` });
async function loggedIn(email = OWNER, password = PASSWORD): Promise<Client> {
  const c = client();
  expect((await c.login(email, password)).status).toBe(303);
  await c.get('/dashboard');
  return c;
}
/** A dataset that stays pending: the worker runs only while the finished one is made. */
async function pending(description = 'Waiting dataset'): Promise<TaskView> {
  return site.gen.tasks.submit({ description, language: 'en', count: 10, imagesPerPersona: 4 }, { userId: ownerId });
}

beforeAll(async () => {
  site = await startSite({ worker: false, host: { trustProxy: true, throttle: { perIp: 50, perAccountIp: 3, windowMs: 60_000 } } });
  ownerId = (await site.gen.users.create({ email: OWNER, password: PASSWORD })).id;
  await site.gen.users.create({ email: OTHER, password: PASSWORD });
  const submitted = await site.gen.tasks.submit(
    { description: 'Beekeepers in Provence', language: 'fr', count: 10, imagesPerPersona: 4 },
    { userId: ownerId },
  );
  await site.gen.worker.start();
  done = await waitForStatus(site.gen, submitted.id, ['completed', 'failed', 'partial']);
  await site.gen.worker.stop();
  expect(done.status).toBe('completed');
});
afterAll(() => site?.close());

describe('the language field (item 5)', () => {
  it('offers names with their codes, and Enter does not send the form', async () => {
    const { text } = await (await loggedIn()).get('/generate');
    expect(text).toContain('<option value="Portuguese">pt</option>');
    expect(text).toContain('<option value="Portuguese (Brazil)">pt-BR</option>');
    expect(text).toContain('value="English"');
    expect(text).toMatch(/<input id="language"[^>]*list="language-list"[^>]*data-no-enter-submit/);
    expect(text).toMatch(/Type a name or a code to search \d+ languages/);
  });

  it.each([
    ['Portuguese', 'pt'],
    ['portuguese', 'pt'],
    ['Brazilian Portuguese', 'pt-BR'],
    ['pt-BR', 'pt-BR'],
    ['ja', 'ja'],
  ])('the form takes %j as %s', async (language, code) => {
    const c = await loggedIn();
    const reply = await c.post('/generate', { description: 'Fishermen', language, count: '10', imagesPerPersona: '4' });
    expect(reply.status).toBe(303);
    const id = (reply.location as string).split('/').pop() as string;
    expect((await site.gen.tasks.get(id)).language.code).toBe(code);
    await site.gen.tasks.cancel(id);
  });

  it('the API takes a name too', async () => {
    const c = await loggedIn();
    const reply = await c.request('POST', '/api/v1/tasks', {
      json: { description: 'Bakers', language: 'Spanish (Mexico)', count: 10, imagesPerPersona: 4 },
    });
    expect(reply.status).toBe(201);
    const task = reply.json() as TaskView;
    expect(task.language).toEqual({ code: 'es-MX', name: 'Spanish (Mexico)' });
    await site.gen.tasks.cancel(task.id);
  });

  it('a near miss is refused beside the field with what is close', async () => {
    const c = await loggedIn();
    const reply = await c.post('/generate', { description: 'Fishermen', language: 'Portugese', count: '10', imagesPerPersona: '4' });
    expect(reply.status).toBe(422);
    expect(reply.text).toContain(
      '<p class="error" id="language-error">Choose a bio language from the list. Did you mean Portuguese (pt), Portuguese (Brazil) (pt-BR)?</p>',
    );
    expect(reply.text).toContain('value="Portugese"');
  });
});

describe('the live dataset page (item 6)', () => {
  it('says the status in words on the badge and in the progress events', async () => {
    const c = await loggedIn();
    const task = await pending();
    const { text } = await c.get(`/datasets/${task.id}`);
    // the worker is stopped, but a task may already have been taken up: either way, words
    const badge = /<span id="task-status" class="status status-([\w-]+)">([^<]+)<\/span>/.exec(text);
    expect(badge?.[2]).toBe(statusLabel(badge?.[1] ?? ''));
    expect(['Waiting to start', 'Writing personas']).toContain(badge?.[2]);
    expect(text).toMatch(new RegExp(`data-live="/datasets/${task.id}/live\\?page=1" data-counts="\\d+/\\d+"`));
    const res = await fetch(new URL(`/datasets/${done.id}/events`, site.url), {
      headers: { cookie: [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    const events = await collectEvents(res, (e) => e.event === 'done', 10_000);
    expect(JSON.parse(events.find((e) => e.event === 'progress')?.data ?? '{}')).toMatchObject({ status: 'completed', label: 'Completed' });
    await site.gen.tasks.cancel(task.id);
  });

  it('serves the demographics and the personas alone, for the page to swap in, to the owner only', async () => {
    const owner = await loggedIn();
    const reply = await owner.get(`/datasets/${done.id}/live`);
    expect(reply.status).toBe(200);
    expect(reply.text).not.toContain('<html');
    expect(reply.text).toContain('<section class="panel" aria-labelledby="demo-title" id="demographics">');
    expect(reply.text).toContain('<section aria-labelledby="personas-title" id="personas">');
    expect(reply.text.match(/<article class="panel persona"/g)).toHaveLength(10);
    expect(reply.text).toContain('Demographics <span class="muted mono small">of 10 personas</span>');
    const empty = await owner.get(`/datasets/${(await pending()).id}/live`);
    expect(empty.text).toContain('No personas yet; the figures fill in as personas arrive.');
    expect(empty.text).toContain('No personas yet; they appear here as they are made.');
    expect((await (await loggedIn(OTHER)).get(`/datasets/${done.id}/live`)).status).toBe(404);
    expect((await client().get(`/datasets/${done.id}/live`)).status).toBe(302);
  });
});

describe('the persona page (item 7)', () => {
  it('shows every picture at full size, the prompts, the style parameters and bios with their line breaks', async () => {
    const owner = await loggedIn();
    const persona = (await site.gen.personas.list(done.id)).personas[0];
    if (!persona) throw new Error('no persona');
    await site.gen.orm.em.fork().execute('update personas set bio_instagram = ? where id = ?', ['Line one\nLine two', persona.id]);
    const dataset = await owner.get(`/datasets/${done.id}`);
    expect(dataset.text).toContain(`href="/datasets/${done.id}/personas/${persona.id}"`);
    const { status, text } = await owner.get(`/datasets/${done.id}/personas/${persona.id}`);
    expect(status).toBe(200);
    expect(text).toContain(`<h1>${persona.firstName} ${persona.lastName}</h1>`);
    for (const image of persona.images) expect(text).toContain(`<img src="${image.url}"`);
    if (persona.baseImage) expect(text).toContain(`<img src="${persona.baseImage.url}"`);
    for (const prompt of persona.prompts)
      expect(text).toContain(
        prompt.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&#34;').replace(/'/g, '&#39;'),
      );
    expect(text).toContain('<dd class="bio" id="bio-instagram">Line one\nLine two</dd>');
    const styled = persona.images.find((i) => i.style);
    if (styled?.style) expect(text).toContain(`<dt>Preset</dt><dd class="mono">${styled.style.preset}</dd>`);
    expect(text).toContain('id="viewer-next"');
    expect(text).toMatch(/data-caption="[^"]+: picture 1 \(\d+ of \d+\)"/);
  });

  it('is found only under its own dataset, by its owner; anyone else gets the 404 of a missing one', async () => {
    const persona = (await site.gen.personas.list(done.id)).personas[0];
    const other = await pending('Another of the owner’s datasets');
    const owner = await loggedIn();
    expect((await owner.get(`/datasets/${other.id}/personas/${persona?.id}`)).status).toBe(404);
    for (const bad of ['0', '-1', 'abc', '1e3', '99999999999', '2147483648'])
      expect((await owner.get(`/datasets/${done.id}/personas/${bad}`)).status, bad).toBe(404);
    expect((await owner.get(`/datasets/${done.id}/personas/2147483647`)).status).toBe(404);
    const intruder = await loggedIn(OTHER);
    const stolen = await intruder.get(`/datasets/${done.id}/personas/${persona?.id}`);
    expect(stolen.status).toBe(404);
    expect(stolen.text).not.toContain(persona?.lastName);
    expect((await client().get(`/datasets/${done.id}/personas/${persona?.id}`)).location).toBe(
      `/login?next=${encodeURIComponent(`/datasets/${done.id}/personas/${persona?.id}`)}`,
    );
  });
});

describe('wording, filters, confirmation and feedback (item 9)', () => {
  it('filters by status in words; a filter that matches nothing says so', async () => {
    const c = await loggedIn();
    for (const path of ['/history', '/datasets']) {
      const { text } = await c.get(path);
      expect(text, path).toContain('<option value="generating-images">Making pictures</option>');
      expect(text, path).not.toMatch(/>generating-images</);
      const none = await c.get(`${path}?status=failed`);
      expect(none.text, path).toContain('No datasets match these filters.');
      expect(none.text, path).not.toContain('No datasets yet');
    }
    const empty = await (await loggedIn(OTHER)).get('/history');
    expect(empty.text).toContain('No datasets yet.');
    expect(empty.text).not.toMatch(/\btasks?\b/i);
  });

  it('cancel asks first (without script: a page with a confirm button), then cancels with a message', async () => {
    const task = await pending();
    const c = await loggedIn();
    const page = await c.get(`/datasets/${task.id}`);
    expect(page.text).toMatch(
      /<form method="post" action="\/datasets\/\w+\/cancel" class="inline" data-confirm-field="confirm" data-confirm="[^"]+">/,
    );
    const asked = await c.post(`/datasets/${task.id}/cancel`);
    expect(asked.status).toBe(200);
    expect(asked.text).toContain('Cancel this dataset?');
    expect(asked.text).toContain('<input type="hidden" name="confirm" value="yes">');
    expect((await site.gen.tasks.get(task.id)).status).toBe('pending');
    expect((await (await loggedIn(OTHER)).post(`/datasets/${task.id}/cancel`)).status).toBe(404);
    expect((await c.post(`/datasets/${task.id}/cancel`, { confirm: 'yes' }, { csrf: false })).status).toBe(403);
    const cancelled = await c.post(`/datasets/${task.id}/cancel`, { confirm: 'yes' });
    expect(cancelled.status).toBe(303);
    expect((await site.gen.tasks.get(task.id)).status).toBe('cancelled');
    const after = await c.get(cancelled.location as string);
    expect(after.text).toContain(`<p class="notice flash" role="status" id="flash">Dataset ${task.id} cancelled.`);
    expect(after.text).toContain('<span id="task-status" class="status status-cancelled">Cancelled</span>');
    expect((await c.get(cancelled.location as string)).text).not.toContain('id="flash"'); // shown once
    // an ended dataset has nothing to cancel: no question asked
    expect((await c.post(`/datasets/${task.id}/cancel`)).status).toBe(409);
  });

  it('delete says it is done', async () => {
    const task = await pending();
    const c = await loggedIn();
    await c.get(`/datasets/${task.id}`);
    const deleted = await c.post(`/datasets/${task.id}/delete`);
    expect(deleted.location).toBe('/datasets');
    expect((await c.get('/datasets')).text).toContain(`Dataset ${task.id} deleted, with its personas and images.`);
  });

  it('pages say dataset, never task', async () => {
    const c = await loggedIn();
    for (const path of ['/dashboard', '/generate', '/history', '/datasets', '/exports', `/datasets/${done.id}`]) {
      const { text } = await c.get(path);
      const visible = text.replace(/<[^>]+>/g, ' ');
      expect(visible, path).not.toMatch(/\btasks?\b/i);
    }
  });
});

describe('changing one’s own password (item 9)', () => {
  const EMAIL = 'changer@example.com';
  const NEW = 'a brand new passphrase';
  beforeAll(async () => {
    await site.gen.users.create({ email: EMAIL, password: PASSWORD });
  });

  it('has a labelled form linked from settings, CSRF-protected', async () => {
    const c = await loggedIn(EMAIL);
    expect((await c.get('/settings')).text).toContain('<a href="/settings/password" id="password-link">');
    const form = await c.get('/settings/password');
    for (const id of ['current', 'next', 'again']) expect(form.text).toContain(`<label for="${id}">`);
    expect(form.text).toContain('minlength="12"');
    expect((await c.post('/settings/password', { current: PASSWORD, next: NEW, again: NEW }, { csrf: false })).status).toBe(403);
    expect((await client().get('/settings/password')).status).toBe(302);
  });

  it('refuses two different new passwords, a short one and a wrong current one, each beside its field', async () => {
    const c = await loggedIn(EMAIL);
    await c.get('/settings/password');
    const differ = await c.post('/settings/password', { current: PASSWORD, next: NEW, again: `${NEW}!` });
    expect(differ.status).toBe(422);
    expect(differ.text).toContain('<p class="error" id="again-error">The two new passwords differ.</p>');
    const short = await c.post('/settings/password', { current: PASSWORD, next: 'short one', again: 'short one' });
    expect(short.status).toBe(422);
    expect(short.text).toContain('<p class="error" id="next-error">Use at least 12 characters.</p>');
    const wrong = await c.post('/settings/password', { current: 'not the password', next: NEW, again: NEW });
    expect(wrong.status).toBe(401);
    expect(wrong.text).toContain('<p class="error" id="current-error">The current password is wrong.</p>');
    expect(await site.gen.users.authenticate(EMAIL, PASSWORD)).not.toBeNull();
  });

  it('counts a wrong current password like a failed login', async () => {
    const c = await loggedIn(EMAIL);
    await c.get('/settings/password');
    const statuses = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await c.post('/settings/password', { current: `guess ${i}`, next: NEW, again: NEW })).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
    const locked = await c.post('/settings/password', { current: PASSWORD, next: NEW, again: NEW });
    expect(locked.status).toBe(429);
    expect(locked.text).toMatch(/Too many failed attempts\. Try again in \d+ minute/);
    // the login page, from the same address, is locked out for this account too
    const login = new Client(site.url, c.defaults);
    expect((await login.login(EMAIL, PASSWORD)).status).toBe(429);
    await site.gen.loginAttempts.deleteExpired(Date.now() + 3_600_000);
  });

  it('changes it, rotates this session, logs the other sessions out and says so', async () => {
    const c = await loggedIn(EMAIL);
    const elsewhere = await loggedIn(EMAIL);
    await c.get('/settings/password');
    const before = c.cookies.get('avatargen.sid');
    const changed = await c.post('/settings/password', { current: PASSWORD, next: NEW, again: NEW });
    expect(changed.status).toBe(303);
    expect(changed.location).toBe('/settings');
    expect(c.cookies.get('avatargen.sid')).not.toBe(before);
    const settings = await c.get('/settings');
    expect(settings.status).toBe(200);
    expect(settings.text).toContain('Password changed. Other sessions of your account have been logged out.');
    expect((await elsewhere.get('/settings')).status).toBe(302);
    expect(await site.gen.users.authenticate(EMAIL, PASSWORD)).toBeNull();
    expect((await client().login(EMAIL, NEW)).status).toBe(303);
  });
});
