import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '@avatargen/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Io, main } from '../src/cli.js';
import { describePlugins, formatPlugins } from '../src/plugin-report.js';
import { assemblePlugins, defaultPlugins } from '../src/plugins.js';
import { readSite } from '../src/site.js';

/**
 * How the host finds a site's plugins: the default choice from the environment, or the plugins a
 * config file lists (packages resolved from the site's folder), with defaults for the rest.
 */
let site: string;
beforeEach(() => {
  site = mkdtempSync(join(tmpdir(), 'avatargen-site-'));
});
afterEach(() => {
  rmSync(site, { recursive: true, force: true });
});

const TOKEN = 'pt_secret-0123456789abcdef';

/** A plugin package in the site's node_modules, as npm would install it. No dependency on core: a plain object is a plugin. */
function installPackage(name: string, source: string, main = 'index.js'): void {
  const dir = join(site, 'node_modules', ...name.split('/'));
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name, version: '1.0.0', type: 'module', exports: { '.': { import: `./${main}` } } }),
  );
  writeFileSync(join(dir, main), source);
}

const SKETCH = `
import { z } from 'zod';
export default function sketchPlugin(options = {}) {
  return {
    name: '@acme/sketch',
    provides: ['imageProvider'],
    config: z.object({
      SKETCH_TOKEN: z.string().min(12).describe('Token of the sketch service.'),
      SKETCH_SIZE: z.coerce.number().int().default(256).describe('Picture size.'),
    }),
    secrets: ['SKETCH_TOKEN'],
    options,
    register() {},
  };
}
`;

