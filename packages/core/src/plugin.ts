import { asFunction, asValue, type AwilixContainer, createContainer, InjectionMode } from 'awilix';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { type AvatarGenConfig, type ConfigInput, readPluginConfig, type VariableReport } from './config.js';
import { AvatarGenError, ConfigError } from './errors.js';
import { PORTS, type PortName, type PortTypes, REQUIRED_PORTS } from './ports.js';

/** The ports as a plugin's factory sees them: resolved on first use, whichever plugin filled them. */
export type Ports = Readonly<Partial<PortTypes>>;

/** Makes a port's implementation from the other ports (read lazily: `ports.objectStorage`). */
export type PortFactory<K extends PortName> = (ports: Ports, context: PluginContext) => PortTypes[K];

export interface PluginContext<Own extends object = Record<string, unknown>> {
  /** Core's configuration and this plugin's own validated variables (its `config` schema). */
  config: AvatarGenConfig & Own;
  logger: Logger;
  /** The awilix container the ports are registered in. */
  container: AwilixContainer;
  /**
   * Fills a port with an implementation, or with a factory that receives the other ports (awilix
   * cradle injection: `provide('imageProvider', ({ objectStorage }) => cached(objectStorage))`),
   * made once, when the port is first needed. A later registration of the same port wins.
   */
  provide<K extends PortName>(port: K, implementation: PortTypes[K] | PortFactory<K>): void;
  /**
   * Wraps the implementation that earlier plugins put in `port` (caching, a watermark, cost
   * accounting): everything that uses the port, the pipeline included, gets the wrapper. Later
   * decorations wrap earlier ones; a later `provide` of the port replaces the whole chain.
   */
  decorate<K extends PortName>(port: K, wrap: (inner: PortTypes[K], ports: Ports) => PortTypes[K]): void;
  /** Runs when the AvatarGen instance closes (in reverse order): close pools, clients, servers. */
  onClose(fn: () => void | Promise<void>): void;
}

export interface AvatarGenPlugin<Own extends object = Record<string, unknown>> {
  /** The package name by convention (`@acme/avatargen-painter`): shown in listings and errors. */
  name: string;
  /** Ports this plugin fills: the host fills the others with its defaults. */
  provides?: readonly PortName[];
  /**
   * The environment variables the plugin reads: a zod object keyed by variable name, each field
   * `.describe()`d. Core validates them (environment and .env) before any plugin registers; an
   * error names the variable and the plugin.
   */
  config?: z.ZodObject;
  /** Variables of `config` whose values are redacted from logs, errors and pages. */
  secrets?: readonly string[];
  register(context: PluginContext<Own>): void | Promise<void>;
}

/**
 * Declares a plugin: a plain object, typed. With a `config` schema, `context.config` holds its
 * validated variables: `definePlugin({ name, config: z.object({ SD_URL: variables.url() }), secrets: [], register })`.
 */
export function definePlugin<Schema extends z.ZodObject = z.ZodObject<Record<never, z.ZodType>>>(plugin: {
  name: string;
  provides?: readonly PortName[];
  config?: Schema;
  secrets?: readonly (keyof z.output<Schema> & string)[];
  register(context: PluginContext<z.output<Schema>>): void | Promise<void>;
}): AvatarGenPlugin {
  if (typeof plugin?.name !== 'string' || !plugin.name) throw new TypeError('definePlugin: a plugin needs a name');
  if (typeof plugin.register !== 'function') throw new TypeError(`definePlugin(${plugin.name}): register must be a function`);
  const declared = plugin.config ? Object.keys(plugin.config.shape) : [];
  for (const secret of plugin.secrets ?? []) {
    if (!declared.includes(secret)) {
      throw new TypeError(`definePlugin(${plugin.name}): secret ${secret} is not a variable of its config schema`);
    }
  }
  for (const port of plugin.provides ?? []) {
    if (!Object.hasOwn(PORTS, port)) throw new TypeError(`definePlugin(${plugin.name}): unknown port ${port}`);
  }
  return plugin as AvatarGenPlugin;
}

/** True for an object shaped like a plugin (a name and a register function). */
export function isPlugin(value: unknown): value is AvatarGenPlugin {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as AvatarGenPlugin).name === 'string' &&
    typeof (value as AvatarGenPlugin).register === 'function'
  );
}

/** One entry of a site's plugin list: a package name, a package with options, or a plugin object. */
export type PluginEntry = string | { resolve: string; options?: unknown } | AvatarGenPlugin;

/** A site's `avatargen.config.{js,mjs,ts}`. */
export interface SiteConfig {
  /**
   * Plugins in order: a later one that fills a port replaces an earlier one. A package's default
   * export is a plugin, or a function of the options that returns one. Ports no entry fills get the
   * host's defaults.
   */
  plugins: PluginEntry[];
}

/** Types a site's config file: `export default defineConfig({ plugins: ['@acme/avatargen-painter'] })`. */
export function defineConfig(config: SiteConfig): SiteConfig {
  return config;
}

