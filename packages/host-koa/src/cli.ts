import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pipeline as pipe } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import {
  type AvatarGenConfig,
  ConfigError,
  type DoctorReport,
  createLogger,
  databaseUrl,
  extractXmp,
  isDatabaseUnavailable,
  isFinal,
  formatCost,
  loadConfig,
  loadEnvFile,
  openDatabase,
  type Orm,
  readXmp,
  runMigrations,
  type TaskView,
  thumbnailSource,
  UsersService,
  type UserView,
  ValidationError,
  validateGenerationRequest,
} from '@avatargen/core';
import { type EmbeddedPostgres, startEmbeddedPostgres } from '@avatargen/embedded-postgres';
import type { Logger } from 'pino';
import { type Backend, createHostApp, listen, startBackend } from './host.js';
import { logDestination } from './log-format.js';
import { describePlugins, formatPlugins } from './plugin-report.js';
import { readSite, type Site } from './site.js';

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  /** For progress bars: write without a newline. */
  errRaw: (text: string) => void;
  isTTY: boolean;
  env: Record<string, string | undefined>;
  cwd: string;
}

const defaultIo = (): Io => ({
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  errRaw: (text) => process.stderr.write(text),
  isTTY: process.stderr.isTTY === true,
  env: process.env,
  cwd: process.cwd(),
});

