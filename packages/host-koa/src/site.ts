import { type AvatarGenConfig, type ConfigInput, loadConfig, secretVariables } from '@avatargen/core';
import { type Assembly, assemblePlugins } from './plugins.js';

/** A site: its folder, its variables, and the plugins it runs with. */
export interface Site {
  /** Core's configuration with every loaded plugin's validated variables. */
  config: AvatarGenConfig;
  /** The raw variables (environment and .env). */
  env: ConfigInput;
  /** The site's folder (where its config file and .env are). */
  cwd: string;
  assembly: Assembly;
  /** Core's and the plugins' secret variables: redacted from logs, errors and pages. */
  secrets: string[];
}

/**
 * Reads a site: core's variables first (DATA_DIR, the database), then its plugins (config file or
 * the default choice from the environment), then every plugin's variables, all errors at once.
 */
export async function readSite(env: ConfigInput, cwd: string): Promise<Site> {
  const core = loadConfig(env);
  const assembly = await assemblePlugins(core, env, cwd);
  const config = loadConfig(env, assembly.plugins);
  return { config, env, cwd, assembly, secrets: secretVariables(assembly.plugins) };
}
