import { existsSync, readFileSync } from 'node:fs';
import { parse as parseDotenv } from 'dotenv';
import { z } from 'zod';
import { ConfigError } from './errors.js';

const int = (min: number, max: number) =>
  z.preprocess(
    (v) => (typeof v === 'string' && v.trim() !== '' ? Number(v) : v),
    z
      .number({ error: `must be a whole number from ${min} to ${max}` })
      .int({ error: `must be a whole number from ${min} to ${max}` })
      .min(min, { error: `must be a whole number from ${min} to ${max}` })
      .max(max, { error: `must be a whole number from ${min} to ${max}` }),
  );
const optionalText = z.string().trim().min(1).optional().catch(undefined);
const url = z.url({ protocol: /^https?$/, error: 'must be a URL such as http://host:port' });
const pgUrl = z.url({ protocol: /^postgres(ql)?$/, error: 'must be a URL such as postgresql://user:password@host:5432/database' });
const bool = z.preprocess(
  (v) => (typeof v === 'string' ? ['1', 'true', 'yes', 'on'].includes(v.trim().toLowerCase()) : v),
  z.boolean(),
);

/**
 * Every environment variable the system reads, with defaults. Plugins read their part from the
 * validated config; `docs/configuration.md` is generated from this schema (descriptions included).
 */
