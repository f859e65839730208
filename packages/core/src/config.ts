import { existsSync, readFileSync } from 'node:fs';
import { parse as parseDotenv } from 'dotenv';
import { z } from 'zod';
import { ConfigError } from './errors.js';

const range = (min: number, max: number) => `must be a whole number from ${min} to ${max}`;

/**
 * Field builders for configuration schemas, core's and plugins' alike: values arrive as strings
 * from the environment or `.env`; empty strings count as unset.
 */
export const variables = {
  /** A whole number from min to max. */
  int: (min: number, max: number) =>
    z.preprocess(
      (v) => (typeof v === 'string' && v.trim() !== '' ? Number(v) : v),
      z
        .number({ error: range(min, max) })
        .int({ error: range(min, max) })
        .min(min, { error: range(min, max) })
        .max(max, { error: range(min, max) }),
    ),
  /** Optional text, trimmed; blank counts as unset. */
  text: () => z.string().trim().min(1).optional().catch(undefined),
  /** An http(s) URL. */
  url: () => z.url({ protocol: /^https?$/, error: 'must be a URL such as http://host:port' }),
  /** 1/true/yes/on, anything else false. */
  flag: () => z.preprocess((v) => (typeof v === 'string' ? ['1', 'true', 'yes', 'on'].includes(v.trim().toLowerCase()) : v), z.boolean()),
};

const int = variables.int;
const optionalText = variables.text();
const pgUrl = z.url({ protocol: /^postgres(ql)?$/, error: 'must be a URL such as postgresql://user:password@host:5432/database' });
const bool = variables.flag();

/**
 * The environment variables core and the host read, with defaults. Each plugin declares its own
 * (`definePlugin({ config, secrets })`); `docs/configuration.md` is generated from these schemas.
 */
export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development').describe('Runtime mode.'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('pino log level.'),
  LOG_FORMAT: z
    .enum(['auto', 'json', 'pretty'])
    .default('auto')
    .describe('Log lines as JSON (for journald and log shippers) or pretty (for people); auto: pretty on a terminal, JSON otherwise.'),
  DATA_DIR: z.string().default('./.avatargen').describe('Folder for zero-setup data: embedded PostgreSQL and filesystem storage.'),
  DATABASE_URL: pgUrl
    .optional()
    .describe('PostgreSQL URL. Or use DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD. Neither: embedded PostgreSQL.'),
  DB_HOST: optionalText.describe('PostgreSQL host (instead of DATABASE_URL).'),
  DB_PORT: int(1, 65535).default(5432).describe('PostgreSQL port.'),
  DB_NAME: optionalText.describe('PostgreSQL database name.'),
  DB_USER: optionalText.describe('PostgreSQL user.'),
  DB_PASSWORD: z.string().optional().describe('PostgreSQL password. Quote it in .env when it holds # or $.'),
  APP_PORT: int(1, 65535).default(8085).describe('HTTP port of the website.'),
  APP_HOST: z.string().default('127.0.0.1').describe('Address the website listens on.'),
  PUBLIC_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http or https URL such as https://avatars.example.com' })
    .optional()
    .describe('Public base URL of the website, for absolute picture links in the JSON and CSV exports (default http://APP_HOST:APP_PORT).'),
  SECRET_KEY: z
    .string()
    .min(32, { error: 'must be at least 32 characters' })
    .optional()
    .describe('Signs session cookies. Generated and kept in DATA_DIR when unset.'),
  TRUST_PROXY: bool.default(false).describe('Trust X-Forwarded-* headers (only behind a proxy you run, such as nginx).'),
  ADMIN_EMAIL: z.email().optional().describe('First admin account created by `avatargen start` on an empty database.'),
  ADMIN_PASSWORD: z
    .string()
    .min(12, { error: 'must be at least 12 characters' })
    .optional()
    .describe('Password of the first admin; random and printed once when unset.'),
  MULTITHREAD_FLOWISE: int(1, 50)
    .default(5)
    .describe("Persona provider calls in flight per worker process (whichever plugin provides personas; the name is the old system's)."),
  IMAGE_CONCURRENCY: int(1, 50).default(4).describe('Image provider calls in flight per worker process.'),
  IMAGE_JOBS_PER_WORKER: int(1, 100).default(8).describe('Personas whose images one worker process makes at once.'),
  IMAGE_PROCESSOR_THREADS: int(0, 64).default(0).describe('Threads of the image processing pool (0: one per core).'),
  JOB_RETRY_LIMIT: int(0, 20)
    .default(3)
    .describe(
      'Attempts of a provider call whose answer was unusable (malformed, not an image) before a batch or image is given up. Outages are retried for the retry windows below instead.',
    ),
  JOB_RETRY_DELAY_MS: int(0, 600_000).default(2000).describe('First backoff delay between attempts; doubles each time, with jitter.'),
  JOB_RETRY_MAX_DELAY_MS: int(0, 600_000).default(30_000).describe('Longest backoff delay between two attempts.'),
  PROVIDER_RETRY_WINDOW_SECONDS: int(0, 86_400)
    .default(600)
    .describe(
      'How long a provider outage (connection refused or reset, timeout, 5xx, 429) is retried before a batch or persona is given up.',
    ),
  STORAGE_RETRY_WINDOW_SECONDS: int(0, 86_400)
    .default(600)
    .describe(
      'How long a storage outage (read-only, full, permission or I/O errors, S3 5xx or unreachable) is retried before a persona is given up.',
    ),
  DATABASE_WAIT_SECONDS: int(0, 86_400)
    .default(0)
    .describe('How long a starting process waits for PostgreSQL to be reachable (0: for ever, logging once).'),
  JOB_EXPIRE_SECONDS: int(2, 86_000).default(3600).describe('A job running longer (its worker died) goes back to the queue.'),
});

