import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  buildContainer,
  ConfigError,
  createLogger,
  createRedactor,
  databaseUrl,
  definePlugin,
  loadConfig,
  loadEnvFile,
  readEnvFile,
  readPluginConfig,
  secretVariables,
  variables,
  z,
} from '../src/index.js';

const PASSWORD = 'AvatarGen2025!Secure#DB';

describe('config', () => {
  it('fills defaults', () => {
    const config = loadConfig({});
    expect(config.APP_PORT).toBe(8085);
    expect(config.MULTITHREAD_FLOWISE).toBe(5);
    // a plugin's variables are the plugin's: core keeps none of them
    expect((config as Record<string, unknown>).OPENAI_IMAGE_MODEL).toBeUndefined();
    expect(databaseUrl(config)).toBeUndefined();
  });

  it('names every bad variable and never prints its value', () => {
    let error: unknown;
    try {
      loadConfig({ APP_PORT: 'eighty', MULTITHREAD_FLOWISE: '0', DATABASE_URL: 'mysql://x', SECRET_KEY: 'short-secret-value' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toContain('APP_PORT must be a whole number from 1 to 65535');
    expect(message).toContain('MULTITHREAD_FLOWISE must be a whole number from 1 to 50');
    expect(message).toContain('DATABASE_URL must be a URL such as postgresql://');
    expect(message).toContain('SECRET_KEY must be at least 32 characters');
    expect(message).not.toContain('short-secret-value');
    expect(message).not.toContain('eighty');
  });

  it('requires the companions of DB_HOST', () => {
    expect(() => loadConfig({ DB_HOST: 'db.internal' })).toThrow(/DB_NAME and DB_USER are required when DB_HOST is set/);
  });

  it('builds a database URL from DB_* with the password encoded', () => {
    const config = loadConfig({ DB_HOST: 'db.internal', DB_NAME: 'avatar', DB_USER: 'app', DB_PASSWORD: PASSWORD });
    const url = databaseUrl(config) as string;
    expect(new URL(url).password).toBe(encodeURIComponent(PASSWORD));
    expect(decodeURIComponent(new URL(url).password)).toBe(PASSWORD);
  });
});

/** A third-party plugin's declaration: its own variables, one of them secret. */
const painter = definePlugin({
  name: '@acme/painter',
  provides: ['imageProvider'],
  config: z.object({
    PAINTER_URL: variables.url().describe('Painter service.'),
    PAINTER_TOKEN: z.string().min(16, { error: 'must be at least 16 characters' }).describe('Painter token.'),
    PAINTER_SIZE: variables.int(128, 1024).default(384).describe('Picture size.'),
    PAINTER_NOTE: variables.text().describe('A note.'),
  }),
  secrets: ['PAINTER_TOKEN'],
  register() {},
});
const TOKEN = 'pt_0123456789abcdef';

describe("plugins' variables", () => {
  it('are validated with core, every problem naming the variable and the plugin, never the value', () => {
    const error = (() => {
      try {
        loadConfig({ APP_PORT: 'x', PAINTER_URL: 'ftp://nope', PAINTER_TOKEN: 'short-token', PAINTER_SIZE: '99' }, [painter]);
      } catch (e) {
        return e as ConfigError;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error?.issues).toEqual([
      'APP_PORT must be a whole number from 1 to 65535',
      'PAINTER_URL must be a URL such as http://host:port (plugin @acme/painter)',
      'PAINTER_TOKEN must be at least 16 characters (plugin @acme/painter)',
      'PAINTER_SIZE must be a whole number from 128 to 1024 (plugin @acme/painter)',
    ]);
    expect(error?.message).not.toContain('short-token');
    expect(() => loadConfig({ PAINTER_URL: 'http://painter:1' }, [painter])).toThrow(/PAINTER_TOKEN is required \(plugin @acme\/painter\)/);
  });

  it('reach the plugin validated, with their status; a secret shows no value', () => {
    const config = loadConfig({ PAINTER_URL: 'http://painter:1', PAINTER_TOKEN: TOKEN, PAINTER_NOTE: '' }, [painter]) as Record<
      string,
      unknown
    >;
    expect(config).toMatchObject({ PAINTER_URL: 'http://painter:1', PAINTER_TOKEN: TOKEN, PAINTER_SIZE: 384, APP_PORT: 8085 });
    const report = readPluginConfig(painter, { PAINTER_URL: 'http://painter:1', PAINTER_TOKEN: TOKEN });
    expect(report.problems).toEqual([]);
    expect(report.variables).toEqual([
      { name: 'PAINTER_URL', status: 'set', secret: false, description: 'Painter service.', value: 'http://painter:1' },
      { name: 'PAINTER_TOKEN', status: 'set', secret: true, description: 'Painter token.' },
      { name: 'PAINTER_SIZE', status: 'defaulted', secret: false, description: 'Picture size.', value: 384 },
      { name: 'PAINTER_NOTE', status: 'missing', secret: false, description: 'A note.' },
    ]);
  });

  it('reach register as context.config, read from the environment given to the container', async () => {
    let seen: Record<string, unknown> | undefined;
    const plugin = definePlugin({
      ...painter,
      register(context) {
        seen = context.config;
      },
    });
    const base = { config: loadConfig({}), logger: createLogger({ LOG_LEVEL: 'silent' }) };
    const built = await buildContainer([plugin], { ...base, env: { PAINTER_URL: 'http://painter:1', PAINTER_TOKEN: TOKEN } }, []);
    expect(seen).toMatchObject({ PAINTER_SIZE: 384, PAINTER_TOKEN: TOKEN, APP_PORT: 8085 });
    expect(built.plugins[0]?.variables.map((v) => [v.name, v.status, v.value])).toEqual([
      ['PAINTER_URL', 'set', 'http://painter:1'],
      ['PAINTER_TOKEN', 'set', undefined],
      ['PAINTER_SIZE', 'defaulted', 384],
      ['PAINTER_NOTE', 'missing', undefined],
    ]);
    // nothing registers while any plugin's variables are bad
    let registered = false;
    const other = definePlugin({
      name: 'other',
      register() {
        registered = true;
      },
    });
    await expect(buildContainer([other, plugin], { ...base, env: {} }, [])).rejects.toThrow(
      /PAINTER_URL is required \(plugin @acme\/painter\)/,
    );
    expect(registered).toBe(false);
  });

  it('must declare their secrets among their variables', () => {
    expect(() => definePlugin({ name: 'bad', config: z.object({ A: z.string() }), secrets: ['B' as 'A'], register() {} })).toThrow(
      /secret B is not a variable/,
    );
  });
});

describe('.env files', () => {
  it('keeps # and $ inside quoted values (the password that took the old site down)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'avatargen-env-'));
    const file = join(dir, '.env');
    writeFileSync(
      file,
      [
        `DB_PASSWORD="${PASSWORD}"`,
        `SECRET_KEY='abc$HOME#not-a-comment-0123456789abcdef'`,
        'FLOWISE_API_KEY=plain#cut-here',
        '# a comment',
        'APP_PORT=9090 # trailing comment',
      ].join('\n'),
    );
    const { values, warnings } = readEnvFile(file);
    expect(values.DB_PASSWORD).toBe(PASSWORD);
    expect(values.SECRET_KEY).toBe('abc$HOME#not-a-comment-0123456789abcdef');
    expect(values.APP_PORT).toBe('9090');
    expect(values.FLOWISE_API_KEY).toBe('plain');
    expect(warnings).toEqual([
      'FLOWISE_API_KEY: unquoted value contains "#"; everything from it on is a comment. Quote the value.',
      'APP_PORT: unquoted value contains "#"; everything from it on is a comment. Quote the value.',
    ]);
    const env: Record<string, string | undefined> = { APP_PORT: '7000' };
    loadEnvFile(file, env);
    expect(env.APP_PORT).toBe('7000'); // the environment wins over the file
    expect(env.DB_PASSWORD).toBe(PASSWORD);
  });
});

describe('redaction', () => {
  it('removes every secret from text, including URL-encoded passwords', () => {
    const config = {
      DB_PASSWORD: PASSWORD,
      OPENAI_API_KEY: 'sk-test-1234567890',
      OPENAI_BASE_URL: 'http://not-a-secret:1',
      DATABASE_URL: `postgresql://app:${encodeURIComponent('p@ss#word')}@db:5432/x`,
    };
    const redact = createRedactor(config, ['OPENAI_API_KEY']);
    const text = `connect to postgresql://app:${encodeURIComponent(PASSWORD)}@db failed; key sk-test-1234567890; ${PASSWORD}; p@ss#word`;
    const out = redact(text);
    expect(out).not.toContain(PASSWORD);
    expect(out).not.toContain(encodeURIComponent(PASSWORD));
    expect(out).not.toContain('sk-test-1234567890');
    expect(out).not.toContain('p@ss#word');
    expect(out).toContain('[redacted]');
    // only declared secrets: without the plugin's list, its key is not known to be one
    expect(createRedactor(config)('key sk-test-1234567890')).toContain('sk-test-1234567890');
    // any postgres URL password, even one not in the config
    expect(redact('postgres://u:other-secret@h/db')).toBe('postgres://u:[redacted]@h/db');
  });

  it('keeps secrets out of every log line', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const config = loadConfig({ LOG_LEVEL: 'info', DB_PASSWORD: PASSWORD, PAINTER_URL: 'http://painter:1', PAINTER_TOKEN: TOKEN }, [
      painter,
    ]);
    const logger = createLogger(config, sink, secretVariables([painter]));
    logger.info({ header: `Bearer ${TOKEN}`, nested: { password: 'x', note: `pw ${PASSWORD}` } }, `calling with ${TOKEN}`);
    logger.error(new Error(`failed: ${PASSWORD}`));
    logger.info({ url: (config as Record<string, unknown>).PAINTER_URL }, 'painter');
    const all = lines.join('');
    expect(all).not.toContain(TOKEN);
    expect(all).not.toContain(PASSWORD);
    expect(all).toContain('http://painter:1'); // not a secret
    expect(all).toContain('[redacted]');
    expect(lines).toHaveLength(3);
  });
});
