import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AvatarGen, createAvatarGen } from '@avatargen/core';
import { createTestDatabase, type TestDatabase } from '@avatargen/core/testing';
import { createApp, listen, type RunningServer } from '@avatargen/host-koa';
import { imageOpencvPlugin } from '@avatargen/image-opencv';
import { localPlugin } from '@avatargen/provider-local';
import { filesystemStoragePlugin } from '@avatargen/storage-filesystem';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readZip } from '../support/web-client.js';

/**
 * The website in Debian's Chromium: log in, submit a dataset with its language typed by name,
 * watch the progress bar reach 100% and the personas arrive (server-sent events), open the
 * gallery and a persona's page, download the ZIP, change a setting, cancel with and without the
 * script's confirm, change the password, and check that every page fits a 360 px screen.
 * Screenshots (one per step, and every page at 1280 and 360 px) go to a folder under the OS's
 * temporary directory, printed at the start.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const ARTIFACTS = mkdtempSync(join(tmpdir(), 'avatargen-screenshots-'));
const PASSWORD = 'browser test passphrase';
const NEW_PASSWORD = 'a new browser passphrase';

let db: TestDatabase;
let dataDir: string;
let profile: string;
let gen: AvatarGen;
let server: RunningServer;
let context: BrowserContext;
let page: Page;
const problems: string[] = [];
/** What the live dataset page showed each time it swapped its personas in (logged by the init script). */
const liveSwaps: Array<{ personas: number; pictures: number; status: string; header: string; count: string }> = [];
let step = 0;

/** The few browser globals the page functions use (this project compiles without the DOM library). */
interface ImageLike {
  complete: boolean;
  naturalWidth: number;
}
interface InPage {
  progressSeen: number[];
  performance: { getEntriesByType(type: 'navigation'): Array<{ type: string }> };
  document: {
    readyState: string;
    querySelectorAll(selector: string): { length: number };
    querySelector(selector: string): ImageLike | null;
    getElementById(id: string): ImageLike | null;
  };
}

async function shot(name: string): Promise<void> {
  step++;
  await page.screenshot({ path: join(ARTIFACTS, `${String(step).padStart(2, '0')}-${name}.png`), fullPage: true });
}

/** A screenshot of one part of the page (a section), numbered with the steps. */
async function shotOf(selector: string, name: string): Promise<void> {
  step++;
  await page.locator(selector).screenshot({ path: join(ARTIFACTS, `${String(step).padStart(2, '0')}-${name}.png`) });
}