describe('the default choice from the environment', () => {
  it('picks local parts with nothing configured, and the services when they are', async () => {
    const config = loadConfig({ DATA_DIR: '/tmp/x' });
    const local = await assemblePlugins(config, {}, site);
    expect(local.configFile).toBeNull();
    expect(local.plugins.map((p) => p.name)).toEqual([
      '@avatargen/provider-local',
      '@avatargen/image-opencv',
      '@avatargen/storage-filesystem',
    ]);
    const remote = await assemblePlugins(
      config,
      { FLOWISE_URL: 'http://flowise.test', OPENAI_API_KEY: 'sk-x', S3_ENDPOINT: 'http://s3.test' },
      site,
    );
    expect(remote.plugins.map((p) => p.name)).toEqual([
      '@avatargen/provider-flowise',
      '@avatargen/provider-openai',
      '@avatargen/image-opencv',
      '@avatargen/storage-s3',
    ]);
  });

  it("validates the chosen plugins' variables with core's: the old .env keys keep working", async () => {
    const old = {
      FLOWISE_URL: 'http://flowise.test',
      FLOWISE_PERSONA_FLOW_ID: 'a',
      FLOWISE_PROMPT_FLOW_ID: 'b',
      FLOWISE_API_KEY: 'fw-key-123456',
      OPENAI_API_KEY: 'sk-x',
      OPENAI_CONCURRENCY: '2',
      S3_ENDPOINT: 'http://s3.test',
      S3_ACCESS_KEY: 'k',
      S3_SECRET_KEY: 's3-secret-123456',
    };
    const read = await readSite(old, site);
    expect(read.config).toMatchObject({ OPENAI_CONCURRENCY: 2, S3_BUCKET_NAME: 'avatar-images', FLOWISE_PROMPT_TIMEOUT_SECONDS: 120 });
    expect(read.secrets).toEqual(expect.arrayContaining(['FLOWISE_API_KEY', 'OPENAI_API_KEY', 'S3_ACCESS_KEY', 'S3_SECRET_KEY']));
    const error = await readSite({ ...old, S3_ACCESS_KEY: '', FLOWISE_PROMPT_FLOW_ID: '' }, site).catch((e: unknown) => e);
    expect((error as ConfigError).issues).toEqual([
      'FLOWISE_PROMPT_FLOW_ID is required (plugin @avatargen/provider-flowise)',
      'S3_ACCESS_KEY is required (plugin @avatargen/storage-s3)',
    ]);
  });

  it('without Flowise, personas and prompts come from the OpenAI chat model: with only OPENAI_API_KEY, or from a chat server alone', async () => {
    const config = loadConfig({ DATA_DIR: '/tmp/x' });
    const openaiOnly = await assemblePlugins(config, { OPENAI_API_KEY: 'sk-x' }, site);
    expect(openaiOnly.plugins.map((p) => [p.name, p.provides])).toEqual([
      ['@avatargen/provider-openai', ['imageProvider', 'personaProvider', 'imagePromptProvider']],
      ['@avatargen/image-opencv', ['imageProcessor']],
      ['@avatargen/storage-filesystem', ['objectStorage']],
    ]);
    const report = await describePlugins({ OPENAI_API_KEY: 'sk-only-key-123456' }, site);
    expect(report.problems).toEqual([]);
    expect(report.ports).toMatchObject({
      personaProvider: '@avatargen/provider-openai',
      imagePromptProvider: '@avatargen/provider-openai',
      imageProvider: '@avatargen/provider-openai',
    });
    const openaiReport = report.plugins.find((p) => p.name === '@avatargen/provider-openai');
    expect(openaiReport?.variables).toContainEqual(
      expect.objectContaining({ name: 'OPENAI_CHAT_MODEL', status: 'defaulted', value: 'gpt-4.1-mini' }),
    );

    // text from a local server (Ollama), no image key: provider-local keeps the pictures
    const ollama = await assemblePlugins(
      config,
      { OPENAI_CHAT_BASE_URL: 'http://127.0.0.1:11434/v1', OPENAI_CHAT_MODEL: 'llama3.2' },
      site,
    );
    expect(ollama.plugins.map((p) => [p.name, p.provides])).toEqual([
      ['@avatargen/provider-local', ['personaProvider', 'imagePromptProvider', 'imageProvider']],
      ['@avatargen/provider-openai', ['personaProvider', 'imagePromptProvider']],
      ['@avatargen/image-opencv', ['imageProcessor']],
      ['@avatargen/storage-filesystem', ['objectStorage']],
    ]);
    const ollamaReport = await describePlugins({ OPENAI_CHAT_BASE_URL: 'http://127.0.0.1:11434/v1', OPENAI_CHAT_MODEL: 'llama3.2' }, site);
    expect(ollamaReport.problems).toEqual([]);
    expect(ollamaReport.ports).toMatchObject({ personaProvider: '@avatargen/provider-openai', imageProvider: '@avatargen/provider-local' });

    // Flowise wins for text; OpenAI then draws only the pictures
    const both = await assemblePlugins(config, { FLOWISE_URL: 'http://flowise.test', OPENAI_API_KEY: 'sk-x' }, site);
    expect(both.plugins.find((p) => p.name === '@avatargen/provider-openai')?.provides).toEqual(['imageProvider']);
  });

  it('loads only the packages it needs for the ports asked', async () => {
    const plugins = await defaultPlugins(loadConfig({}), { OPENAI_API_KEY: 'sk-x' }, new Set(['imageProcessor']));
    expect(plugins.map((p) => p.name)).toEqual(['@avatargen/image-opencv']);
  });
});

