import { asFunction, asValue, type AwilixContainer, createContainer, InjectionMode } from 'awilix';
import type { Logger } from 'pino';
import type { AvatarGenConfig } from './config.js';
import { AvatarGenError } from './errors.js';
import { type PortName, type PortTypes, REQUIRED_PORTS } from './ports.js';

export interface PluginContext {
  config: AvatarGenConfig;
  logger: Logger;
  /** The awilix container, for plugins that need more than ports. */
  container: AwilixContainer;
  /** Fills a port; a later registration of the same port wins. */
  provide<K extends PortName>(port: K, implementation: PortTypes[K] | ((context: PluginContext) => PortTypes[K])): void;
  /** Runs when the AvatarGen instance closes (in reverse order): close pools, clients, servers. */
  onClose(fn: () => void | Promise<void>): void;
}

export interface AvatarGenPlugin {
  name: string;
  /** Ports this plugin fills, for the error shown when a port is missing. */
  provides?: readonly PortName[];
  register(context: PluginContext): void | Promise<void>;
}

/** Declares a plugin; a plain object, typed. */
export function definePlugin(plugin: AvatarGenPlugin): AvatarGenPlugin {
  if (!plugin.name) throw new Error('definePlugin: a plugin needs a name');
  if (typeof plugin.register !== 'function') throw new Error(`definePlugin(${plugin.name}): register must be a function`);
  return plugin;
}

/** Published packages that fill each port, named in the error when a port is missing. */
export const KNOWN_PROVIDERS: Record<PortName, readonly string[]> = {
  personaProvider: ['@avatargen/provider-flowise', '@avatargen/provider-local'],
  imagePromptProvider: ['@avatargen/provider-flowise', '@avatargen/provider-local'],
  imageProvider: ['@avatargen/provider-openai', '@avatargen/provider-local'],
  imageProcessor: ['@avatargen/image-opencv'],
  objectStorage: ['@avatargen/storage-s3', 'filesystemStoragePlugin from @avatargen/core'],
  faceSource: ['@avatargen/storage-s3'],
};

export class MissingPortError extends AvatarGenError {
  readonly ports: PortName[];
  constructor(ports: PortName[]) {
    super(
      'config',
      `Missing port${ports.length > 1 ? 's' : ''}: ${ports
        .map((p) => `${p} (filled by ${KNOWN_PROVIDERS[p].join(' or ')})`)
        .join('; ')}. Add a plugin that provides ${ports.length > 1 ? 'them' : 'it'}.`,
    );
    this.ports = ports;
  }
}

export interface PluginContainer {
  container: AwilixContainer;
  closers: Array<() => void | Promise<void>>;
  resolvePort<K extends PortName>(port: K): PortTypes[K];
  hasPort(port: PortName): boolean;
}

/** Builds the container from the plugins in order and checks that every required port is filled. */
export async function buildContainer(
  plugins: readonly AvatarGenPlugin[],
  base: { config: AvatarGenConfig; logger: Logger },
  required: readonly PortName[] = REQUIRED_PORTS,
): Promise<PluginContainer> {
  const container = createContainer({ injectionMode: InjectionMode.PROXY, strict: true });
  container.register({ config: asValue(base.config), logger: asValue(base.logger) });
  const closers: Array<() => void | Promise<void>> = [];
  for (const plugin of plugins) {
    const context: PluginContext = {
      config: base.config,
      logger: base.logger.child({ plugin: plugin.name }),
      container,
      provide(port, implementation) {
        container.register(
          port,
          typeof implementation === 'function'
            ? asFunction(() => (implementation as (c: PluginContext) => PortTypes[typeof port])(context)).singleton()
            : asValue(implementation),
        );
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
  return {
    container,
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
