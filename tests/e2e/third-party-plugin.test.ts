import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extractXmp, readImageInfo, readXmp } from '@avatargen/core';
import { createTestDatabase, type TestDatabase } from '@avatargen/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/avatargen.js';
import {
  cleanEnv,
  installSite,
  pack,
  ROOT,
  type RunResult,
  readManifest,
  run,
  type SiteProcess,
  sitePackages,
  stageAndPack,
  startCommand,
  tsupEntries,
} from '../support/installed-site.js';
import { Client, readZip } from '../support/web-client.js';

/**
 * Issue 16, item 6: a third-party plugin, used as a plugin author and an operator would. Our
 * packages are built and packed as npm publishes them (JavaScript into a staging folder, never
 * the repository's dist/), the example plugin examples/image-provider-plugin is packed by its own
 * prepack build, and all the tarballs are installed with npm into a fresh site folder outside the
 * repository. The site names the plugin in avatargen.config.mjs and keeps its token in .env;
 * `avatargen plugins` lists it, `avatargen start` makes a dataset whose pictures the plugin
 * painted, and the token appears in no output. Two broken configurations fail with one line.
 */
const PLUGIN = '@acme/avatargen-painter';

/** A PNG without its XMP chunk (iTXt "XML:com.adobe.xmp"): every other byte as it was. */
function withoutXmpChunk(png: Buffer): Buffer {
  const parts = [png.subarray(0, 8)];
  for (let at = 8; at < png.length; ) {
    const length = png.readUInt32BE(at);
    const chunk = png.subarray(at, at + 12 + length);
    const isXmp = chunk.toString('latin1', 4, 8) === 'iTXt' && chunk.toString('latin1', 8, 25) === 'XML:com.adobe.xmp';
    if (!isXmp) parts.push(chunk);
    at += 12 + length;
  }
  return Buffer.concat(parts);
}
const PLUGIN_DIR = join(ROOT, 'examples/image-provider-plugin');
const TOKEN = `pt_${randomBytes(12).toString('hex')}`;
const PAINTER_SIZE = 320;
const ADMIN_EMAIL = 'painter-admin@example.com';
const ADMIN_PASSWORD = 'painter site admin passphrase';

let tmp: string;
let site: string;
let db: TestDatabase | undefined;
let app: SiteProcess | undefined;
let bin: string;
/** The packages packed and installed, with their source folders. */
let packed: Array<{ name: string; dir: string }> = [];
const timings: Record<string, number> = {};
const summary: string[] = [];

/** The site's `avatargen` with nothing from the test runner's environment but PATH and HOME: the rest comes from .env. */
const avatargen = (args: string[], cwd = site) => run(bin, args, { cwd, env: siteEnv(), timeoutMs: 60_000, allowFailure: true });
const siteEnv = () => ({
  PATH: cleanEnv().PATH as string,
  HOME: process.env.HOME ?? '/tmp',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
});

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'avatargen-e2e-plugin-'));
  chmodSync(tmp, 0o755);
  site = join(tmp, 'site');
  const stage = join(tmp, 'stage');
  const tarballs = join(tmp, 'tarballs');

  // Build and pack what a site installs: host-koa and every @avatargen package it depends on.
  let started = Date.now();
  const packages = sitePackages();
  const staged = await Promise.all([
    ...packages.map(async ({ name, dir }) => ({ name, dir, ...(await stageAndPack(dir, stage, tarballs)) })),
    pack(PLUGIN_DIR, tarballs).then((tarball) => ({ name: PLUGIN, dir: PLUGIN_DIR, tarball, folder: PLUGIN_DIR })),
  ]);
  timings.pack = Date.now() - started;
  packed = staged.map(({ name, dir }) => ({ name, dir }));

  started = Date.now();
  await installSite(
    site,
    staged.map((s) => s.tarball),
  );
  timings.install = Date.now() - started;
  bin = join(site, 'node_modules/.bin/avatargen');
  summary.push(
    `packed ${staged.length} tarballs in ${(timings.pack / 1000).toFixed(1)} s (${staged.map((s) => s.name).join(', ')}); npm install in ${(timings.install / 1000).toFixed(1)} s`,
  );

  db = await createTestDatabase('avatargen_e2e_plugin');
  writeFileSync(
    join(site, 'avatargen.config.mjs'),
    `import { defineConfig } from '@avatargen/core';\n\nexport default defineConfig({ plugins: ['${PLUGIN}'] });\n`,
  );
  const port = await freePort();
  writeFileSync(
    join(site, '.env'),
    [
      `PAINTER_API_TOKEN=${TOKEN}`,
      `PAINTER_SIZE=${PAINTER_SIZE}`,
      `DATABASE_URL=${db.url}`,
      `APP_PORT=${port}`,
      `ADMIN_EMAIL=${ADMIN_EMAIL}`,
      `ADMIN_PASSWORD="${ADMIN_PASSWORD}"`,
      'IMAGE_PROCESSOR_THREADS=1',
      'LOG_LEVEL=debug',
      '',
    ].join('\n'),
  );
}, 210_000);