describe('a config file', () => {
  it('lists packages resolved from the site folder, with options; defaults fill the ports they leave empty', async () => {
    installPackage('@acme/sketch', SKETCH);
    // zod for the fake package, as a site would have it installed
    mkdirSync(join(site, 'node_modules'), { recursive: true });
    const { symlinkSync, realpathSync } = await import('node:fs');
    symlinkSync(realpathSync(join(import.meta.dirname, '../../../node_modules/zod')), join(site, 'node_modules', 'zod'));
    writeFileSync(
      join(site, 'avatargen.config.mjs'),
      `export default { plugins: [{ resolve: '@acme/sketch', options: { tint: 'blue' } }] };\n`,
    );
    const assembly = await assemblePlugins(loadConfig({}), {}, site);
    expect(assembly.configFile).toBe(join(site, 'avatargen.config.mjs'));
    // provider-local for personas and prompts (its imageProvider replaced), the processor, the storage; then the listed plugin
    expect(assembly.plugins.map((p) => p.name)).toEqual([
      '@avatargen/provider-local',
      '@avatargen/image-opencv',
      '@avatargen/storage-filesystem',
      '@acme/sketch',
    ]);
    expect((assembly.plugins.at(-1) as unknown as { options: unknown }).options).toEqual({ tint: 'blue' });

    const report = await describePlugins({ SKETCH_TOKEN: TOKEN }, site);
    expect(report.problems).toEqual([]);
    expect(report.ports).toMatchObject({ imageProvider: '@acme/sketch', personaProvider: '@avatargen/provider-local' });
    const sketch = report.plugins.find((p) => p.name === '@acme/sketch');
    expect(sketch?.variables).toEqual([
      { name: 'SKETCH_TOKEN', status: 'set', secret: true, description: 'Token of the sketch service.' },
      { name: 'SKETCH_SIZE', status: 'defaulted', secret: false, description: 'Picture size.', value: 256 },
    ]);
    const text = formatPlugins(report).join('\n');
    expect(text).toContain('@acme/sketch: fills imageProvider');
    expect(text).toContain(
      '@avatargen/provider-local (default): fills personaProvider, imagePromptProvider; imageProvider replaced by a later plugin',
    );
    expect(text).toMatch(/SKETCH_TOKEN\s+set \(secret, hidden\)/);
    expect(text).toMatch(/SKETCH_SIZE\s+defaulted: 256/);
    expect(text).not.toContain(TOKEN);

    // its variables are validated like core's, naming the plugin
    const bad = await describePlugins({ SKETCH_TOKEN: 'short' }, site);
    expect(bad.problems).toEqual([expect.stringMatching(/^SKETCH_TOKEN .* \(plugin @acme\/sketch\)$/)]);
    expect(bad.problems.join('')).not.toContain('short');
  });

  it('may be TypeScript, or any file named by AVATARGEN_CONFIG; plugin objects work as entries', async () => {
    writeFileSync(
      join(site, 'avatargen.config.ts'),
      `const inline: { name: string; provides: string[]; register(): void } = { name: 'inline-images', provides: ['imageProvider'], register() {} };\nexport default { plugins: [inline] };\n`,
    );
    const ts = await assemblePlugins(loadConfig({}), {}, site);
    expect(ts.plugins.at(-1)?.name).toBe('inline-images');
    mkdirSync(join(site, 'conf'));
    writeFileSync(join(site, 'conf', 'other.mjs'), `export default { plugins: [] };\n`);
    const named = await assemblePlugins(loadConfig({}), { AVATARGEN_CONFIG: 'conf/other.mjs' }, site);
    expect(named.configFile).toBe(join(site, 'conf', 'other.mjs'));
    expect(named.plugins.map((p) => p.name)).toEqual([
      '@avatargen/provider-local',
      '@avatargen/image-opencv',
      '@avatargen/storage-filesystem',
    ]);
  });

  it('fails at start with one clear line for a missing package, a package that is not a plugin, or a bad file', async () => {
    const config = loadConfig({});
    const attempt = async (source: string, env: Record<string, string> = {}) => {
      writeFileSync(join(site, 'avatargen.config.mjs'), source);
      const error = await assemblePlugins(config, env, site).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).issues).toHaveLength(1);
      return (error as ConfigError).issues[0] as string;
    };
    expect(await attempt(`export default { plugins: ['@acme/absent'] };`)).toBe(
      `${join(site, 'avatargen.config.mjs')}: plugin package @acme/absent is not installed in ${site} (npm install @acme/absent)`,
    );
    installPackage('not-a-plugin', 'export default { hello: 1 };\n');
    expect(await attempt(`export default { plugins: ['not-a-plugin'] };`)).toMatch(
      /: not-a-plugin is not an AvatarGen plugin: its default export must be a plugin \(definePlugin from @avatargen\/core\) or a function that returns one$/,
    );
    installPackage('throws-on-load', 'throw new Error("boom at import");\n');
    expect(await attempt(`export default { plugins: ['throws-on-load'] };`)).toMatch(
      /plugin package throws-on-load failed to load: boom at import$/,
    );
    installPackage('picky', 'export default (o) => { if (!o) throw new Error("picky needs { mode }"); };\n');
    expect(await attempt(`export default { plugins: ['picky'] };`)).toMatch(
      /plugin package picky refused its options: picky needs \{ mode \}$/,
    );
    expect(await attempt(`export default { plugins: [42] };`)).toMatch(/plugins\[0\] must be a package name/);
    expect(await attempt(`export default { plugin: [] };`)).toMatch(/must export default \{ plugins: \[\.\.\.\] \}/);
    expect(await attempt(`export default { plugins: [ };`)).toMatch(/avatargen\.config\.mjs could not be loaded: /);
    expect(await attempt(`export default { plugins: [] };`, { AVATARGEN_CONFIG: 'nope.mjs' })).toBe(
      `AVATARGEN_CONFIG names ${join(site, 'nope.mjs')}, which does not exist`,
    );
  });
});