export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development').describe('Runtime mode.'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('pino log level.'),
  DATA_DIR: z.string().default('./.avatargen').describe('Folder for zero-setup data: embedded PostgreSQL and filesystem storage.'),
  DATABASE_URL: pgUrl.optional().describe('PostgreSQL URL. Or use DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD. Neither: embedded PostgreSQL.'),
  DB_HOST: optionalText.describe('PostgreSQL host (instead of DATABASE_URL).'),
  DB_PORT: int(1, 65535).default(5432).describe('PostgreSQL port.'),
  DB_NAME: optionalText.describe('PostgreSQL database name.'),
  DB_USER: optionalText.describe('PostgreSQL user.'),
  DB_PASSWORD: z.string().optional().describe('PostgreSQL password. Quote it in .env when it holds # or $.'),
  APP_PORT: int(1, 65535).default(8085).describe('HTTP port of the website.'),
  APP_HOST: z.string().default('127.0.0.1').describe('Address the website listens on.'),
  SECRET_KEY: z.string().min(32, { error: 'must be at least 32 characters' }).optional().describe('Signs session cookies. Generated and kept in DATA_DIR when unset.'),
  TRUST_PROXY: bool.default(false).describe('Trust X-Forwarded-* headers (only behind a proxy you run, such as nginx).'),
  ADMIN_EMAIL: z.email().optional().describe('First admin account created by `avatargen start` on an empty database.'),
  ADMIN_PASSWORD: z.string().min(12, { error: 'must be at least 12 characters' }).optional().describe('Password of the first admin; random and printed once when unset.'),
  S3_ENDPOINT: url.optional().describe('S3 / MinIO endpoint. Unset: filesystem storage in DATA_DIR.'),
  S3_ACCESS_KEY: optionalText.describe('S3 access key.'),
  S3_SECRET_KEY: optionalText.describe('S3 secret key.'),
  S3_REGION: z.string().default('us-east-1').describe('S3 region.'),
  S3_BUCKET_NAME: z.string().default('avatar-images').describe('Bucket for generated images.'),
  S3_FACES_BUCKET_NAME: z.string().default('avatar-faces').describe('Private bucket of reference faces (male/, female/).'),
  S3_PUBLIC_URL_BASE: url.optional().describe('Public base URL of the storage, e.g. https://cdn.example.com; URLs are <base>/<bucket>/<key>.'),
  FLOWISE_URL: url.optional().describe('Flowise server. Unset: the offline provider-local makes personas and prompts.'),
  FLOWISE_API_KEY: optionalText.describe('Flowise API key (Bearer).'),
  FLOWISE_PERSONA_FLOW_ID: optionalText.describe('Flowise flow that returns personas.'),
  FLOWISE_PROMPT_FLOW_ID: optionalText.describe('Flowise flow that returns image prompts.'),
  FLOWISE_PERSONA_TIMEOUT_SECONDS: int(1, 3600).default(600).describe('Timeout of one persona call.'),
  FLOWISE_PROMPT_TIMEOUT_SECONDS: int(1, 3600).default(120).describe('Timeout of one prompt call.'),
  MULTITHREAD_FLOWISE: int(1, 50).default(5).describe('Persona provider calls in flight per worker process.'),
  OPENAI_API_KEY: optionalText.describe('OpenAI API key. Unset: the offline provider-local draws images.'),
  OPENAI_BASE_URL: url.optional().describe('OpenAI-compatible gateway base URL (default: the OpenAI API).'),
  OPENAI_IMAGE_MODEL: z.string().default('gpt-image-1.5').describe('Image model.'),
  OPENAI_MODERATION: z.enum(['auto', 'low']).default('auto').describe('Moderation level sent with image requests.'),
  OPENAI_CONCURRENCY: int(1, 50).default(4).describe('OpenAI image calls in flight per worker process.'),
  OPENAI_TIMEOUT_SECONDS: int(1, 3600).default(600).describe('Timeout of one image call.'),
  BASE_PROMPT_APPEND: z.string().optional().describe('Text appended to every image prompt.'),
  IMAGE_CONCURRENCY: int(1, 50).default(4).describe('Image provider calls in flight per worker process.'),
  IMAGE_JOBS_PER_WORKER: int(1, 100).default(8).describe('Personas whose images one worker process makes at once.'),
  IMAGE_PROCESSOR_THREADS: int(0, 64).default(0).describe('Threads of the image processing pool (0: one per core).'),
  JOB_RETRY_LIMIT: int(0, 20).default(3).describe('Attempts of a provider call whose answer was unusable (malformed, not an image) before a batch or image is given up. Outages are retried for the retry windows below instead.'),
  JOB_RETRY_DELAY_MS: int(0, 600_000).default(2000).describe('First backoff delay between attempts; doubles each time, with jitter.'),
  JOB_RETRY_MAX_DELAY_MS: int(0, 600_000).default(30_000).describe('Longest backoff delay between two attempts.'),
  PROVIDER_RETRY_WINDOW_SECONDS: int(0, 86_400).default(600).describe('How long a provider outage (connection refused or reset, timeout, 5xx, 429) is retried before a batch or persona is given up.'),
  STORAGE_RETRY_WINDOW_SECONDS: int(0, 86_400).default(600).describe('How long a storage outage (read-only, full, permission or I/O errors, S3 5xx or unreachable) is retried before a persona is given up.'),
  DATABASE_WAIT_SECONDS: int(0, 86_400).default(0).describe('How long a starting process waits for PostgreSQL to be reachable (0: for ever, logging once).'),
  JOB_EXPIRE_SECONDS: int(2, 86_000).default(3600).describe('A job running longer (its worker died) goes back to the queue.'),
});

export type AvatarGenConfig = z.output<typeof configSchema>;
export type ConfigInput = Partial<Record<keyof AvatarGenConfig, unknown>> & Record<string, unknown>;

/** Variables whose values never appear in an error, a log line or a page. */
export const SECRET_VARIABLES = [
  'DATABASE_URL',
  'DB_PASSWORD',
  'SECRET_KEY',
  'ADMIN_PASSWORD',
  'S3_ACCESS_KEY',
  'S3_SECRET_KEY',
  'FLOWISE_API_KEY',
  'OPENAI_API_KEY',
] as const;

/**
 * Validates the configuration (usually `process.env`). Empty strings count as unset. The error
 * lists every bad variable by name, with the reason, and never its value.
 */
