import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  type AvatarGenConfig,
  type AvatarGenPlugin,
  type ConfigInput,
  ConfigError,
  isPlugin,
  type PluginEntry,
  type PortName,
  REQUIRED_PORTS,
  type SiteConfig,
} from '@avatargen/core';
import { moduleResolve } from 'import-meta-resolve';

/** Names the site's config file may have, looked up in this order in the site's folder. */
export const CONFIG_FILE_NAMES = ['avatargen.config.ts', 'avatargen.config.mjs', 'avatargen.config.js'] as const;

export interface Assembly {
  /** In registration order: the host's defaults for the ports the listed plugins leave empty, then the listed ones. */
  plugins: AvatarGenPlugin[];
  /** The config file the plugins came from, or null (the default choice from the environment). */
  configFile: string | null;
  /** Plugins the host added for ports no listed plugin fills. */
  defaults: string[];
}

/** The site's config file: AVATARGEN_CONFIG, or avatargen.config.{ts,mjs,js} in the site's folder. */
export function findConfigFile(cwd: string, env: ConfigInput): string | null {
  const named = typeof env.AVATARGEN_CONFIG === 'string' && env.AVATARGEN_CONFIG.trim() !== '' ? env.AVATARGEN_CONFIG : null;
  if (named) {
    const path = resolve(cwd, named);
    if (!existsSync(path)) throw new ConfigError([`AVATARGEN_CONFIG names ${path}, which does not exist`]);
    return path;
  }
  for (const name of CONFIG_FILE_NAMES) {
    const path = join(cwd, name);
    if (existsSync(path)) return path;
  }
  return null;
}

let loads = 0;

/** Reads a config file (TypeScript through jiti, JavaScript natively) and checks its shape. */
export async function readConfigFile(path: string): Promise<SiteConfig> {
  let exported: unknown;
  try {
    if (path.endsWith('.ts') || path.endsWith('.mts') || path.endsWith('.cts')) {
      const { createJiti } = await import('jiti');
      exported = await createJiti(pathToFileURL(path).href, { moduleCache: false }).import(path, { default: true });
    } else {
      // A fresh URL each time: Node caches modules by URL, and a file read again may have changed.
      exported = ((await import(`${pathToFileURL(path).href}?load=${++loads}`)) as { default?: unknown }).default;
    }
  } catch (error) {
    throw new ConfigError([`${path} could not be loaded: ${firstLine(error)}`]);
  }
  const plugins = (exported as { plugins?: unknown } | undefined)?.plugins;
  if (typeof exported !== 'object' || exported === null || !Array.isArray(plugins)) {
    throw new ConfigError([`${path} must export default { plugins: [...] } (see defineConfig from @avatargen/core)`]);
  }
  return exported as SiteConfig;
}

/**
 * The plugins a config file lists, in order. A name is resolved from the site's folder (as Node
 * would from a module there); the package's default export is a plugin, or a function of the
 * entry's options that returns one.
 */
export async function resolvePluginEntries(entries: readonly PluginEntry[], siteDir: string, origin: string): Promise<AvatarGenPlugin[]> {
  const plugins: AvatarGenPlugin[] = [];
  for (const [index, entry] of entries.entries()) {
    if (isPlugin(entry)) {
      plugins.push(entry);
      continue;
    }
    const spec = typeof entry === 'string' ? { resolve: entry, options: undefined } : entry;
    if (typeof spec !== 'object' || spec === null || typeof spec.resolve !== 'string' || spec.resolve === '') {
      throw new ConfigError([`${origin}: plugins[${index}] must be a package name, { resolve: 'package', options }, or a plugin object`]);
    }
    plugins.push(await loadPluginPackage(spec.resolve, spec.options, siteDir, origin));
  }
  return plugins;
}

async function loadPluginPackage(name: string, options: unknown, siteDir: string, origin: string): Promise<AvatarGenPlugin> {
  let url: URL;
  try {
    url = moduleResolve(name, pathToFileURL(join(siteDir, 'noop.js')), activeConditions());
  } catch (error) {
    const code = (error as { code?: string }).code;
    const why =
      code === 'ERR_MODULE_NOT_FOUND'
        ? `is not installed in ${siteDir} (npm install ${name})`
        : `cannot be resolved from ${siteDir}: ${firstLine(error)}`;
    throw new ConfigError([`${origin}: plugin package ${name} ${why}`]);
  }
  let module: { default?: unknown };
  try {
    module = (await import(url.href)) as { default?: unknown };
  } catch (error) {
    throw new ConfigError([`${origin}: plugin package ${name} failed to load: ${firstLine(error)}`]);
  }
  const exported = module.default;
  let plugin: unknown = exported;
  if (typeof exported === 'function') {
    try {
      plugin = await (exported as (options?: unknown) => unknown)(options);
    } catch (error) {
      throw new ConfigError([`${origin}: plugin package ${name} refused its options: ${firstLine(error)}`]);
    }
  } else if (options !== undefined && isPlugin(exported)) {
    throw new ConfigError([`${origin}: plugin package ${name} takes no options (its default export is a plugin, not a function)`]);
  }
  if (!isPlugin(plugin)) {
    throw new ConfigError([
      `${origin}: ${name} is not an AvatarGen plugin: its default export must be a plugin (definePlugin from @avatargen/core) or a function that returns one`,
    ]);
  }
  return plugin;
}