describe('avatargen plugins', () => {
  const run = async (args: string[], env: Record<string, string | undefined>) => {
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = { out: (l) => out.push(l), err: (l) => err.push(l), errRaw: () => {}, isTTY: false, env, cwd: site };
    const code = await main(['plugins', ...args], io);
    return { code, out: out.join('\n'), err: err.join('\n') };
  };

  it('lists the plugins, their ports and variables, secrets hidden; exits 2 naming each problem', async () => {
    const env = { OPENAI_API_KEY: 'sk-hidden-0123456789', OPENAI_IMAGE_MODEL: 'gpt-image-1' };
    const listed = await run([], env);
    expect(listed.code).toBe(0);
    expect(listed.out).toContain('Plugins (no avatargen.config file: the default choice from the environment):');
    expect(listed.out).toContain('@avatargen/provider-openai: fills imageProvider');
    expect(listed.out).toMatch(/OPENAI_API_KEY\s+set \(secret, hidden\)/);
    expect(listed.out).toMatch(/OPENAI_IMAGE_MODEL\s+set: gpt-image-1/);
    expect(listed.out).toMatch(/OPENAI_TIMEOUT_SECONDS\s+defaulted: 600/);
    expect(listed.out).toMatch(/OPENAI_BASE_URL\s+missing/);
    expect(listed.out).toMatch(/imageProvider\s+@avatargen\/provider-openai/);
    expect(listed.out).toMatch(/faceSource\s+none \(optional\)/);
    expect(listed.out).toContain('The configuration is valid.');
    expect(listed.out).not.toContain('sk-hidden-0123456789');

    const json = await run(['--json'], env);
    const report = JSON.parse(json.out);
    expect(report.configFile).toBeNull();
    expect(report.ports.imageProvider).toBe('@avatargen/provider-openai');
    expect(report.plugins.find((p: { name: string }) => p.name === '@avatargen/provider-openai').variables[0]).toEqual({
      name: 'OPENAI_API_KEY',
      status: 'set',
      secret: true,
      description: 'OpenAI API key.',
    });
    expect(json.out).not.toContain('sk-hidden-0123456789');

    const bad = await run([], { ...env, OPENAI_CONCURRENCY: '99', APP_PORT: 'x' });
    expect(bad.code).toBe(2);
    expect(bad.out).toContain('  - APP_PORT must be a whole number from 1 to 65535');
    expect(bad.out).toContain('  - OPENAI_CONCURRENCY must be a whole number from 1 to 50 (plugin @avatargen/provider-openai)');
  });

  it('says what is wrong with the config file in one line, without a stack trace', async () => {
    writeFileSync(join(site, 'avatargen.config.mjs'), `export default { plugins: ['@acme/absent'] };`);
    const failed = await run([], {});
    expect(failed.code).toBe(2);
    expect(failed.err).toContain('plugin package @acme/absent is not installed');
    expect(failed.err).not.toMatch(/\n\s+at /);
  });
});
