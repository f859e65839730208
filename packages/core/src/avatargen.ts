import type { Logger } from 'pino';
import { type AvatarGenConfig, type ConfigInput, createRedactor, databaseUrl, loadConfig, secretVariables } from './config.js';
import { openDatabase, type Orm, runMigrations, waitForDatabase } from './db/orm.js';
import { ExportsService, publicBaseUrl } from './exports/index.js';
import { createLogger } from './logger.js';
import { Pipeline, type PipelinePorts } from './pipeline/engine.js';
import { type AvatarGenPlugin, buildContainer, type LoadedPlugin, type PortOwner, runClosers } from './plugin.js';
import type { PortName, PortTypes } from './ports.js';
import { Doctor } from './services/doctor.js';
import { PersonasService } from './services/personas.js';
import { QualityService } from './services/quality.js';
import { LoginAttempts } from './services/login-attempts.js';
import { SessionStore } from './services/sessions.js';
import { SettingsService } from './services/settings.js';
import { TasksService } from './services/tasks.js';
import { UsersService } from './services/users.js';

export interface CreateAvatarGenOptions {
  /** A validated config, or raw variables (e.g. process.env) to validate, plugins' variables included. */
  config?: AvatarGenConfig | ConfigInput;
  /**
   * The raw variables the plugins' own variables are read from. Default: `config` when it is raw,
   * else process.env overlaid with `config` (which holds them when it came from
   * `loadConfig(env, plugins)`; pass `env` then, so defaults show as defaulted).
   */
  env?: ConfigInput;
  plugins: readonly AvatarGenPlugin[];
  logger?: Logger;
  /** PostgreSQL URL; default: from the config (DATABASE_URL or DB_*). */
  databaseUrl?: string;
  /** Run pending migrations on start. Default true. */
  migrate?: boolean;
  /** Pipeline tuning (tests and benchmarks shorten these). */
  pipeline?: { reconcileIntervalMs?: number; maintenanceIntervalSeconds?: number; pollingIntervalSeconds?: number; jobAttempts?: number };
}

export interface AvatarGen {
  config: AvatarGenConfig;
  logger: Logger;
  orm: Orm;
  tasks: TasksService;
  personas: PersonasService;
  settings: SettingsService;
  users: UsersService;
  sessions: SessionStore;
  /** Failed-login counters shared by every process of the site. */
  loginAttempts: LoginAttempts;
  exports: ExportsService;
  /** Checks the object storage against the database (lost objects, orphans) and repairs it. */
  doctor: Doctor;
  /** Quality reports: near-duplicate texts, shared names and near-identical pictures per dataset. */
  quality: QualityService;
  /** Start taking generation work in this process (`start()`), or stop it (`stop()`). */
  worker: { start(): Promise<void>; stop(timeoutMs?: number): Promise<void> };
  pipeline: Pipeline;
  port<K extends PortName>(name: K): PortTypes[K];
  hasPort(name: PortName): boolean;
  /** Replaces every configured secret (core's and the plugins') in a text with [redacted]. */
  redact(text: string): string;
  /** The plugins as loaded (ports filled, variables with secrets hidden) and who fills each port. */
  plugins: { list: readonly LoadedPlugin[]; ports: Partial<Record<PortName, PortOwner>> };
  /** Stops the worker, closes the queue, the database and every plugin resource. */
  close(): Promise<void>;
}

/**
 * Builds an Avatar Data Generator: validates the config, fills the ports from the plugins (later
 * plugins override earlier ones), opens the database, runs migrations and connects the queue.
 */
export async function createAvatarGen(options: CreateAvatarGenOptions): Promise<AvatarGen> {
  const raw = options.config && isValidated(options.config) ? undefined : ((options.config as ConfigInput) ?? process.env);
  const env: ConfigInput = options.env ?? raw ?? { ...process.env, ...(options.config as AvatarGenConfig) };
  const config: AvatarGenConfig = raw ? loadConfig(raw, options.plugins) : (options.config as AvatarGenConfig);
  const secrets = secretVariables(options.plugins);
  const logger = options.logger ?? createLogger(config, undefined, secrets);
  const url = options.databaseUrl ?? databaseUrl(config);
  if (!url) {
    throw new Error(
      'No database: set DATABASE_URL (or DB_HOST, DB_NAME, DB_USER), or start one with startEmbeddedPostgres from @avatargen/embedded-postgres',
    );
  }
  const plugins = await buildContainer(options.plugins, { config, logger, env });
  let orm: Orm | undefined;
  let pipeline: Pipeline | undefined;
  try {
    await waitForDatabase(url, { logger, timeoutMs: config.DATABASE_WAIT_SECONDS * 1000 });
    orm = await openDatabase({ url, logger });
    if (options.migrate !== false) await runMigrations(orm, url);
    const ports: PipelinePorts = {
      personaProvider: plugins.resolvePort('personaProvider'),
      imagePromptProvider: plugins.resolvePort('imagePromptProvider'),
      imageProvider: plugins.resolvePort('imageProvider'),
      imageProcessor: plugins.resolvePort('imageProcessor'),
      objectStorage: plugins.resolvePort('objectStorage'),
      faceSource: plugins.hasPort('faceSource') ? plugins.resolvePort('faceSource') : undefined,
    };
    pipeline = new Pipeline({
      orm,
      databaseUrl: url,
      config: plugins.config,
      secrets,
      logger,
      ports,
      owners: plugins.owners,
      ...options.pipeline,
    });
    await pipeline.start();
    const settings = new SettingsService(orm);
    const tasks = new TasksService(orm, settings, pipeline, ports.objectStorage, plugins.owners);
    const personas = new PersonasService(orm, ports.objectStorage);
    const quality = new QualityService(orm, tasks);
    const openOrm = orm;
    const openPipeline = pipeline;
    let closed = false;
    return {
      config,
      logger,
      orm,
      tasks,
      personas,
      settings,
      users: new UsersService(orm, logger),
      sessions: new SessionStore(orm),
      loginAttempts: new LoginAttempts(orm),
      exports: new ExportsService(tasks, personas, ports.objectStorage, publicBaseUrl(plugins.config), quality),
      doctor: new Doctor(orm, ports.objectStorage, tasks),
      quality,
      pipeline,
      worker: {
        start: () => openPipeline.startWorker(),
        stop: (timeoutMs) => openPipeline.stop(timeoutMs),
      },
      port: (name) => plugins.resolvePort(name),
      hasPort: (name) => plugins.hasPort(name),
      plugins: { list: plugins.plugins, ports: plugins.owners },
      redact: createRedactor(plugins.config, secrets),
      async close() {
        if (closed) return;
        closed = true;
        await openPipeline.stop();
        await openOrm.close();
        await runClosers(plugins.closers);
      },
    };
  } catch (error) {
    await pipeline?.stop().catch(() => undefined);
    await orm?.close().catch(() => undefined);
    await runClosers(plugins.closers);
    throw error;
  }
}

function isValidated(config: AvatarGenConfig | ConfigInput): config is AvatarGenConfig {
  // A validated config always has these defaults filled in.
  return typeof config.APP_PORT === 'number' && typeof config.MULTITHREAD_FLOWISE === 'number';
}
