import {
  type AvatarGenConfig,
  type ConfigInput,
  ConfigError,
  loadConfig,
  PORTS,
  type PortName,
  readPluginConfig,
  REQUIRED_PORTS,
  type VariableReport,
} from '@avatargen/core';
import { assemblePlugins } from './plugins.js';

export interface PluginReport {
  name: string;
  /** Ports the plugin declares it fills. */
  provides: PortName[];
  /** Of those, the ports it ends up filling (a later plugin may replace it). */
  ports: PortName[];
  /** Added by the host for ports the config file's plugins leave empty. */
  isDefault: boolean;
  variables: VariableReport[];
}

export interface PluginsReport {
  configFile: string | null;
  plugins: PluginReport[];
  /** Which plugin fills each port. */
  ports: Partial<Record<PortName, string>>;
  /** Every configuration problem (core's and the plugins'), one line each; empty when valid. */
  problems: string[];
}

/**
 * What `avatargen plugins` shows: the site's plugins with their ports and variables, read without
 * registering any plugin or opening the database (so it works while the site is down).
 */
export async function describePlugins(env: ConfigInput, cwd: string): Promise<PluginsReport> {
  const problems: string[] = [];
  let core: AvatarGenConfig;
  try {
    core = loadConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems.push(...error.issues);
    core = loadConfig({ DATA_DIR: env.DATA_DIR });
  }
  const assembly = await assemblePlugins(core, env, cwd);
  const owners: Partial<Record<PortName, string>> = {};
  for (const plugin of assembly.plugins) for (const port of plugin.provides ?? []) owners[port] = plugin.name;
  const defaults = new Set(assembly.defaults);
  const plugins = assembly.plugins.map((plugin): PluginReport => {
    const own = readPluginConfig(plugin, env);
    problems.push(...own.problems);
    const provides = [...(plugin.provides ?? [])];
    return {
      name: plugin.name,
      provides,
      ports: provides.filter((port) => owners[port] === plugin.name),
      isDefault: defaults.has(plugin.name) && assembly.configFile !== null,
      variables: own.variables,
    };
  });
  const missing = REQUIRED_PORTS.filter((port) => !owners[port]);
  if (missing.length > 0) problems.push(`no plugin fills ${missing.join(', ')}`);
  return { configFile: assembly.configFile, plugins, ports: owners, problems };
}

/** The report for people: plugins with their variables, then the ports, then the verdict. */
export function formatPlugins(report: PluginsReport): string[] {
  const lines = [
    report.configFile
      ? `Plugins from ${report.configFile} (the host's defaults fill the ports they leave empty):`
      : 'Plugins (no avatargen.config file: the default choice from the environment):',
  ];
  for (const plugin of report.plugins) {
    const replaced = plugin.provides.filter((port) => !plugin.ports.includes(port));
    lines.push(
      `  ${plugin.name}${plugin.isDefault ? ' (default)' : ''}: fills ${plugin.ports.join(', ') || 'nothing'}` +
        (replaced.length > 0 ? `; ${replaced.join(', ')} replaced by a later plugin` : ''),
    );
    const width = Math.max(0, ...plugin.variables.map((v) => v.name.length));
    for (const variable of plugin.variables) {
      const shown = variable.secret
        ? `${variable.status} (secret, hidden)`
        : variable.value === undefined
          ? variable.status
          : `${variable.status}: ${String(variable.value)}`;
      lines.push(`      ${variable.name.padEnd(width)}  ${shown}`);
    }
  }
  lines.push('Ports:');
  for (const port of Object.keys(PORTS) as PortName[]) {
    const optional = !REQUIRED_PORTS.includes(port);
    lines.push(`  ${port.padEnd(20)} ${report.ports[port] ?? (optional ? 'none (optional)' : 'none: REQUIRED')}`);
  }
  if (report.problems.length === 0) lines.push('The configuration is valid.');
  else {
    lines.push('Problems:');
    for (const problem of report.problems) lines.push(`  - ${problem}`);
  }
  return lines;
}