const HELP: Record<string, string> = {
  main: `avatargen: synthetic persona datasets (website, API, workers)

Usage: avatargen <command> [options]

Commands:
  start                  web + worker in one process, zero setup (embedded PostgreSQL, local storage)
  web                    the website and JSON API only
  worker                 generation work only (run as many as you like on one database)
  migrate                apply database migrations and exit
  user create            create an account
  user set-password      change a password
  user disable           disable an account (its sessions and tokens stop working)
  generate               run one task to completion headless and write its ZIP
  doctor                 check the stored images against the database; --fix repairs
  plugins                list the plugins, the ports they fill and their configuration
  verify                 read the provenance marks of pictures back; --json for a report

Run "avatargen <command> --help" for the options of a command.
Configuration comes from the environment and a .env file in the current folder; see docs/configuration.md.
Plugins come from avatargen.config.{ts,mjs,js} in the current folder (or AVATARGEN_CONFIG); see docs/plugins.md.`,
  verify: `avatargen verify <file-or-folder> [--json]

Reads each picture (PNG, JPEG, WebP; a folder is searched, with its subfolders) and reports
whether it carries the provenance mark (XMP Iptc4xmpExt:DigitalSourceType trainedAlgorithmicMedia,
see docs/provenance.md), the dataset and persona ids it names, and whether that dataset and
persona exist in this site's database. Exit codes: 0 every picture is marked, 1 one or more are
not (or none was found), 2 a usage error.`,
  plugins: `avatargen plugins [--json]

Lists the plugins this site loads (from avatargen.config.{ts,mjs,js} or AVATARGEN_CONFIG, and the
host's defaults for the ports they leave empty), the ports each one fills, and each plugin's
variables: set, defaulted or missing, with their values (never a secret's). Starts nothing: no
database, no plugin registered. Exit codes: 0 the configuration is valid, 2 it is not (each
problem named), 1 an error.`,
  start: `avatargen start

Web server and worker in one process. With nothing configured: embedded PostgreSQL and
filesystem storage under DATA_DIR (default ./.avatargen), offline provider-local, a generated
SECRET_KEY kept in DATA_DIR/secret-key. On an empty database the first admin account is made
from ADMIN_EMAIL/ADMIN_PASSWORD, or admin@localhost with a random password printed once.
Listens on APP_HOST:APP_PORT (127.0.0.1:8085). SIGTERM/SIGINT: stops taking requests, lets
running jobs finish (or go back to the queue) and exits.`,
  web: `avatargen web

The website and JSON API without generation work. Run several behind nginx: sessions are in
PostgreSQL. Pair it with "avatargen worker" processes.`,
  worker: `avatargen worker

Takes generation work from the queue in PostgreSQL. Any number of workers on any number of
machines share the work. SIGTERM: finishes running jobs (or returns them to the queue).`,
  migrate: `avatargen migrate

Applies pending database migrations and exits. Safe to run from several processes at once.`,
  user: `avatargen user <create|set-password|disable> --email <email> [options]

  user create --email <email> [--password <pw> | --password-stdin] [--admin]
      A random password is generated and printed once when none is given.
  user set-password --email <email> [--password <pw> | --password-stdin]
      Signs the account out everywhere (its sessions end); its API tokens stay.
  user disable --email <email>
      The account cannot log in; its sessions end and its API tokens stop working.
  user enable --email <email>

Passwords: at least 12 characters and at most 72 bytes (bcrypt's limit).`,
  generate: `avatargen generate --description <text> [options]

Runs one generation task in this process (with a worker) and writes the dataset as a ZIP.

  --description, -d <text>   who the personas are (required)
  --count, -n <number>       personas, 10-300 (default 10)
  --images, -i <number>      images per persona: 4, 8, 12, 16 or 20 (default 4)
  --language, -l <language>  bio language, by name or code: Portuguese, pt, pt-BR (default en)
  --out, -o <file>           ZIP to write (default DATA_DIR/exports/avatargen-<task id>.zip)
  --user, -u <email>         the account the task belongs to (default: the first admin; on an
                             empty database it is made, as "avatargen start" does)

Demographic targets (optional; each persona gets an exact quota; shares are weights, percentages
must add up to 100, counts that add up to --count give exactly those counts):
  --genders <split>          50/50, "female 60%, male 40%", "f 7, m 3" or women
  --ages <bands>             25-40, "18-29 40%, 30-49 60%" or 65+ (bands must not overlap)
  --ethnicities <mix>        "Portuguese 70%, Brazilian 30%", or names alone for equal shares
  --locations <places>       "Lisbon; Porto, Portugal" (split on ";" when there is one, else on ",")

  e.g. avatargen generate -d "Nurses in Porto" -n 20 --genders "f 14, m 6" --ages "25-40 50%, 41-60 50%"

Exit codes:
  0   the task completed: every persona has every image; the ZIP is written
  1   the task failed or was cancelled (no ZIP), or an error
  2   a refused command line or configuration: nothing ran
  3   the task ended partial: the ZIP of what was made is written, one line on stderr says
      what is missing (retry the task on the website or with POST /api/v1/tasks/<id>/retry)`,
  doctor: `avatargen doctor [--fix] [--json] [--limit <n>]

Checks the object storage against the database: rows (base images and pictures) whose object
is missing, and objects under tasks/ that no row references (including those of deleted tasks).
Tasks that are pending or running are skipped: their objects are written just before their rows.
The storage is listed once, never read object by object; it works on S3 and on the filesystem.

  --fix          delete the orphan objects; for lost objects remove the rows, set the personas'
                 images back to pending and retry their tasks, which then make only what is
                 missing (a cancelled task stays cancelled: retry it yourself); also remove the
                 filesystem storage's leftover temporary files
  --json         print the report as JSON on stdout
  --limit <n>    list at most n items of each kind (default 20); the counts are always complete

Exit codes: 0 healthy (or everything found was repaired), 1 problems remain, 2 bad usage.`,
};

class UsageError extends Error {}

/** The first admin when ADMIN_EMAIL is unset (core's address check wants a domain with a dot, so not admin@localhost). */
export const DEFAULT_ADMIN_EMAIL = 'admin@localhost';

function loadEnv(io: Io): void {
  for (const warning of loadEnvFile(join(io.cwd, '.env'), io.env)) io.err(`.env: ${warning}`);
}

/** Core's variables only: for the commands that need nothing but the database. */
function readConfig(io: Io): AvatarGenConfig {
  loadEnv(io);
  return loadConfig(io.env);
}

/** The whole site: core's variables, its plugins and theirs. */
async function openSite(io: Io): Promise<Site> {
  loadEnv(io);
  return readSite(io.env, io.cwd);
}

/**
 * The logger of a one-shot command (generate, doctor): warnings and worse, on stderr, so that
 * stdout holds only the command's answer (a ZIP's path, a report).
 */
function quietLogger(site: Site): Logger {
  const { config } = site;
  return createLogger(
    { ...config, LOG_LEVEL: config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL },
    logDestination(config, 'stderr'),
    site.secrets,
  );
}