/**
 * Today's choice from the environment, for the ports in `wanted`: Flowise, OpenAI and S3 when
 * configured, otherwise the offline provider-local and filesystem storage under DATA_DIR; the
 * image processor always. Without Flowise, personas and prompts come from provider-openai's chat
 * model when OPENAI_API_KEY, OPENAI_CHAT_BASE_URL or OPENAI_CHAT_MODEL is set (the last two: text
 * from a local server such as Ollama, no image key needed). Packages are loaded only when chosen
 * (the AWS and OpenAI SDKs, faker's locales are large).
 */
export async function defaultPlugins(
  config: AvatarGenConfig,
  env: ConfigInput,
  wanted: ReadonlySet<PortName> = new Set([...REQUIRED_PORTS, 'faceSource']),
): Promise<AvatarGenPlugin[]> {
  const set = (name: string) => typeof env[name] === 'string' && (env[name] as string).trim() !== '';
  const flowise = set('FLOWISE_URL');
  const openai = set('OPENAI_API_KEY');
  const chat = openai || set('OPENAI_CHAT_BASE_URL') || set('OPENAI_CHAT_MODEL');
  const s3 = set('S3_ENDPOINT');
  const needs = (...ports: PortName[]) => ports.some((port) => wanted.has(port));
  const plugins: AvatarGenPlugin[] = [];
  const text = needs('personaProvider', 'imagePromptProvider');
  const openaiText = text && !flowise && chat;
  const openaiImages = wanted.has('imageProvider') && openai;
  if ((text && !flowise && !chat) || (wanted.has('imageProvider') && !openai)) {
    const { localPlugin } = await import('@avatargen/provider-local');
    plugins.push(localPlugin());
  }
  if (text && flowise) {
    const { flowisePlugin } = await import('@avatargen/provider-flowise');
    plugins.push(flowisePlugin());
  }
  if (openaiText || openaiImages) {
    const { openaiPlugin } = await import('@avatargen/provider-openai');
    plugins.push(openaiPlugin({ images: openaiImages, text: openaiText }));
  }
  if (wanted.has('imageProcessor')) {
    const { imageOpencvPlugin } = await import('@avatargen/image-opencv');
    plugins.push(imageOpencvPlugin());
  }
  if (s3 && needs('objectStorage', 'faceSource')) {
    const { s3Plugin } = await import('@avatargen/storage-s3');
    plugins.push(s3Plugin({ faces: wanted.has('faceSource') }));
  } else if (wanted.has('objectStorage')) {
    const { filesystemStoragePlugin } = await import('@avatargen/storage-filesystem');
    plugins.push(filesystemStoragePlugin({ root: join(config.DATA_DIR, 'storage'), publicBaseUrl: '/media' }));
  }
  return plugins;
}

/**
 * The site's plugins: those its config file lists, after the host's defaults for every port they
 * leave empty (by their `provides`); with no config file, the default choice from the environment.
 */
export async function assemblePlugins(config: AvatarGenConfig, env: ConfigInput, cwd: string): Promise<Assembly> {
  const configFile = findConfigFile(cwd, env);
  if (!configFile) {
    const plugins = await defaultPlugins(config, env);
    return { plugins, configFile: null, defaults: plugins.map((p) => p.name) };
  }
  const site = await readConfigFile(configFile);
  const listed = await resolvePluginEntries(site.plugins, dirname(configFile), configFile);
  const filled = new Set(listed.flatMap((p) => p.provides ?? []));
  const wanted = new Set<PortName>([...REQUIRED_PORTS, 'faceSource'].filter((port) => !filled.has(port as PortName)) as PortName[]);
  const defaults = wanted.size > 0 ? await defaultPlugins(config, env, wanted) : [];
  return { plugins: [...defaults, ...listed], configFile, defaults: defaults.map((p) => p.name) };
}

/** The export conditions this process resolves with (`--conditions=source` when run from sources). */
function activeConditions(): Set<string> {
  const conditions = new Set(['node', 'import']);
  const args = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  for (const [i, arg] of args.entries()) {
    const inline = /^(?:--conditions|-C)=(.+)$/.exec(arg);
    if (inline?.[1]) conditions.add(inline[1]);
    else if ((arg === '--conditions' || arg === '-C') && args[i + 1]) conditions.add(args[i + 1] as string);
  }
  return conditions;
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] as string;
}
