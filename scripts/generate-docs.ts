/**
 * Writes the generated reference docs from the code they describe, so they cannot drift:
 *   docs/configuration.md  from core's configSchema and each published plugin's own schema
 *   docs/openapi.json      from host-koa's openApiDocument()
 *
 *   node --conditions=source --import tsx scripts/generate-docs.ts           # write both
 *   node --conditions=source --import tsx scripts/generate-docs.ts --check   # exit 1 when stale
 *
 * tests/deploy/docs.test.ts fails when a committed file differs from what this prints.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AvatarGenPlugin, configSchema, SECRET_VARIABLES } from '@avatargen/core';
import { openApiDocument } from '@avatargen/host-koa';
import imageOpencv from '@avatargen/image-opencv';
import flowise from '@avatargen/provider-flowise';
import local from '@avatargen/provider-local';
import openai from '@avatargen/provider-openai';
import filesystem from '@avatargen/storage-filesystem';
import s3 from '@avatargen/storage-s3';
import { z } from 'zod';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface Property {
  type?: string;
  enum?: unknown[];
  default?: unknown;
  description?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  format?: string;
}

/** Groups of core's variables, in order; a variable belongs to the first group whose test matches. */
const GROUPS: Array<{ title: string; match: (name: string) => boolean; intro: string }> = [
  { title: 'Runtime', match: (n) => ['NODE_ENV', 'LOG_LEVEL', 'LOG_FORMAT', 'DATA_DIR'].includes(n), intro: '' },
  {
    title: 'Database',
    match: (n) => n === 'DATABASE_URL' || n.startsWith('DB_'),
    intro:
      'DATABASE_URL wins over DB_*. With neither, `avatargen start` runs an embedded PostgreSQL under DATA_DIR. ' +
      'In DATABASE_URL the password is part of a URL: percent-encode `#` as `%23`, `$` as `%24`, `@` as `%40`, `/` as `%2F`; ' +
      'DB_PASSWORD needs no encoding. DB_NAME and DB_USER are required when DB_HOST is set.',
  },
  {
    title: 'Website',
    match: (n) => n.startsWith('APP_') || ['PUBLIC_URL', 'SECRET_KEY', 'TRUST_PROXY'].includes(n) || n.startsWith('ADMIN_'),
    intro: 'Every web process of one site needs the same SECRET_KEY (or one shared DATA_DIR, where the generated key is kept).',
  },
  { title: 'Worker tuning', match: () => true, intro: '' },
];

/** The published plugins, each with when the host chooses it by default. */
const PLUGINS: Array<{ plugin: AvatarGenPlugin; intro: string }> = [
  {
    plugin: s3(),
    intro:
      'Chosen when S3_ENDPOINT is set (objectStorage and faceSource); otherwise images are files under `DATA_DIR/storage`, served by the website at `/media`.',
  },
  {
    plugin: flowise(),
    intro:
      'Chosen when FLOWISE_URL is set (personaProvider and imagePromptProvider); otherwise the offline provider-local writes personas and prompts. MULTITHREAD_FLOWISE (core) bounds its calls.',
  },
  {
    plugin: openai(),
    intro:
      'Chosen when OPENAI_API_KEY is set (imageProvider); otherwise the offline provider-local draws the pictures. ' +
      'Without FLOWISE_URL it also writes personas and prompts (personaProvider and imagePromptProvider) with a chat model, ' +
      'when OPENAI_API_KEY, OPENAI_CHAT_BASE_URL or OPENAI_CHAT_MODEL is set: any OpenAI-compatible server (OpenAI, Azure, Ollama, vLLM, LM Studio, OpenRouter). ' +
      'OPENAI_API_KEY is required only for pictures: text alone from a local server needs just OPENAI_CHAT_BASE_URL and OPENAI_CHAT_MODEL.',
  },
];

/** Published plugins that read no variables of their own. */
const WITHOUT_VARIABLES = [local(), imageOpencv(), filesystem()];

function variablesTable(schema: z.ZodObject, secrets: ReadonlySet<string>, names = Object.keys(schema.shape)): string[] {
  // Input side: a field without a default that is not optional must be given.
  const input = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as { required?: string[] };
  const json = z.toJSONSchema(schema, { io: 'output', unrepresentable: 'any' }) as { properties: Record<string, Property> };
  const required = new Set(input.required ?? []);
  const lines = ['| Variable | Type | Default | Description |', '|---|---|---|---|'];
  for (const name of names) {
    const p = json.properties[name] ?? {};
    const fallback = p.default !== undefined ? `\`${String(p.default)}\`` : required.has(name) ? '**required**' : '(unset)';
    const secret = secrets.has(name) ? ' **Secret.**' : '';
    lines.push(`| \`${name}\` | ${cell(typeOf(p))} | ${cell(fallback)} | ${cell(p.description ?? '')}${secret} |`);
  }
  return lines;
}

