import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ConfigError, createLogger, createRedactor, databaseUrl, loadConfig, loadEnvFile, readEnvFile } from '../src/index.js';

const PASSWORD = 'AvatarGen2025!Secure#DB';

describe('config', () => {
  it('fills defaults', () => {
    const config = loadConfig({});
    expect(config.APP_PORT).toBe(8085);
    expect(config.MULTITHREAD_FLOWISE).toBe(5);
    expect(config.OPENAI_IMAGE_MODEL).toBe('gpt-image-1.5');
    expect(databaseUrl(config)).toBeUndefined();
  });

  it('names every bad variable and never prints its value', () => {
    let error: unknown;
    try {
      loadConfig({ APP_PORT: 'eighty', MULTITHREAD_FLOWISE: '0', S3_ENDPOINT: 'minio:9000', SECRET_KEY: 'short-secret-value' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toContain('APP_PORT must be a whole number from 1 to 65535');
    expect(message).toContain('MULTITHREAD_FLOWISE must be a whole number from 1 to 50');
    expect(message).toContain('S3_ENDPOINT must be a URL');
    expect(message).toContain('SECRET_KEY must be at least 32 characters');
    expect(message).not.toContain('short-secret-value');
    expect(message).not.toContain('eighty');
  });

  it('requires the companions of a service it switches on', () => {
    expect(() => loadConfig({ S3_ENDPOINT: 'http://127.0.0.1:9000' })).toThrow(/S3_ACCESS_KEY and S3_SECRET_KEY are required/);
    expect(() => loadConfig({ FLOWISE_URL: 'http://127.0.0.1:3000' })).toThrow(/FLOWISE_PERSONA_FLOW_ID/);
  });

  it('builds a database URL from DB_* with the password encoded', () => {
    const config = loadConfig({ DB_HOST: 'db.internal', DB_NAME: 'avatar', DB_USER: 'app', DB_PASSWORD: PASSWORD });
    const url = databaseUrl(config) as string;
    expect(new URL(url).password).toBe(encodeURIComponent(PASSWORD));
    expect(decodeURIComponent(new URL(url).password)).toBe(PASSWORD);
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
      DATABASE_URL: `postgresql://app:${encodeURIComponent('p@ss#word')}@db:5432/x`,
    };
    const redact = createRedactor(config);
    const text = `connect to postgresql://app:${encodeURIComponent(PASSWORD)}@db failed; key sk-test-1234567890; ${PASSWORD}; p@ss#word`;
    const out = redact(text);
    expect(out).not.toContain(PASSWORD);
    expect(out).not.toContain(encodeURIComponent(PASSWORD));
    expect(out).not.toContain('sk-test-1234567890');
    expect(out).not.toContain('p@ss#word');
    expect(out).toContain('[redacted]');
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
    const logger = createLogger({ LOG_LEVEL: 'info', OPENAI_API_KEY: 'sk-live-abcdef123456', DB_PASSWORD: PASSWORD }, sink);
    logger.info({ header: 'Bearer sk-live-abcdef123456', nested: { password: 'x', note: `pw ${PASSWORD}` } }, 'calling with sk-live-abcdef123456');
    logger.error(new Error(`failed: ${PASSWORD}`));
    const all = lines.join('');
    expect(all).not.toContain('sk-live-abcdef123456');
    expect(all).not.toContain(PASSWORD);
    expect(all).toContain('[redacted]');
    expect(lines).toHaveLength(2);
  });
});