/** The page as it is now fits 360 px with no sideways scrolling; screenshots at 360 and 1280 px. */
async function fits(name: string): Promise<void> {
  await page.setViewportSize({ width: 360, height: 780 });
  const width = (await page.evaluate('document.documentElement.scrollWidth')) as number;
  await page.screenshot({ path: join(ARTIFACTS, `page-${name}-360.png`), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.screenshot({ path: join(ARTIFACTS, `page-${name}-1280.png`), fullPage: true });
  expect(width, `${name} at 360 px`).toBeLessThanOrEqual(360);
}

beforeAll(async () => {
  console.log(`browser screenshots: ${ARTIFACTS}`);
  db = await createTestDatabase('avatargen_browser');
  dataDir = mkdtempSync(join(tmpdir(), 'avatargen-browser-'));
  profile = mkdtempSync(join(tmpdir(), 'avatargen-chromium-'));
  gen = await createAvatarGen({
    config: { DATABASE_URL: db.url, DATA_DIR: dataDir, LOG_LEVEL: 'silent', IMAGE_PROCESSOR_THREADS: 1 },
    plugins: [
      localPlugin({ imageSize: 96 }),
      imageOpencvPlugin({ threads: 1 }),
      filesystemStoragePlugin({ root: join(dataDir, 'storage') }),
    ],
    pipeline: { reconcileIntervalMs: 300, maintenanceIntervalSeconds: 1, pollingIntervalSeconds: 0.5 },
  });
  await gen.worker.start();
  await gen.users.create({ email: 'operator@example.com', password: PASSWORD, isAdmin: true });
  server = await listen(createApp(gen, { secretKey: 'browser-suite-secret-0123456789abcdef' }), { port: 0, hostname: '127.0.0.1' });
  // The browser's own temporary profile (--user-data-dir), as the brief for this suite asks.
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (message) => {
    if (message.type() === 'log' && message.text().startsWith('live-personas ')) liveSwaps.push(JSON.parse(message.text().slice(14)));
    // The validation pages answer 422 on purpose; Chromium logs every 4xx document as an error.
    if (message.type() === 'error' && !message.text().includes('status of 422')) problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(error.message));
  // Records every value the progress bar takes (the attribute reflects the property set by app.js).
  // (Browser code is passed as text: this project compiles without the DOM library.)
  await context.addInitScript(`
    window.progressSeen = [];
    document.addEventListener('DOMContentLoaded', () => {
      const bar = document.getElementById('task-progress');
      if (!bar) return;
      window.progressSeen.push(bar.value);
      new MutationObserver(() => window.progressSeen.push(bar.value)).observe(bar, { attributes: true, attributeFilter: ['value'] });
      // each time app.js swaps the personas in, what the page shows
      const panel = document.getElementById('progress-panel');
      new MutationObserver(() => console.log('live-personas ' + JSON.stringify({
        personas: document.querySelectorAll('article.persona').length,
        pictures: document.querySelectorAll('ul.gallery img').length,
        status: panel.dataset.status,
        header: document.getElementById('progress-text').textContent,
        count: (document.getElementById('personas-count') || {}).textContent,
      }))).observe(document.getElementById('main'), { childList: true });
    });
  `);
});

afterAll(async () => {
  await context?.close();
  await server?.close(2000);
  await gen?.close();
  await db?.drop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(profile, { recursive: true, force: true });
});

describe('the website in Chromium', () => {
  let datasetUrl: string;
  let personaUrl: string;
  let targetedUrl: string;
  const nav = (name: string) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true });

  it('logs in', async () => {
    await page.goto(`${server.url}/`);
    await expect(page.title()).resolves.toContain('Log in');
    await shot('login');
    await fits('login');
    await page.getByLabel('Email').fill('operator@example.com');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL('**/dashboard');
    await expect(page.locator('h1').textContent()).resolves.toBe('Dashboard');
    await shot('dashboard');
  });

  it('takes the language by name; Enter in the field does not send the form', async () => {
    await nav('Generate').click();
    await page.getByLabel('Who are these people?').fill('Lighthouse keepers on the Atlantic coast');
    const language = page.getByLabel('Bio language');
    await expect(page.locator('#language-list option[value="Portuguese"]').count()).resolves.toBe(1);
    await language.fill('Portuguese');
    await language.press('Enter');
    await page.waitForTimeout(500);
    expect(page.url()).toMatch(/\/generate$/);
    await expect(page.locator('.error').count()).resolves.toBe(0);
    await expect(language.inputValue()).resolves.toBe('Portuguese');
  });

  it('shows a validation message beside the field, then submits a dataset', async () => {
    await page.getByLabel('Number of personas').fill('5');
    await page.getByRole('button', { name: 'Generate' }).click();
    await expect(page.locator('#count-error').textContent()).resolves.toBe('Generate at least 10 personas.');
    await expect(page.getByLabel('Number of personas').getAttribute('aria-invalid')).resolves.toBe('true');
    await expect(page.getByLabel('Bio language').inputValue()).resolves.toBe('Portuguese');
    await shot('generate-error');
    await page.getByLabel('Number of personas').fill('10');
    await page.getByLabel('Images per persona').selectOption('4');
    await shot('generate-filled');
    const [events] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/events')),
      page.getByRole('button', { name: 'Generate' }).click(),
    ]);
    expect(events.headers()['content-type']).toBe('text/event-stream; charset=utf-8');
    datasetUrl = page.url();
    expect(datasetUrl).toMatch(/\/datasets\/[\w]+$/);
  });

  it('watches the progress bar reach 100% live, the personas and pictures arriving before the end', async () => {
    await page.waitForFunction(() => (globalThis as unknown as InPage).progressSeen.includes(100), null, { timeout: 60_000 });
    const seen = (await page.evaluate(() => (globalThis as unknown as InPage).progressSeen)) as number[];
    expect(seen.some((v) => v > 0 && v < 100) || seen[0] === 0).toBe(true);
    // (no screenshot here: the page reloads itself 400 ms after the end, which a screenshot can straddle)
    // app.js reloads the page when the task is done: the server renders the gallery.
    // On the reloaded page, loaded: the live page before the reload can show the pictures too, and
    // a count taken while the reload runs would see an empty page.
    await page.waitForFunction(
      () => {
        const doc = (globalThis as unknown as InPage).document;
        const navigation = (globalThis as unknown as InPage).performance.getEntriesByType('navigation')[0];
        return (
          navigation?.type === 'reload' &&
          doc.readyState === 'complete' &&
          doc.querySelectorAll('ul.gallery img').length === 50 &&
          doc.querySelectorAll('article.persona').length === 10
        );
      },
      null,
      { timeout: 30_000 },
    );
    await expect(page.locator('article.persona').count()).resolves.toBe(10);
    await expect(page.locator('#task-status').textContent()).resolves.toBe('Completed');
    await expect(page.locator('.facts').first().textContent()).resolves.toContain('Portuguese (pt)');
    // Before the end the page swapped in personas (and pictures) while the task still ran, and
    // the personas heading agreed with what the page showed.
    const during = liveSwaps.filter((s) => s.status !== 'completed');
    expect(
      during.some((s) => s.personas > 0),
      JSON.stringify(liveSwaps),
    ).toBe(true);
    for (const s of during) expect(Number(s.count)).toBe(s.personas);
    expect(liveSwaps.some((s) => s.pictures > 0 && s.pictures < 50 && s.status !== 'completed') || during.some((s) => s.pictures > 0)).toBe(
      true,
    );
    await shot('dataset');
    await fits('dataset');
  });

  it('opens the gallery: thumbnails, then a larger view with a caption and previous/next that Escape closes', async () => {
    const thumbs = page.locator('ul.gallery img');
    await expect(thumbs.count()).resolves.toBe(50);
    await thumbs.first().scrollIntoViewIfNeeded();
    await page.waitForFunction(() => {
      const img = (globalThis as unknown as InPage).document.querySelector('ul.gallery img');
      return !!img && img.complete && img.naturalWidth > 0;
    });
    await page.locator('a.thumb').nth(1).focus();
    await page.keyboard.press('Enter');
    const viewer = page.locator('dialog#viewer');
    await expect(viewer.isVisible()).resolves.toBe(true);
    await page.waitForFunction(() => {
      const img = (globalThis as unknown as InPage).document.getElementById('viewer-img');
      return !!img && img.complete && img.naturalWidth > 0;
    });
    await expect(page.locator('#viewer-caption').textContent()).resolves.toMatch(/: picture 1 \(2 of 5\)$/);
    const box = await page.locator('#viewer-img').boundingBox();
    expect(box?.width).toBeGreaterThan(400); // larger than the thumbnail, whatever the picture's own size
    await shot('gallery-full-size');
    await page.keyboard.press('Escape');
    await expect(viewer.isVisible()).resolves.toBe(false);
  });

  it('opens a persona: every picture at full size, prompts, style; the viewer steps with next and previous', async () => {
    await page.locator('article.persona h3 a').first().click();
    await page.waitForURL('**/personas/*');
    personaUrl = page.url();
    await expect(page.locator('ul.pictures img').count()).resolves.toBe(5);
    await expect(page.locator('#prompts li').count()).resolves.toBeGreaterThan(0);
    await page.waitForFunction(() => (globalThis as unknown as InPage).document.querySelectorAll('ul.pictures img').length === 5);
    await shot('persona');
    await fits('persona');
    await page.locator('ul.pictures a.thumb').first().click();
    const caption = page.locator('#viewer-caption');
    await expect(caption.textContent()).resolves.toMatch(/base selfie \(1 of 5\)$/);
    await page.getByRole('button', { name: 'Next picture' }).click();
    await expect(caption.textContent()).resolves.toMatch(/picture 1 \(2 of 5\)$/);
    await page.keyboard.press('ArrowRight');
    await expect(caption.textContent()).resolves.toMatch(/picture 2 \(3 of 5\)$/);
    await page.getByRole('button', { name: 'Previous picture' }).click();
    await page.getByRole('button', { name: 'Previous picture' }).click();
    await page.getByRole('button', { name: 'Previous picture' }).click(); // wraps round to the last
    await expect(caption.textContent()).resolves.toMatch(/picture 4 \(5 of 5\)$/);
    await shot('persona-viewer');
    await page.keyboard.press('Escape');
    await expect(page.locator('dialog#viewer').isVisible()).resolves.toBe(false);
  });

  it('downloads the ZIP', async () => {
    await page.goto(datasetUrl);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page
        .locator('#progress-panel')
        .getByRole('button', { name: /as ZIP/ })
        .click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/^avatargen-\w+\.zip$/);
    const saved = join(ARTIFACTS, download.suggestedFilename());
    await download.saveAs(saved);
    const entries = await readZip(readFileSync(saved));
    expect([...entries.keys()].filter((k) => k.endsWith('/details.json'))).toHaveLength(10);
    expect([...entries.keys()].filter((k) => k.includes('/images/'))).toHaveLength(50);
    await shot('after-download');
  });

  it('changes a setting; "reset to saved" undoes an unsaved edit; a bad value is refused beside the field', async () => {
    await nav('Settings').click();
    const limit = page.getByLabel('Datasets generated at once');
    await limit.fill('7');
    await page.getByRole('button', { name: 'Reset to saved' }).click();
    await expect(limit.inputValue()).resolves.toBe('2');
    await limit.fill('0');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await expect(page.locator('#max_concurrent_tasks-error').textContent()).resolves.toBe('At least 1 task must be able to run.');
    await shot('settings-error');
    await page.getByLabel('Datasets generated at once').fill('3');
    await page.getByLabel('Randomize the style of each image').uncheck();
    await page.getByRole('button', { name: 'Save settings' }).click();
    await expect(page.getByRole('status').first().textContent()).resolves.toContain('Settings saved.');
    await shot('settings-saved');
    expect(await gen.settings.get()).toMatchObject({ max_concurrent_tasks: 3, randomize_image_style: false });
  });

  it('generates with demographic targets: a wrong one is refused beside its field, then requested vs achieved and the quality report', async () => {
    await nav('Generate').click();
    await expect(page.locator('details.targets').getAttribute('open')).resolves.toBeNull();
    await page.getByLabel('Who are these people?').fill('Tram conductors in Lisbon');
    await page.getByLabel('Bio language').fill('Portuguese');
    await page.getByLabel('Number of personas').fill('10');
    await page.getByLabel('Images per persona').selectOption('4');
    await page.getByText('Demographic targets (optional)').click();
    await page.getByLabel('Genders', { exact: true }).fill('50/50');
    await page.getByLabel('Ages', { exact: true }).fill('40-25');
    await page.getByRole('button', { name: 'Generate' }).click();
    await expect(page.locator('#targets_ages-error').textContent()).resolves.toContain('starts at or below its end');
    await expect(page.locator('details.targets').getAttribute('open')).resolves.not.toBeNull();
    await expect(page.getByLabel('Genders', { exact: true }).inputValue()).resolves.toBe('50/50');
    await expect(page.getByLabel('Ages', { exact: true }).getAttribute('aria-invalid')).resolves.toBe('true');
    await shot('generate-targets-error');
    await page.getByLabel('Ages', { exact: true }).fill('25-40');
    await shot('generate-targets');
    await page.getByRole('button', { name: 'Generate' }).click();
    await page.waitForURL(/\/datasets\/\w+$/);
    targetedUrl = page.url();
    await expect(page.locator('#quality-pending').textContent()).resolves.toBe('The report is made when the task ends.');
    // app.js reloads the page when the task ends; the server then renders the report
    await page.waitForSelector('#quality-texts', { timeout: 60_000 });
    await expect(page.locator('#task-status').textContent()).resolves.toBe('Completed');
    const rows = page.locator('#targets .target-row');
    await expect(rows.count()).resolves.toBeGreaterThanOrEqual(3); // female, male, 25-40 (and any "other")
    await expect(page.locator('#targets [data-dimension="genders"] .target-figures').first().textContent()).resolves.toMatch(
      /^5 requested, \d+ achieved$/,
    );
    const bar = await page.locator('#targets .bars').first().boundingBox();
    expect(bar?.width).toBeGreaterThan(40); // drawn, not only numbers
    await shotOf('#targets', 'requested-vs-achieved');
    await shotOf('#quality', 'quality-report');
    await fits('dataset-targets');
  });

  it('regenerates a picture from the persona page: asked first, then the message, and the dataset ends again', async () => {
    await page.locator('article.persona h3 a').first().click();
    await page.waitForURL('**/personas/*');
    const personaId = Number(/\/personas\/(\d+)$/.exec(page.url())?.[1]);
    await fits('persona-regenerate');
    const asked: string[] = [];
    page.once('dialog', (dialog) => {
      asked.push(dialog.message());
      void dialog.accept();
    });
    // The worker waits meanwhile, so the page with the message stays as it is (it reloads itself
    // once the task ends, which a screenshot could straddle).
    await gen.worker.stop();
    try {
      await Promise.all([page.waitForURL(targetedUrl), page.getByRole('button', { name: 'Regenerate picture 2' }).click()]);
      expect(asked).toEqual([expect.stringContaining('Regenerate picture 2 of')]);
      await expect(page.locator('#flash').textContent()).resolves.toContain(`Picture 2 of persona #${personaId} is being made again`);
      await expect(page.locator('#quality-pending').textContent()).resolves.toBe('The report is made when the task ends.');
      await shot('regenerate-flash');
    } finally {
      await gen.worker.start();
    }
    await page.waitForSelector('#quality-texts', { timeout: 60_000 });
    await expect(page.locator('#task-status').textContent()).resolves.toBe('Completed');
    await shot('regenerated');
    const persona = await gen.personas.get(personaId);
    expect(persona.images.map((i) => i.index)).toEqual([0, 1, 2, 3]);
  });

  it('cancel asks first: dismissing keeps the dataset running, confirming cancels it with a message', async () => {
    await gen.worker.stop(); // the datasets below wait in the queue
    const user = await gen.users.findByEmail('operator@example.com');
    const task = await gen.tasks.submit(
      { description: 'Ferry crews in the Hebrides', language: 'gd', count: 10, imagesPerPersona: 4 },
      { userId: user?.id },
    );
    await page.goto(`${server.url}/datasets/${task.id}`);
    const asked: string[] = [];
    page.once('dialog', (dialog) => {
      asked.push(dialog.message());
      void dialog.dismiss();
    });
    await page.getByRole('button', { name: 'Cancel', exact: true }).click();
    await page.waitForTimeout(300);
    expect(asked).toEqual([expect.stringContaining('Cancel this dataset?')]);
    expect(page.url()).toBe(`${server.url}/datasets/${task.id}`);
    expect((await gen.tasks.get(task.id)).status).not.toBe('cancelled');
    page.once('dialog', (dialog) => void dialog.accept());
    await Promise.all([page.waitForURL(`**/datasets/${task.id}`), page.getByRole('button', { name: 'Cancel', exact: true }).click()]);
    await expect(page.locator('#flash').textContent()).resolves.toContain(`Dataset ${task.id} cancelled.`);
    await expect(page.locator('#task-status').textContent()).resolves.toBe('Cancelled');
    await shot('cancelled');
    expect((await gen.tasks.get(task.id)).status).toBe('cancelled');
  });

  it('cancel without the script: a page asks, its button cancels', async () => {
    const user = await gen.users.findByEmail('operator@example.com');
    const task = await gen.tasks.submit(
      { description: 'Night porters in Lisbon', language: 'pt', count: 10, imagesPerPersona: 4 },
      { userId: user?.id },
    );
    await page.goto(`${server.url}/datasets/${task.id}`);
    // form.submit() sends the form as a browser without script would: no submit event, no dialog
    await Promise.all([
      page.waitForURL(`**/datasets/${task.id}/cancel`),
      page.evaluate(`document.querySelector('form[action$="/cancel"]').submit()`),
    ]);
    await expect(page.locator('h1').textContent()).resolves.toBe('Cancel this dataset?');
    await fits('cancel-confirm');
    await page.getByRole('button', { name: 'Yes, cancel the dataset' }).click();
    await page.waitForURL(`**/datasets/${task.id}`);
    await expect(page.locator('#flash').textContent()).resolves.toContain('cancelled');
    expect((await gen.tasks.get(task.id)).status).toBe('cancelled');
  });

  it('every page fits a 360 px screen', async () => {
    for (const [name, path] of [
      ['dashboard', '/dashboard'],
      ['generate', '/generate'],
      ['history', '/history'],
      ['history-no-match', '/history?status=failed'],
      ['datasets', '/datasets'],
      ['exports', '/exports'],
      ['settings', '/settings'],
      ['password', '/settings/password'],
    ] as const) {
      await page.goto(`${server.url}${path}`);
      await fits(name);
    }
    await page.goto(`${server.url}/exports`);
    await page.setViewportSize({ width: 360, height: 780 });
    // every Download button is on the screen, not beyond its right edge
    for (const button of await page.getByRole('button', { name: /^Download / }).all()) {
      const box = await button.boundingBox();
      expect((box?.x ?? 0) + (box?.width ?? 0)).toBeLessThanOrEqual(360);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
    expect(personaUrl).toMatch(/\/personas\/\d+$/);
  });

  it('changes the password: the session goes on, the new password logs in', async () => {
    await page.goto(`${server.url}/settings`);
    await page.getByRole('link', { name: 'Change your password' }).click();
    await page.getByLabel('Current password').fill(PASSWORD);
    await page.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
    await page.getByLabel('New password again').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.waitForURL('**/settings');
    await expect(page.locator('#flash').textContent()).resolves.toContain('Password changed.');
    await shot('password-changed');
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL('**/login');
    await page.getByLabel('Email').fill('operator@example.com');
    await page.getByLabel('Password').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL('**/dashboard');
  });

  it('raised no script error and no Content-Security-Policy violation', () => {
    expect(problems).toEqual([]);
  });
});