export type AvatarGenConfig = z.output<typeof configSchema>;
export type ConfigInput = Partial<Record<keyof AvatarGenConfig, unknown>> & Record<string, unknown>;

/** Variables whose values never appear in an error, a log line or a page. */
export const SECRET_VARIABLES = ['DATABASE_URL', 'DB_PASSWORD', 'SECRET_KEY', 'ADMIN_PASSWORD'] as const;

/** What a plugin declares about its configuration (see `definePlugin`). */
export interface ConfigDeclaration {
  name: string;
  /** A zod object keyed by variable name; `.describe()` texts become the generated docs. */
  config?: z.ZodObject;
  /** Variables of `config` whose values never appear in a log line, an error or a page. */
  secrets?: readonly string[];
}

export type VariableStatus = 'set' | 'defaulted' | 'missing';

/** One variable of a plugin, as `avatargen plugins` and the settings page show it. */
export interface VariableReport {
  name: string;
  /** set: given in the environment or .env; defaulted: the schema's default; missing: unset, no default. */
  status: VariableStatus;
  secret: boolean;
  description?: string;
  /** The validated value; never present for a secret. */
  value?: unknown;
}

export interface PluginConfig {
  /** The plugin's validated variables (defaults filled in). */
  values: Record<string, unknown>;
  variables: VariableReport[];
  /** One line per bad variable, naming it and the plugin; empty when valid. */
  problems: string[];
}

/** The given variables of a schema, empty strings counting as unset. */
function pick(schema: z.ZodObject, env: ConfigInput): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  return input;
}

function describeIssues(issues: readonly z.core.$ZodIssue[], input: Record<string, unknown>, suffix = ''): string[] {
  return issues.map((issue) => {
    const name = String(issue.path[0] ?? 'config');
    const message = issue.code === 'invalid_type' && input[name] === undefined ? 'is required' : issue.message;
    return `${name} ${message}${suffix}`;
  });
}

/** Validates one plugin's variables from raw variables; reports each variable's status. */
export function readPluginConfig(plugin: ConfigDeclaration, env: ConfigInput = process.env): PluginConfig {
  if (!plugin.config) return { values: {}, variables: [], problems: [] };
  const schema = plugin.config;
  const secrets = new Set(plugin.secrets ?? []);
  const input = pick(schema, env);
  const parsed = schema.safeParse(input);
  const values = parsed.success ? (parsed.data as Record<string, unknown>) : {};
  const variables = Object.entries(schema.shape).map(([name, field]): VariableReport => {
    const value = parsed.success ? values[name] : input[name];
    const status: VariableStatus = input[name] !== undefined ? 'set' : value !== undefined ? 'defaulted' : 'missing';
    const report: VariableReport = { name, status, secret: secrets.has(name) };
    const description = (field as z.ZodType).description;
    if (description) report.description = description;
    if (!report.secret && value !== undefined) report.value = value;
    return report;
  });
  const problems = parsed.success ? [] : describeIssues(parsed.error.issues, input, ` (plugin ${plugin.name})`);
  return { values, variables, problems };
}

/** Core's secret variables and those the plugins declare. */
export function secretVariables(plugins: readonly ConfigDeclaration[] = []): string[] {
  return [...new Set([...SECRET_VARIABLES, ...plugins.flatMap((p) => p.secrets ?? [])])];
}

/**
 * Validates the configuration (usually `process.env`): core's variables, and those of the plugins
 * given, whose validated values are merged in. Empty strings count as unset. The error lists every
 * bad variable by name (and its plugin), with the reason, and never its value.
 */
export function loadConfig(env: ConfigInput = process.env, plugins: readonly ConfigDeclaration[] = []): AvatarGenConfig {
  const input = pick(configSchema, env);
  const parsed = configSchema.safeParse(input);
  const issues = parsed.success ? [] : describeIssues(parsed.error.issues, input);
  if (parsed.success) {
    const config = parsed.data;
    if (!config.DATABASE_URL && config.DB_HOST && (!config.DB_NAME || !config.DB_USER)) {
      issues.push('DB_NAME and DB_USER are required when DB_HOST is set');
    }
  }
  const own: Record<string, unknown> = {};
  for (const plugin of plugins) {
    const result = readPluginConfig(plugin, env);
    issues.push(...result.problems);
    Object.assign(own, result.values);
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return { ...own, ...(parsed.data as AvatarGenConfig) };
}

/** The PostgreSQL URL from DATABASE_URL or DB_*, or undefined when neither is set (embedded PostgreSQL). */
export function databaseUrl(config: AvatarGenConfig): string | undefined {
  if (config.DATABASE_URL) return config.DATABASE_URL;
  if (!config.DB_HOST) return undefined;
  const auth = `${encodeURIComponent(config.DB_USER ?? '')}${config.DB_PASSWORD ? `:${encodeURIComponent(config.DB_PASSWORD)}` : ''}`;
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
 * Returns a function that replaces every secret value of the config (core's secrets, and the
 * plugins' given in `secretNames`) and the password inside a database URL with [redacted]. Used on every log line and every error that leaves the process.
 */
export function createRedactor(
  config: Partial<Record<string, unknown>>,
  secretNames: readonly string[] = SECRET_VARIABLES,
): (text: string) => string {
  const secrets = new Set<string>();
  for (const name of new Set([...SECRET_VARIABLES, ...secretNames])) {
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