afterAll(async () => {
  await app?.stop(10_000);
  await db?.drop().catch(() => undefined);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  if (summary.length > 0) console.log(`third-party plugin e2e:\n${summary.join('\n')}`);
});

describe('a third-party image provider plugin, installed from tarballs', () => {
  it('installs real copies of the packed packages: nothing resolves into the monorepo', async () => {
    // The example is installed like any third-party package, never as a workspace of ours.
    expect(readManifest(ROOT).workspaces?.some((w) => w.includes('image-provider-plugin'))).toBe(false);
    expect(existsSync(join(ROOT, 'node_modules', PLUGIN))).toBe(false);
    expect(packed.map((p) => p.name)).toContain('@avatargen/host-koa');
    for (const { name, dir } of packed) {
      const folder = join(site, 'node_modules', name);
      expect(lstatSync(folder).isSymbolicLink(), `${name} is a symbolic link`).toBe(false);
      expect(realpathSync(folder)).toBe(folder);
      const manifest = readManifest(folder);
      expect(manifest.name).toBe(name);
      // Every entry of the package's tsup config was built and shipped (core's domain and errors,
      // image-opencv's worker, host-koa's bin...), and so is every file its manifest names.
      for (const entry of await tsupEntries(dir)) {
        expect(existsSync(join(folder, 'dist', `${entry}.js`)), `${name}: dist/${entry}.js`).toBe(true);
      }
      const targets = [
        ...Object.values(manifest.exports ?? {}).flatMap((e) => (typeof e === 'string' ? [e] : [e.import, e.types].filter(Boolean))),
        ...(typeof manifest.bin === 'string' ? [manifest.bin] : Object.values(manifest.bin ?? {})),
      ] as string[];
      for (const entry of manifest.files ?? []) {
        if (existsSync(join(dir, entry))) expect(existsSync(join(folder, entry)), `${name}: ${entry}`).toBe(true);
      }
      for (const target of targets) {
        // our packages are packed without type declarations (tsup --no-dts); the plugin ships them
        if (target.endsWith('.d.ts') && name !== PLUGIN) continue;
        expect(existsSync(join(folder, target)), `${name}: ${target}`).toBe(true);
      }
    }
    // As the site's code sees them: Node's resolver, from a module in the site folder.
    writeFileSync(
      join(site, 'resolve.mjs'),
      `console.log(JSON.stringify(process.argv.slice(2).map((name) => import.meta.resolve(name))));\n`,
    );
    const { stdout } = await run(process.execPath, ['resolve.mjs', '@avatargen/core', '@avatargen/host-koa', PLUGIN], {
      cwd: site,
      env: cleanEnv(),
    });
    for (const url of JSON.parse(stdout) as string[]) {
      const file = new URL(url).pathname;
      expect(file.startsWith(join(site, 'node_modules'))).toBe(true);
      expect(realpathSync(file)).toBe(file);
      expect(file.startsWith(ROOT)).toBe(false);
    }
    // The plugin's tarball holds its build and README, not its sources or tests.
    const painter = join(site, 'node_modules', PLUGIN);
    expect(existsSync(join(painter, 'dist/index.js'))).toBe(true);
    expect(existsSync(join(painter, 'dist/index.d.ts'))).toBe(true);
    expect(existsSync(join(painter, 'README.md'))).toBe(true);
    expect(existsSync(join(painter, 'src'))).toBe(false);
    expect(existsSync(join(painter, 'test'))).toBe(false);
  });

  it('avatargen plugins lists the painter filling imageProvider, its variables, and hides its token', async () => {
    const text = await avatargen(['plugins']);
    expect(text.code, text.stdout + text.stderr).toBe(0);
    const listing = text.stdout + text.stderr;
    expect(listing).toContain(PLUGIN);
    expect(listing).toMatch(/PAINTER_API_TOKEN\s+set/);
    expect(listing).toMatch(/PAINTER_SIZE\s+set/);
    expect(listing).toMatch(/PAINTER_STYLE\s+defaulted/);
    expect(listing).toMatch(new RegExp(`imageProvider\\s+${PLUGIN.replace('/', '\\/')}`));
    expect(listing).not.toContain(TOKEN);
    summary.push(`$ avatargen plugins\n${listing.trimEnd()}`);

    const json = await avatargen(['plugins', '--json']);
    expect(json.code, json.stdout + json.stderr).toBe(0);
    expect(json.stdout + json.stderr).not.toContain(TOKEN);
    const report = JSON.parse(json.stdout) as {
      configFile: string;
      plugins: Array<{
        name: string;
        provides: string[];
        ports: string[];
        variables: Array<{ name: string; status: string; secret: boolean; value?: unknown }>;
      }>;
      ports: Record<string, string>;
    };
    expect(report.configFile).toBe(join(site, 'avatargen.config.mjs'));
    expect(report.ports.imageProvider).toBe(PLUGIN);
    const painter = report.plugins.find((p) => p.name === PLUGIN);
    expect(painter).toMatchObject({ provides: ['imageProvider'], ports: ['imageProvider'] });
    const variables = Object.fromEntries((painter?.variables ?? []).map((v) => [v.name, v]));
    expect(variables.PAINTER_API_TOKEN).toEqual(expect.objectContaining({ status: 'set', secret: true }));
    expect(variables.PAINTER_API_TOKEN).not.toHaveProperty('value');
    expect(variables.PAINTER_SIZE).toEqual(expect.objectContaining({ status: 'set', secret: false, value: PAINTER_SIZE }));
    expect(variables.PAINTER_STYLE).toEqual(expect.objectContaining({ status: 'defaulted', secret: false, value: 'flat' }));
    // the ports the painter leaves empty keep the host's defaults
    expect(report.ports.personaProvider).toBeTruthy();
    expect(report.ports.personaProvider).not.toBe(PLUGIN);
  }, 30_000);

  it('avatargen start makes a dataset whose pictures the painter painted, and never prints its token', async () => {
    app = startCommand(bin, ['start'], { cwd: site, env: siteEnv() });
    const [, base] = await app.waitFor(/listening on (http:\/\/\S+)/, 90_000);
    expect(app.output()).toContain(`painter: flat pictures of ${PAINTER_SIZE} x ${PAINTER_SIZE} px`);

    const c = new Client(base as string);
    expect((await c.login(ADMIN_EMAIL, ADMIN_PASSWORD)).status).toBe(303);
    await c.get('/dashboard');
    const created = await c.request('POST', '/api/v1/tasks', {
      json: { description: 'Sign painters in Antwerp', language: 'en', count: 10, imagesPerPersona: 4 },
    });
    expect(created.status, created.text).toBe(201);
    const id = (created.json() as { id: string }).id;
    type Task = { status: string; progress: { personasStored: number; imagesStored: number }; errorLog: unknown[] };
    let task: Task | undefined;
    const started = Date.now();
    while (Date.now() - started < 90_000) {
      task = (await c.get(`/api/v1/tasks/${id}`)).json() as Task;
      if (['completed', 'partial', 'failed', 'cancelled'].includes(task.status)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const taskMs = Date.now() - started;
    expect(task?.errorLog).toEqual([]);
    expect(task).toMatchObject({ status: 'completed', progress: { personasStored: 10, imagesStored: 40 } });

    type Persona = {
      id: number;
      firstName: string;
      lastName: string;
      gender: 'f' | 'm';
      age: number | null;
      ethnicity: string;
      baseImage: { url: string } | null;
      images: Array<{ url: string; width: number; height: number; contentType: string }>;
    };
    const page = (await c.get(`/api/v1/tasks/${id}/personas?perPage=100`)).json() as { personas: Persona[] };
    const personas = page.personas;
    expect(personas).toHaveLength(10);
    for (const persona of personas) {
      expect(persona.baseImage).not.toBeNull();
      expect(persona.images).toHaveLength(4);
      // provider-local's pictures are 256 px scenes in a white frame; these are the painter's size
      for (const image of persona.images) expect([image.width, image.height]).toEqual([PAINTER_SIZE, PAINTER_SIZE]);
    }

    // The stored base pictures are the painter's bytes for each persona and the pipeline's seed,
    // with the site's provenance mark put into the PNG container (nothing else changed).
    const cookie = [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const download = async (url: string) => {
      const res = await fetch(new URL(url, base as string), { headers: { cookie } });
      expect(res.status, url).toBe(200);
      return Buffer.from(await res.arrayBuffer());
    };
    writeFileSync(
      join(site, 'paint-expected.mjs'),
      [
        `import { createPainterImageProvider } from '${PLUGIN}';`,
        `const provider = createPainterImageProvider({ token: process.env.PAINTER_API_TOKEN, size: ${PAINTER_SIZE}, style: 'flat' });`,
        'const requests = JSON.parse(process.argv[2]);',
        'const out = [];',
        'for (const { persona, seed } of requests) out.push(Buffer.from((await provider.baseImage({ persona, seed })).data).toString("base64"));',
        'console.log(JSON.stringify(out));',
        '',
      ].join('\n'),
    );
    const requests = personas.map((p) => ({ persona: p, seed: `${id}:${p.id}` }));
    const expected = JSON.parse(
      (
        await run(process.execPath, ['paint-expected.mjs', JSON.stringify(requests)], {
          cwd: site,
          env: cleanEnv({ PAINTER_API_TOKEN: TOKEN }),
        })
      ).stdout,
    ) as string[];
    const storedBases: string[] = [];
    for (const [i, persona] of personas.entries()) {
      const stored = await download(persona.baseImage?.url as string);
      expect(readImageInfo(stored)).toMatchObject({ contentType: 'image/png', width: PAINTER_SIZE, height: PAINTER_SIZE });
      expect(stored.includes(Buffer.from(`Software\0${PLUGIN} 1.0.0`, 'latin1')), 'the tEXt chunk the painter writes').toBe(true);
      const mark = extractXmp(stored);
      expect(mark, `mark of persona ${persona.id}`).not.toBeNull();
      expect(readXmp(mark as string)).toMatchObject({ marked: true, datasetId: id, personaId: String(persona.id) });
      expect(mark).toContain(PLUGIN); // the mark names the plugin that painted it
      const painted = Buffer.from(expected[i] as string, 'base64');
      expect(withoutXmpChunk(stored).equals(painted), `base of persona ${persona.id}`).toBe(true);
      storedBases.push(stored.toString('base64'));
    }
    const picture = await download(personas[0]?.images[0]?.url as string);
    expect(readImageInfo(picture)).toMatchObject({ width: PAINTER_SIZE, height: PAINTER_SIZE });

    // A ZIP export from the installed packages holds the painter's base pictures as stored, byte for byte.
    const zip = await fetch(new URL(`/api/v1/tasks/${id}/exports/zip`, base as string), {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': c.csrf },
    });
    expect(zip.status).toBe(200);
    const entries = await readZip(Buffer.from(await zip.arrayBuffer()));
    expect([...entries.keys()].filter((k) => k.endsWith('/details.json'))).toHaveLength(10);
    const bases = [...entries.entries()].filter(([k]) => /\/images\/00\.png$/.test(k)).map(([, v]) => v.toString('base64'));
    expect(bases.sort()).toEqual([...storedBases].sort());

    // The settings page (an admin's) shows the plugin and its variables, the token hidden.
    const settings = await c.get('/settings');
    expect(settings.status).toBe(200);
    expect(settings.text).toContain(PLUGIN);
    const status = (name: string) => new RegExp(`${name}</td>\\s*<td>(\\w+)</td>`).exec(settings.text)?.[1];
    expect([status('PAINTER_API_TOKEN'), status('PAINTER_SIZE'), status('PAINTER_STYLE')]).toEqual(['set', 'set', 'defaulted']);
    expect(settings.text).not.toContain(TOKEN);

    expect(await app.stop()).toBe(0);
    const output = app.output();
    expect(output).toContain('avatargen stopped');
    expect(output).not.toContain(TOKEN);
    expect(output).not.toContain(ADMIN_PASSWORD);
    summary.push(
      `$ avatargen start -> task ${id}: ${task?.status} in ${(taskMs / 1000).toFixed(1)} s, ${personas.length} personas, ` +
        `${personas.reduce((n, p) => n + p.images.length, 0)} pictures + ${personas.length} base pictures, all ${PAINTER_SIZE} x ${PAINTER_SIZE} from ${PLUGIN}; ` +
        `the ${personas.length} stored bases are byte for byte the painter's plus the provenance mark; ${output.split('\n').length} lines of debug output without the token`,
    );
  }, 150_000);

  it('refuses a site config naming a package that is not installed, or one that is not a plugin, in one line', async () => {
    const cases: Array<[string, string, (dir: string) => void]> = [
      ['@acme/avatargen-missing', 'not installed', () => undefined],
      [
        'acme-not-a-plugin',
        'default export is not a plugin',
        (dir) => {
          const pkg = join(dir, 'node_modules', 'acme-not-a-plugin');
          mkdirSync(pkg, { recursive: true });
          writeFileSync(
            join(pkg, 'package.json'),
            JSON.stringify({ name: 'acme-not-a-plugin', version: '1.0.0', type: 'module', exports: './index.js' }),
          );
          writeFileSync(join(pkg, 'index.js'), "export default { hello: 'world' };\n");
        },
      ],
    ];
    for (const [name, what, prepare] of cases) {
      // A folder inside the site: it finds the site's node_modules (avatargen, core) like the site does.
      const dir = join(site, name.replace(/[@/]/g, '_'));
      mkdirSync(dir, { recursive: true });
      prepare(dir);
      writeFileSync(
        join(dir, 'avatargen.config.mjs'),
        `import { defineConfig } from '@avatargen/core';\n\nexport default defineConfig({ plugins: ['${name}'] });\n`,
      );
      for (const command of [['plugins'], ['start']]) {
        const result: RunResult = await avatargen(command, dir);
        const output = (result.stdout + result.stderr).trim();
        expect(result.code, `${command[0]} with ${what}: ${output}`).not.toBe(0);
        expect(
          output.split('\n').filter((line) => line.includes(name)),
          `${command[0]} with ${what}: ${output}`,
        ).toHaveLength(1);
        expect(output, `${command[0]} with ${what}`).not.toMatch(/^\s+at /m);
        if (command[0] === 'plugins') summary.push(`$ avatargen plugins  (${what})  -> exit ${result.code}\n${output}`);
      }
    }
  }, 60_000);
});
