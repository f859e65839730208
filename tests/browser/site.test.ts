import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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
 * The website in Debian's Chromium: log in, submit a task, watch the progress bar reach 100%
 * (server-sent events), open the gallery, download the ZIP, change a setting. One screenshot
 * per step in tests/artifacts/browser/.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ARTIFACTS = fileURLToPath(new URL('../artifacts/browser/', import.meta.url));
const PASSWORD = 'browser test passphrase';

let db: TestDatabase;
let dataDir: string;
let profile: string;
let gen: AvatarGen;
let server: RunningServer;
let context: BrowserContext;
let page: Page;
const problems: string[] = [];
let step = 0;

/** The few browser globals the page functions use (this project compiles without the DOM library). */
interface ImageLike {
  complete: boolean;
  naturalWidth: number;
}
interface InPage {
  progressSeen: number[];
  document: {
    querySelectorAll(selector: string): { length: number };
    querySelector(selector: string): ImageLike | null;
    getElementById(id: string): ImageLike | null;
  };
}

async function shot(name: string): Promise<void> {
  step++;
  await page.screenshot({ path: join(ARTIFACTS, `${String(step).padStart(2, '0')}-${name}.png`), fullPage: true });
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  db = await createTestDatabase('avatargen_browser');
  dataDir = mkdtempSync(join(tmpdir(), 'avatargen-browser-'));
  profile = mkdtempSync(join(tmpdir(), 'avatargen-chromium-'));
  gen = await createAvatarGen({
    config: { DATABASE_URL: db.url, DATA_DIR: dataDir, LOG_LEVEL: 'silent', IMAGE_PROCESSOR_THREADS: 1 },
    plugins: [localPlugin({ imageSize: 96 }), imageOpencvPlugin({ threads: 1 }), filesystemStoragePlugin({ root: join(dataDir, 'storage') })],
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

  it('logs in', async () => {
    await page.goto(`${server.url}/`);
    await expect(page.title()).resolves.toContain('Log in');
    await shot('login');
    await page.getByLabel('Email').fill('operator@example.com');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL('**/dashboard');
    await expect(page.locator('h1').textContent()).resolves.toBe('Dashboard');
    await shot('dashboard');
  });

  it('shows a validation message beside the field, then submits a task', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Generate' }).click();
    await page.getByLabel('Who are these people?').fill('Lighthouse keepers on the Atlantic coast');
    await page.getByLabel('Bio language').fill('fr');
    await page.getByLabel('Number of personas').fill('5');
    await page.getByRole('button', { name: 'Generate' }).click();
    await expect(page.locator('#count-error').textContent()).resolves.toBe('Generate at least 10 personas.');
    await expect(page.getByLabel('Number of personas').getAttribute('aria-invalid')).resolves.toBe('true');
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

  it('watches the progress bar reach 100% live, then shows the personas', async () => {
    await page.waitForFunction(() => (globalThis as unknown as InPage).progressSeen.includes(100), null, { timeout: 60_000 });
    const seen = (await page.evaluate(() => (globalThis as unknown as InPage).progressSeen)) as number[];
    expect(seen.some((v) => v > 0 && v < 100) || seen[0] === 0).toBe(true);
    await shot('progress-100');
    // app.js reloads the page when the task is done: the server renders the gallery.
    await page.waitForFunction(() => (globalThis as unknown as InPage).document.querySelectorAll('ul.gallery img').length === 50, null, { timeout: 30_000 });
    await expect(page.locator('article.persona').count()).resolves.toBe(10);
    await expect(page.locator('#task-status').textContent()).resolves.toBe('completed');
    await shot('dataset');
  });

  it('opens the gallery: thumbnails, then a full-size view that Escape closes', async () => {
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
    await shot('gallery-full-size');
    await page.keyboard.press('Escape');
    await expect(viewer.isVisible()).resolves.toBe(false);
  });

  it('downloads the ZIP', async () => {
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.locator('#progress-panel').getByRole('button', { name: /as ZIP/ }).click(),
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
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Settings' }).click();
    const limit = page.getByLabel('Tasks running at once');
    await limit.fill('7');
    await page.getByRole('button', { name: 'Reset to saved' }).click();
    await expect(limit.inputValue()).resolves.toBe('2');
    await limit.fill('0');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await expect(page.locator('#max_concurrent_tasks-error').textContent()).resolves.toBe('At least 1 task must be able to run.');
    await shot('settings-error');
    await page.getByLabel('Tasks running at once').fill('3');
    await page.getByLabel('Randomize the style of each image').uncheck();
    await page.getByRole('button', { name: 'Save settings' }).click();
    await expect(page.getByRole('status').first().textContent()).resolves.toContain('Settings saved.');
    await shot('settings-saved');
    expect(await gen.settings.get()).toMatchObject({ max_concurrent_tasks: 3, randomize_image_style: false });
  });

  it('raised no script error and no Content-Security-Policy violation', () => {
    expect(problems).toEqual([]);
  });
});
