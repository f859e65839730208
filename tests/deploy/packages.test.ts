import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/** How the packages depend on each other: plugins see the site's one copy of core. */
const PACKAGES = fileURLToPath(new URL('../../packages', import.meta.url));

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

const manifests = readdirSync(PACKAGES).map(
  (dir) => JSON.parse(readFileSync(join(PACKAGES, dir, 'package.json'), 'utf8')) as Manifest,
);
const plugins = manifests.filter((m) => m.name !== '@avatargen/core' && m.name !== '@avatargen/host-koa');

describe('package manifests', () => {
  it('finds the five plugin packages', () => {
    expect(plugins.map((m) => m.name).sort()).toEqual([
      '@avatargen/image-opencv',
      '@avatargen/provider-flowise',
      '@avatargen/provider-local',
      '@avatargen/provider-openai',
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

  it('core declares vitest (for @avatargen/core/testing) as an optional peer', () => {
    const core = manifests.find((m) => m.name === '@avatargen/core') as Manifest;
    expect(core.dependencies?.vitest).toBeUndefined();
    expect(core.peerDependencies?.vitest).toBeDefined();
    expect(core.peerDependenciesMeta?.vitest?.optional).toBe(true);
  });
});