function typeOf(p: Property): string {
  if (p.enum) return p.enum.map((v) => `\`${String(v)}\``).join(', ');
  if (p.type === 'integer') return `integer ${p.minimum ?? ''}-${p.maximum ?? ''}`;
  if (p.type === 'boolean') return 'boolean (`true`/`1`/`yes`/`on`)';
  if (p.format === 'uri') return 'URL';
  if (p.format === 'email') return 'email';
  if (p.minLength && p.minLength > 1) return `text, at least ${p.minLength} characters`;
  return 'text';
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** docs/configuration.md, from the schema. */
export function renderConfigurationDoc(): string {
  const secrets = new Set<string>(SECRET_VARIABLES);
  const pluginSecrets = PLUGINS.flatMap(({ plugin }) => plugin.secrets ?? []);
  const names = Object.keys(configSchema.shape);
  const lines = [
    '# Configuration reference',
    '',
    "<!-- Generated from configSchema in packages/core/src/config.ts and the plugins' schemas by scripts/generate-docs.ts. Do not edit: run",
    '     `node --conditions=source --import tsx scripts/generate-docs.ts` and commit the result. -->',
    '',
    'Every process (`avatargen start|web|worker|migrate|user|generate`, and programs that call',
    "`loadConfig()` / `createAvatarGen()`) reads these environment variables: core's, and those of each",
    'plugin it loads, which the plugin declares and core validates (`avatargen plugins` shows their',
    'status; [plugins.md](plugins.md) says how a plugin declares its own). The command also reads a',
    '`.env` file in its working folder; variables already set in the environment win. In production',
    'they live in `/etc/avatargen/avatargen.env` (see [deploy/env.example](../deploy/env.example)).',
    '',
    'Rules:',
    '',
    '- An empty value counts as unset. A bad value stops the process with a message that names the',
    '  variable and the reason, never its value.',
    '- **Quoting**: put a value in single quotes when it holds `#`, `$`, spaces, quotes or a backslash:',
    "  `DB_PASSWORD='p#ss$word'`. Single quotes are literal for systemd's `EnvironmentFile=`, a shell",
    '  and the `.env` reader alike. Unquoted, `.env` cuts the value at ` #` (the command warns) and a',
    '  shell expands `$word`.',
    `- **Secrets** (${[...secrets, ...pluginSecrets].map((s) => `\`${s}\``).join(', ')}, and those a third-party`,
    '  plugin declares) are replaced by `[redacted]` in every log line and error.',
    '',
  ];
  const placed = new Set<string>();
  for (const group of GROUPS) {
    const members = names.filter((n) => !placed.has(n) && group.match(n));
    if (members.length === 0) continue;
    lines.push(`## ${group.title}`, '');
    if (group.intro) lines.push(group.intro, '');
    for (const name of members) placed.add(name);
    lines.push(...variablesTable(configSchema, secrets, members), '');
  }
  for (const { plugin, intro } of PLUGINS) {
    if (!plugin.config) continue;
    lines.push(`## Plugin \`${plugin.name}\``, '', intro, '');
    lines.push(...variablesTable(plugin.config, new Set(plugin.secrets ?? [])), '');
  }
  lines.push(
    '## Plugins without variables',
    '',
    `${WITHOUT_VARIABLES.map((p) => `\`${p.name}\``).join(', ')} read only core\'s variables (DATA_DIR, IMAGE_PROCESSOR_THREADS).`,
    '',
  );
  return `${lines.join('\n').trimEnd()}\n`;
}

/** docs/openapi.json, from the host. */
export function renderOpenApi(): string {
  return `${JSON.stringify(openApiDocument(), null, 2)}\n`;
}

export const GENERATED = [
  { path: 'docs/configuration.md', render: renderConfigurationDoc },
  { path: 'docs/openapi.json', render: renderOpenApi },
] as const;

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const { path, render } of GENERATED) {
    const file = join(ROOT, path);
    const next = render();
    let current = '';
    try {
      current = readFileSync(file, 'utf8');
    } catch {
      // not written yet
    }
    if (current === next) continue;
    if (check) {
      stale++;
      process.stderr.write(`${path} is out of date: run scripts/generate-docs.ts\n`);
    } else {
      writeFileSync(file, next);
      process.stdout.write(`wrote ${path}\n`);
    }
  }
  process.exitCode = stale > 0 ? 1 : 0;
}