/** The start banner: which plugin fills each port, and the database. */
function banner(backend: Backend): string {
  const owner = (port: Parameters<typeof backend.gen.hasPort>[0]) =>
    backend.gen.plugins.ports[port]?.plugin.replace(/^@avatargen\//, '') ?? 'none';
  const storage = backend.gen.port('objectStorage').publicUrl('x').startsWith('/')
    ? `${owner('objectStorage')} (${join(backend.site.config.DATA_DIR, 'storage')})`
    : owner('objectStorage');
  const database = backend.embedded ? `embedded PostgreSQL (${backend.embedded.dataDir})` : 'PostgreSQL';
  // Prompts usually come with the personas; say so only when another plugin writes them.
  const prompts = owner('imagePromptProvider') === owner('personaProvider') ? '' : ` · prompts: ${owner('imagePromptProvider')}`;
  return `personas: ${owner('personaProvider')}${prompts} · images: ${owner('imageProvider')} · storage: ${storage} · database: ${database}`;
}

/** Runs `fn` until SIGINT/SIGTERM, then calls `stop` once and resolves. */
function untilSignal(stop: (signal: string) => Promise<void>): Promise<void> {
  return new Promise((resolveDone) => {
    let stopping = false;
    const handler = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      stop(signal).finally(() => {
        process.off('SIGINT', handler);
        process.off('SIGTERM', handler);
        resolveDone();
      });
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
}

/**
 * On an empty database, makes the first admin (printed once through `say`); otherwise reminds
 * which account is the admin. Returns the admin account.
 */
async function ensureFirstAdmin(users: UsersService, config: AvatarGenConfig, say: (line: string) => void): Promise<UserView> {
  if ((await users.count()) > 0) {
    const admin = await users.firstAdmin();
    if (admin) say(`Admin account: ${admin.email} (forgot the password? "avatargen user set-password --email ${admin.email}")`);
    else say('No active admin account: make one with "avatargen user create --admin --email <email>".');
    if (admin) return admin;
    throw new UsageError('no active admin account');
  }
  const email = config.ADMIN_EMAIL ?? DEFAULT_ADMIN_EMAIL;
  const generated = !config.ADMIN_PASSWORD;
  const password = config.ADMIN_PASSWORD ?? randomBytes(15).toString('base64url');
  const admin = await users.create({ email, password, isAdmin: true });
  say('First admin account created:');
  say(`  email:    ${email}`);
  if (generated) say(`  password: ${password}   (shown once; change it with "avatargen user set-password")`);
  else say('  password: the one in ADMIN_PASSWORD');
  return admin;
}

async function runServer(role: 'start' | 'web' | 'worker', io: Io): Promise<number> {
  const site = await openSite(io);
  const { config } = site;
  const logger = createLogger(config, logDestination(config), site.secrets);
  const backend = await startBackend(site, logger);
  const { gen } = backend;
  try {
    if (role === 'start')
      await ensureFirstAdmin(gen.users, config, io.out).catch((error: unknown) => {
        // a site whose admins are all disabled still starts; the line above said how to make one
        if (!(error instanceof UsageError)) throw error;
      });
    if (role !== 'web') await gen.worker.start();
    let server: Awaited<ReturnType<typeof listen>> | undefined;
    if (role !== 'worker') {
      const host = await createHostApp(backend);
      server = await listen(host, { port: config.APP_PORT, hostname: config.APP_HOST });
    }
    io.out(banner(backend));
    if (server) io.out(`avatargen ${role} listening on ${server.url}`);
    else io.out('avatargen worker started');
    await untilSignal(async (signal) => {
      gen.pipeline.shuttingDown();
      logger.info({ signal }, 'shutting down');
      await server?.close();
      await backend.close();
      io.out('avatargen stopped');
    });
    return 0;
  } catch (error) {
    await backend.close().catch(() => undefined);
    throw error;
  }
}

/** Only the database (migrate, user ...): embedded PostgreSQL when nothing is configured. */
async function withDatabase<T>(io: Io, fn: (users: UsersService, logger: Logger, orm: Orm) => Promise<T>): Promise<T> {
  const config = readConfig(io);
  const logger = createLogger(config, logDestination(config, 'stderr'));
  let url = databaseUrl(config);
  let embedded: EmbeddedPostgres | null = null;
  if (!url) {
    embedded = await startEmbeddedPostgres({ dataDir: join(config.DATA_DIR, 'pg'), logger });
    url = embedded.url;
  }
  const orm = await openDatabase({ url, logger, poolSize: 2 });
  try {
    const applied = await runMigrations(orm, url);
    if (applied.length) logger.info({ applied }, 'migrations applied');
    return await fn(new UsersService(orm), logger, orm);
  } finally {
    await orm.close();
    await embedded?.stop();
  }
}

async function readPassword(values: { password?: string; 'password-stdin'?: boolean }): Promise<string | undefined> {
  if (values.password !== undefined) return values.password;
  if (!values['password-stdin']) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

async function userCommand(args: string[], io: Io): Promise<number> {
  const [action, ...rest] = args;
  const { values } = parseArgs({
    args: rest,
    options: {
      email: { type: 'string' },
      password: { type: 'string' },
      'password-stdin': { type: 'boolean' },
      admin: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || !action) {
    io.out(HELP.user as string);
    return action ? 0 : 2;
  }
  if (!values.email) throw new UsageError('--email is required');
  const email = values.email;
  return withDatabase(io, async (users) => {
    if (action === 'create') {
      const given = await readPassword(values);
      const password = given ?? randomBytes(15).toString('base64url');
      const user = await users.create({ email, password, isAdmin: values.admin === true });
      io.out(`Created ${user.email}${user.isAdmin ? ' (admin)' : ''}.`);
      if (given === undefined) io.out(`  password: ${password}   (shown once)`);
      return 0;
    }
    if (action === 'set-password') {
      const password = await readPassword(values);
      if (password === undefined) throw new UsageError('--password or --password-stdin is required');
      await users.setPassword(email, password);
      io.out(`Password of ${email} changed; its sessions have ended.`);
      return 0;
    }
    if (action === 'disable' || action === 'enable') {
      await users.setActive(email, action === 'enable');
      io.out(`${email} ${action}d.`);
      return 0;
    }
    throw new UsageError(`unknown user action "${action}" (create, set-password, disable, enable)`);
  });
}

function progressLine(task: TaskView): string {
  const width = 30;
  const filled = Math.round((task.progress.percent / 100) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${task.progress.percent.toFixed(1).padStart(5)}%  ${task.progress.personasStored}/${task.progress.personasTotal} personas  ${task.progress.imagesStored}/${task.progress.imagesTotal} images  ${task.status}`;
}

async function generateCommand(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      description: { type: 'string', short: 'd' },
      count: { type: 'string', short: 'n', default: '10' },
      images: { type: 'string', short: 'i', default: '4' },
      language: { type: 'string', short: 'l', default: 'en' },
      out: { type: 'string', short: 'o' },
      user: { type: 'string', short: 'u' },
      genders: { type: 'string' },
      ages: { type: 'string' },
      ethnicities: { type: 'string' },
      locations: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.out(HELP.generate as string);
    return 0;
  }
  const targets = { genders: values.genders, ages: values.ages, ethnicities: values.ethnicities, locations: values.locations };
  const input = {
    description: values.description ?? '',
    count: values.count,
    imagesPerPersona: values.images,
    language: values.language,
    targets: Object.values(targets).some((v) => v !== undefined) ? targets : undefined,
  };
  // Checked before the database starts: a typo costs nothing, and every wrong option is named at once.
  const checked = validateGenerationRequest(input);
  if (!checked.ok) throw new ValidationError(optionFields(checked.errors));
  const site = await openSite(io);
  const { config } = site;
  const logger = quietLogger(site);
  const backend = await startBackend(site, logger);
  const { gen } = backend;
  if (backend.embedded?.sharedWith)
    io.err(`Using the database of the site running on this folder (process ${backend.embedded.sharedWith}).`);
  try {
    // The task belongs to an account, so it can be seen, retried and deleted on the site and the API.
    const owner = values.user ? await gen.users.findByEmail(values.user) : await ensureFirstAdmin(gen.users, config, io.err);
    if (!owner) throw new UsageError(`no account ${values.user} (make it with "avatargen user create --email ${values.user}")`);
    await gen.worker.start();
    const task = await gen.tasks.submit(input, { userId: owner.id }).catch((error: unknown) => {
      throw error instanceof ValidationError ? new ValidationError(optionFields(error.fields)) : error;
    });
    io.err(`Task ${task.id} of ${owner.email}: ${task.count} personas x ${task.imagesPerPersona} images`);
    let shown = '';
    const show = (t: TaskView) => {
      if (io.isTTY) return io.errRaw(`\r${progressLine(t)}`);
      // Without a terminal: one line per 10% or status change.
      const step = `${Math.floor(t.progress.percent / 10)}:${t.status}`;
      if (step !== shown) {
        shown = step;
        io.err(progressLine(t));
      }
    };
    const final = await gen.tasks.waitUntilEnded(task.id, { onChange: show });
    if (io.isTTY) io.errRaw('\n');
    for (const entry of final.errorLog) io.err(`  [${entry.stage}] ${entry.message}`);
    io.err(usageSummary(final));
    const outcome = generateOutcome(final);
    if (outcome.message) io.err(outcome.message);
    if (!outcome.zip) return outcome.code;
    // By default beside the site's other data, not wherever the command happened to run.
    const out = resolve(io.cwd, values.out ?? join(config.DATA_DIR, 'exports', `avatargen-${final.id}.zip`));
    await mkdir(dirname(out), { recursive: true });
    const zip = await gen.exports.zip(final.id);
    const file = createWriteStream(out);
    await pipe(zip, file);
    io.out(out);
    return outcome.code;
  } finally {
    await backend.close();
  }
}

/** The API's `targets.genders` is the command's `--genders`: messages name the option that was given. */
function optionFields(fields: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(fields).map(([field, message]) => [field.replace(/^targets\.(\w+)$/, '--$1'), message]));
}

/** generate's one line on stderr about what the task used and its estimated cost (settings `prices`). */
export function usageSummary(task: TaskView): string {
  const u = task.usage;
  const n = (value: number) => value.toLocaleString('en-US');
  return (
    `Usage: ${plural(u.calls, 'provider call')}, ${n(u.inputTokens)} input and ${n(u.outputTokens)} output tokens, ` +
    `${n(u.imagesMade)} of ${n(u.imagesRequested)} images requested made, ${plural(u.retries, 'retry', 'retries')}, ` +
    `${plural(u.moderationBlocks, 'moderation block')}, ${plural(u.rejectedPersonas, 'rejected persona')}. Estimated cost: ${formatCost(task.cost)}`
  );
}

/** `avatargen generate`'s exit code when the task ended partial (a ZIP of what exists is written). */
export const EXIT_PARTIAL = 3;

/**
 * What `avatargen generate` does with an ended task: `completed` writes the ZIP and exits 0;
 * `partial` writes the ZIP of what exists, says what is missing and exits EXIT_PARTIAL; `failed`
 * and `cancelled` write nothing and exit 1.
 */
export function generateOutcome(task: TaskView): { code: number; zip: boolean; message: string | null } {
  if (task.status === 'completed') return { code: 0, zip: true, message: null };
  if (task.status === 'partial') {
    const p = task.progress;
    return {
      code: EXIT_PARTIAL,
      zip: true,
      message: `Task ${task.id} ended partial: personas ${p.personasStored} of ${p.personasTotal}, images ${p.imagesStored} of ${p.imagesTotal}. The ZIP holds what was made; retry the task to make the rest.`,
    };
  }
  return { code: 1, zip: false, message: `Task ${task.id} ${task.status}.` };
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The doctor's report for people: counts, then the first items of each list. */
export function formatDoctorReport(report: DoctorReport): string[] {
  const lines = [
    `Checked ${plural(report.objects, 'object')} under tasks/ and ${plural(report.rows, 'row')} of ${plural(report.tasks, 'ended task')}` +
      (report.skipped.tasks > 0
        ? `; skipped ${plural(report.skipped.tasks, 'pending or running task', 'pending or running tasks')} (${plural(report.skipped.objects, 'object')}).`
        : '.'),
  ];
  const more = (count: number, shown: number) => {
    if (count > shown) lines.push(`  ... and ${count - shown} more`);
  };
  lines.push(`Rows whose object is missing: ${report.missing.count}`);
  for (const m of report.missing.items) {
    lines.push(`  ${m.key}  (task ${m.taskId}, persona ${m.personaId}, ${m.kind === 'base' ? 'base image' : `image ${m.idx}`})`);
  }
  more(report.missing.count, report.missing.items.length);
  lines.push(
    `Objects no row references: ${report.orphans.count}${report.orphans.count > 0 ? ` (${formatBytes(report.orphans.bytes)})` : ''}`,
  );
  for (const o of report.orphans.items)
    lines.push(`  ${o.key}  (${o.taskId ? `task ${o.taskId}` : 'no such task'}, ${formatBytes(o.size)})`);
  more(report.orphans.count, report.orphans.items.length);
  const fixed = report.fixed;
  if (fixed) {
    lines.push(
      `Fixed: ${plural(fixed.orphansDeleted, 'orphan object')} deleted; ${plural(fixed.imageRowsDeleted, 'image row')} removed, ` +
        `${plural(fixed.baseKeysCleared, 'base image')} cleared, ${plural(fixed.personasReset, 'persona')} back to pending; ` +
        `${fixed.tasksRetried.length > 0 ? `retried ${fixed.tasksRetried.join(', ')}` : 'no task retried'}` +
        `${fixed.tempFilesRemoved ? `; ${plural(fixed.tempFilesRemoved, 'leftover temporary file')} removed` : ''}.`,
    );
    for (const t of fixed.tasksNotRetried) lines.push(`  task ${t.taskId} not retried: ${t.reason}`);
    for (const e of fixed.errors) lines.push(`  not done: ${e}`);
  } else if (!report.healthy) {
    lines.push('Run "avatargen doctor --fix" to repair.');
  }
  lines.push(
    report.healthy ? (fixed && !(report.missing.count === 0 && report.orphans.count === 0) ? 'Repaired.' : 'Healthy.') : 'Problems remain.',
  );
  return lines;
}

async function doctorCommand(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      fix: { type: 'boolean' },
      json: { type: 'boolean' },
      limit: { type: 'string', default: '20' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    io.out(HELP.doctor as string);
    return 0;
  }
  const limit = Number(values.limit);
  if (!/^\d+$/.test(values.limit) || !Number.isSafeInteger(limit)) throw new UsageError('--limit must be a whole number, 0 or more');
  const site = await openSite(io);
  const backend = await startBackend(site, quietLogger(site));
  try {
    const report = await backend.gen.doctor.run({ fix: values.fix === true, limit, derivedFrom: thumbnailSource });
    if (values.json) io.out(JSON.stringify(report, null, 2));
    else for (const line of formatDoctorReport(report)) io.out(line);
    return report.healthy ? 0 : 1;
  } finally {
    await backend.close();
  }
}

async function pluginsCommand(args: string[], io: Io): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    io.out(HELP.plugins as string);
    return 0;
  }
  loadEnv(io);
  const report = await describePlugins(io.env, io.cwd);
  if (values.json) io.out(JSON.stringify(report, null, 2));
  else for (const line of formatPlugins(report)) io.out(line);
  return report.problems.length > 0 ? 2 : 0;
}

const PICTURE = /\.(png|jpe?g|webp)$/i;

/** The pictures under a path: the file itself, or every picture in a folder and its subfolders. */
async function picturesAt(path: string): Promise<string[]> {
  if (!(await stat(path)).isDirectory()) return [path];
  const entries = await readdir(path, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && PICTURE.test(e.name))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

export interface VerifiedPicture {
  file: string;
  marked: boolean;
  generator: string | null;
  datasetId: string | null;
  personaId: string | null;
  /** Null when the picture names no dataset. */
  datasetExists: boolean | null;
  /** The persona exists in that dataset; null when the picture names no persona. */
  personaExists: boolean | null;
}

/** `avatargen verify`: the provenance marks of pictures, checked against this site's database. */
async function verifyCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    io.out(HELP.verify as string);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('verify takes one file or folder');
  const target = resolve(io.cwd, positionals[0] as string);
  const files = await picturesAt(target).catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(error.code === 'ENOENT' ? `no such file or folder: ${target}` : `cannot read ${target}: ${error.message}`);
  });
  const found = await Promise.all(files.map(async (file) => ({ file, mark: readXmp(extractXmp(await readFile(file)) ?? '') })));
  const report = await withDatabase(io, async (_users, _logger, orm) => {
    const em = orm.em.fork();
    const datasetIds = [...new Set(found.flatMap(({ mark }) => (mark.datasetId ? [mark.datasetId] : [])))];
    const tasks = new Set(
      datasetIds.length ? (await em.execute('select id from generation_tasks where id in (?)', [datasetIds])).map((r) => String(r.id)) : [],
    );
    // persona ids are integers; anything else names no persona of this site
    const personaIds = [
      ...new Set(found.flatMap(({ mark }) => (mark.personaId && /^\d{1,9}$/.test(mark.personaId) ? [Number(mark.personaId)] : []))),
    ];
    const personas = new Set(
      personaIds.length
        ? (await em.execute('select id, task_id from personas where id in (?)', [personaIds])).map((r) => `${r.task_id}/${r.id}`)
        : [],
    );
    return found.map(
      ({ file, mark }): VerifiedPicture => ({
        file,
        marked: mark.marked,
        generator: mark.generator,
        datasetId: mark.datasetId,
        personaId: mark.personaId,
        datasetExists: mark.datasetId === null ? null : tasks.has(mark.datasetId),
        personaExists: mark.personaId === null ? null : personas.has(`${mark.datasetId}/${mark.personaId}`),
      }),
    );
  });
  const unmarked = report.filter((r) => !r.marked).length;
  if (values.json) io.out(JSON.stringify({ pictures: report, marked: report.length - unmarked, unmarked }, null, 2));
  else {
    const exists = (value: boolean | null) => (value ? 'on this site' : 'not on this site');
    for (const r of report) {
      const ids =
        r.datasetId === null
          ? 'no dataset id'
          : `dataset ${r.datasetId} (${exists(r.datasetExists)}), persona ${r.personaId ?? '-'} (${exists(r.personaExists)})`;
      io.out(`${r.marked ? 'marked  ' : 'UNMARKED'} ${r.file}${r.marked || r.datasetId !== null ? `: ${ids}` : ''}`);
    }
    io.out(`${report.length - unmarked} of ${report.length} picture${report.length === 1 ? '' : 's'} marked as AI-generated.`);
  }
  if (report.length === 0) io.err(`avatargen verify: no PNG, JPEG or WebP picture at ${target}`);
  return report.length > 0 && unmarked === 0 ? 0 : 1;
}

/** The `avatargen` command. Returns the exit code. */
export async function main(argv: string[], io: Io = defaultIo()): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (!command || command === '--help' || command === '-h' || command === 'help') {
      io.out(HELP.main as string);
      return command ? 0 : 2;
    }
    if (rest.includes('--help') || rest.includes('-h')) {
      const text = HELP[command];
      if (!text) throw new UsageError(`unknown command "${command}"`);
      io.out(text);
      return 0;
    }
    switch (command) {
      case 'start':
      case 'web':
      case 'worker':
        return await runServer(command, io);
      case 'migrate':
        return await withDatabase(io, async (_users, logger) => {
          logger.info('database is up to date');
          io.out('Migrations applied; the database is up to date.');
          return 0;
        });
      case 'user':
        return await userCommand(rest, io);
      case 'generate':
        return await generateCommand(rest, io);
      case 'doctor':
        return await doctorCommand(rest, io);
      case 'plugins':
        return await pluginsCommand(rest, io);
      case 'verify':
        return await verifyCommand(rest, io);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`avatargen: ${(error as Error).message}. Run "avatargen --help".`);
      return 2;
    }
    if (error instanceof ConfigError) {
      io.err(error.message);
      return 2;
    }
    if (error instanceof ValidationError) {
      for (const [field, message] of Object.entries(error.fields)) io.err(`${field}: ${message}`);
      return 2;
    }
    io.err(`avatargen: ${(error as Error)?.message ?? String(error)}`);
    return 1;
  }
}