export class MissingPortError extends AvatarGenError {
  readonly ports: PortName[];
  constructor(ports: PortName[]) {
    super(
      'config',
      `Missing port${ports.length > 1 ? 's' : ''}: ${ports.join(', ')}. No plugin provides ${
        ports.length > 1 ? 'them' : 'it'
      }: add one that does (docs/plugins.md lists the published ones).`,
    );
    this.ports = ports;
  }
}

/** A plugin as loaded: what it declared, what it ended up filling, and its variables. */
export interface LoadedPlugin {
  name: string;
  provides: readonly PortName[];
  /** Ports whose implementation is this plugin's at the end (not replaced by a later plugin). */
  fills: PortName[];
  /** Ports it wraps with `decorate`. */
  decorates: PortName[];
  variables: VariableReport[];
}

/** Who fills a port: the plugin that provided it last, and the plugins that wrap it, inner first. */
export interface PortOwner {
  plugin: string;
  decoratedBy: string[];
}

export interface PluginContainer {
  container: AwilixContainer;
  /** Core's configuration with every plugin's validated variables merged in. */
  config: AvatarGenConfig;
  plugins: LoadedPlugin[];
  owners: Partial<Record<PortName, PortOwner>>;
  closers: Array<() => void | Promise<void>>;
  resolvePort<K extends PortName>(port: K): PortTypes[K];
  hasPort(port: PortName): boolean;
}

/**
 * Builds the container from the plugins in order and checks that every required port is filled.
 * Each plugin's variables are validated first, all at once, from the raw variables `base.env`
 * (their status, set or defaulted, is told from what was given), or without it from process.env
 * overlaid with `base.config` (a config from `loadConfig(env, plugins)` holds them).
 */
export async function buildContainer(
  plugins: readonly AvatarGenPlugin[],
  base: { config: AvatarGenConfig; logger: Logger; env?: ConfigInput },
  required: readonly PortName[] = REQUIRED_PORTS,
): Promise<PluginContainer> {
  const source: ConfigInput = base.env ?? { ...process.env, ...base.config };
  const configs = plugins.map((plugin) => readPluginConfig(plugin, source));
  const problems = configs.flatMap((c) => c.problems);
  if (problems.length > 0) throw new ConfigError(problems);
  const container = createContainer({ injectionMode: InjectionMode.PROXY, strict: true });
  container.register({ config: asValue(base.config), logger: asValue(base.logger) });
  const closers: Array<() => void | Promise<void>> = [];
  const owners: Partial<Record<PortName, PortOwner>> = {};
  const loaded: LoadedPlugin[] = [];
  for (const [index, plugin] of plugins.entries()) {
    const own = configs[index] as (typeof configs)[number];
    const record: LoadedPlugin = { name: plugin.name, provides: plugin.provides ?? [], fills: [], decorates: [], variables: own.variables };
    loaded.push(record);
    const context: PluginContext = {
      config: { ...base.config, ...own.values },
      logger: base.logger.child({ plugin: plugin.name }),
      container,
      provide(port, implementation) {
        owners[port] = { plugin: plugin.name, decoratedBy: [] };
        container.register(
          port,
          typeof implementation === 'function'
            ? asFunction((ports: Ports) => (implementation as PortFactory<typeof port>)(ports, context)).singleton()
            : asValue(implementation),
        );
      },
      decorate(port, wrap) {
        const inner = container.getRegistration(port);
        if (!inner) {
          throw new AvatarGenError(
            'config',
            `Plugin ${plugin.name} decorates ${port}, but no plugin before it provides ${port}: list the plugin that fills ${port} first.`,
          );
        }
        container.register(port, asFunction((ports: Ports) => wrap(inner.resolve(container) as PortTypes[typeof port], ports)).singleton());
        owners[port]?.decoratedBy.push(plugin.name);
        if (!record.decorates.includes(port)) record.decorates.push(port);
      },
      onClose(fn) {
        closers.push(fn);
      },
    };
    await plugin.register(context);
  }
  const hasPort = (port: PortName) => container.hasRegistration(port);
  const missing = required.filter((port) => !hasPort(port));
  if (missing.length > 0) {
    await runClosers(closers);
    throw new MissingPortError(missing);
  }
  for (const [port, owner] of Object.entries(owners)) {
    loaded.find((p) => p.name === owner.plugin)?.fills.push(port as PortName);
  }
  return {
    container,
    config: Object.assign({}, ...configs.map((c) => c.values), base.config),
    plugins: loaded,
    owners,
    closers,
    hasPort,
    resolvePort: (port) => container.resolve(port),
  };
}

export async function runClosers(closers: Array<() => void | Promise<void>>): Promise<void> {
  for (const close of [...closers].reverse()) {
    try {
      await close();
    } catch {
      // closing is best effort; one failing closer must not keep the others open
    }
  }
}