export function loadConfig(env: ConfigInput = process.env): AvatarGenConfig {
  const input: Record<string, unknown> = {};
  for (const key of Object.keys(configSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = String(issue.path[0] ?? 'config');
        const message = issue.code === 'invalid_type' && input[name] === undefined ? 'is required' : issue.message;
        return `${name} ${message}`;
      }),
    );
  }
  const config = parsed.data;
  const issues: string[] = [];
  if (config.S3_ENDPOINT && (!config.S3_ACCESS_KEY || !config.S3_SECRET_KEY)) {
    issues.push('S3_ACCESS_KEY and S3_SECRET_KEY are required when S3_ENDPOINT is set');
  }
  if (config.FLOWISE_URL && (!config.FLOWISE_PERSONA_FLOW_ID || !config.FLOWISE_PROMPT_FLOW_ID)) {
    issues.push('FLOWISE_PERSONA_FLOW_ID and FLOWISE_PROMPT_FLOW_ID are required when FLOWISE_URL is set');
  }
  if (!config.DATABASE_URL && config.DB_HOST && (!config.DB_NAME || !config.DB_USER)) {
    issues.push('DB_NAME and DB_USER are required when DB_HOST is set');
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}

/** The PostgreSQL URL from DATABASE_URL or DB_*, or undefined when neither is set (embedded PostgreSQL). */
export function databaseUrl(config: AvatarGenConfig): string | undefined {
  if (config.DATABASE_URL) return config.DATABASE_URL;
  if (!config.DB_HOST) return undefined;
  const auth = `${encodeURIComponent(config.DB_USER ?? '')}${
    config.DB_PASSWORD ? `:${encodeURIComponent(config.DB_PASSWORD)}` : ''
  }`;
  return `postgresql://${auth}@${config.DB_HOST}:${config.DB_PORT}/${encodeURIComponent(config.DB_NAME ?? '')}`;
}

export interface EnvFileResult {
  /** Variables read from the file (those already in the environment are kept as they are). */
  values: Record<string, string>;
  /** Lines that look like a mistake, e.g. an unquoted value cut at a #. */
  warnings: string[];
}

/**
 * Reads a .env file. Values in quotes keep `#` and `$` as they are (no comment, no expansion).
 * An unquoted value with ` #` is cut there by the dotenv rules; we warn about it by name.
 */
export function readEnvFile(path: string): EnvFileResult {
  if (!existsSync(path)) return { values: {}, warnings: [] };
  const source = readFileSync(path, 'utf8');
  const values = parseDotenv(source);
  const warnings: string[] = [];
  for (const line of source.split(/\r?\n/)) {
    const match = /^\s*(?:export\s+)?([\w.-]+)\s*=\s*(.*)$/.exec(line);
    if (!match) continue;
    const [, name, raw = ''] = match;
    if (!/^["'`]/.test(raw.trim()) && raw.includes('#')) {
      warnings.push(`${name}: unquoted value contains "#"; everything from it on is a comment. Quote the value.`);
    }
  }
  return { values, warnings };
}

/** Loads a .env file into `env` without overriding variables already set; returns the warnings. */
export function loadEnvFile(path = '.env', env: Record<string, string | undefined> = process.env): string[] {
  const { values, warnings } = readEnvFile(path);
  for (const [key, value] of Object.entries(values)) {
    if (env[key] === undefined) env[key] = value;
  }
  return warnings;
}

/**
 * Returns a function that replaces every secret value of the config (and the password inside a
 * database URL) with [redacted]. Used on every log line and every error that leaves the process.
 */
export function createRedactor(config: Partial<Record<string, unknown>>): (text: string) => string {
  const secrets = new Set<string>();
  for (const name of SECRET_VARIABLES) {
    const value = config[name];
    if (typeof value === 'string' && value.length >= 4) {
      secrets.add(value);
      secrets.add(encodeURIComponent(value));
    }
  }
  const urls = [config.DATABASE_URL].filter((v): v is string => typeof v === 'string');
  for (const value of urls) {
    try {
      const password = new URL(value).password;
      if (password.length > 0) {
        secrets.add(password);
        secrets.add(decodeURIComponent(password));
      }
    } catch {
      // not a URL: the whole value is already listed
    }
  }
  const list = [...secrets].sort((a, b) => b.length - a.length);
  return (text: string) => {
    let out = text;
    for (const secret of list) out = out.split(secret).join('[redacted]');
    // A password in any postgres URL that slipped through (e.g. from a driver error).
    return out.replace(/(postgres(?:ql)?:\/\/[^:/@\s]+:)[^@\s]+@/g, '$1[redacted]@');
  };
}
