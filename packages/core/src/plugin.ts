import { asFunction, asValue, type AwilixContainer, createContainer, InjectionMode } from 'awilix';
import type { Logger } from 'pino';
import type { AvatarGenConfig } from './config.js';
import { AvatarGenError } from './errors.js';
import { type PortName, type PortTypes, REQUIRED_PORTS } from './ports.js';

/** The ports as a plugin's factory sees them: resolved on first use, whichever plugin filled them. */
export type Ports = Readonly<Partial<PortTypes>>;

/** Makes a port's implementation from the other ports (read lazily: `ports.objectStorage`). */
export type PortFactory<K extends PortName> = (ports: Ports, context: PluginContext) => PortTypes[K];

export interface PluginContext {
  config: AvatarGenConfig;
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
        container.register(
          port,
          asFunction((ports: Ports) => wrap(inner.resolve(container) as PortTypes[typeof port], ports)).singleton(),
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
