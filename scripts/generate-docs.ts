/**
 * Writes the generated reference docs from the code they describe, so they cannot drift:
 *   docs/configuration.md  from core's configSchema (names, types, defaults, descriptions)
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
import { configSchema, SECRET_VARIABLES } from '@avatargen/core';
import { openApiDocument } from '@avatargen/host-koa';
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

/** Groups of the reference, in order; a variable belongs to the first group whose test matches. */
const GROUPS: Array<{ title: string; match: (name: string) => boolean; intro: string }> = [
  { title: 'Runtime', match: (n) => ['NODE_ENV', 'LOG_LEVEL', 'DATA_DIR'].includes(n), intro: '' },
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
    match: (n) => n.startsWith('APP_') || ['SECRET_KEY', 'TRUST_PROXY'].includes(n) || n.startsWith('ADMIN_'),
    intro: 'Every web process of one site needs the same SECRET_KEY (or one shared DATA_DIR, where the generated key is kept).',
  },
  {
    title: 'Object storage (S3 / MinIO)',
    match: (n) => n.startsWith('S3_'),
    intro: 'Unset S3_ENDPOINT: images are files under `DATA_DIR/storage`, served by the website at `/media`. S3_ACCESS_KEY and S3_SECRET_KEY are required when S3_ENDPOINT is set.',
  },
  {
    title: 'Persona data and prompts (Flowise)',
    match: (n) => n.startsWith('FLOWISE_') || n === 'MULTITHREAD_FLOWISE',
    intro: 'Unset FLOWISE_URL: the offline provider-local writes personas and prompts. Both flow ids are required when FLOWISE_URL is set.',
  },
  {
    title: 'Images (OpenAI)',
    match: (n) => n.startsWith('OPENAI_') || n === 'BASE_PROMPT_APPEND',
    intro: 'Unset OPENAI_API_KEY: the offline provider-local draws the pictures.',
  },
  { title: 'Worker tuning', match: () => true, intro: '' },
];

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
  const schema = z.toJSONSchema(configSchema, { io: 'output', unrepresentable: 'any' }) as { properties: Record<string, Property> };
  const secrets = new Set<string>(SECRET_VARIABLES);
  const names = Object.keys(configSchema.shape);
  const lines = [
    '# Configuration reference',
    '',
    '<!-- Generated from configSchema in packages/core/src/config.ts by scripts/generate-docs.ts. Do not edit: run',
    '     `node --conditions=source --import tsx scripts/generate-docs.ts` and commit the result. -->',
    '',
    'Every process (`avatargen start|web|worker|migrate|user|generate`, and programs that call',
    '`loadConfig()` / `createAvatarGen()`) reads these environment variables. The command also reads a',
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
    `- **Secrets** (${[...secrets].map((s) => `\`${s}\``).join(', ')}) are replaced by \`[redacted]\``,
    '  in every log line and error.',
    '',
  ];
  const placed = new Set<string>();
  for (const group of GROUPS) {
    const members = names.filter((n) => !placed.has(n) && group.match(n));
    if (members.length === 0) continue;
    lines.push(`## ${group.title}`, '');
    if (group.intro) lines.push(group.intro, '');
    lines.push('| Variable | Type | Default | Description |', '|---|---|---|---|');
    for (const name of members) {
      placed.add(name);
      const p = schema.properties[name] ?? {};
      const fallback = p.default === undefined ? '(unset)' : `\`${String(p.default)}\``;
      const secret = secrets.has(name) ? ' **Secret.**' : '';
      lines.push(`| \`${name}\` | ${cell(typeOf(p))} | ${cell(fallback)} | ${cell(p.description ?? '')}${secret} |`);
    }
    lines.push('');
  }
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
