import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildContainer, ConfigError, createLogger, DEFAULT_BIO_PROMPTS, LANGUAGES, loadConfig, MissingPortError } from '@avatargen/core';
import { describePersonaProviderContract } from '@avatargen/core/testing';
import { localPlugin } from '@avatargen/provider-local';
import { afterAll, describe, expect, it } from 'vitest';
import { createRosterPersonaProvider, readRoster, rosterPlugin } from './roster.js';

const ROSTER_FILE = join(dirname(fileURLToPath(import.meta.url)), 'personas.json');
const config = loadConfig({ LOG_LEVEL: 'silent' });
const logger = createLogger(config);
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

// The suite every PersonaProvider must pass (valid, normalised personas; CancelledError on abort).
describePersonaProviderContract('roster (examples/custom-provider)', {
  create: () => createRosterPersonaProvider(readRoster(JSON.parse(readFileSync(ROSTER_FILE, 'utf8')))),
});

const request = (seed: string, count = 2) => ({
  count,
  description: 'Librarians in Portugal',
  language: { code: 'pt', name: LANGUAGES.pt as string },
  bioInstructions: DEFAULT_BIO_PROMPTS,
  seed,
});

describe('roster provider', () => {
  it('normalises entries with core’s rules and reports the invalid one by position', () => {
    const roster = readRoster(JSON.parse(readFileSync(ROSTER_FILE, 'utf8')));
    expect(roster.personas).toHaveLength(3);
    expect(roster.personas[0]?.gender).toBe('f'); // "female" became f
    expect(roster.personas[1]?.age).toBe(29); // "29" became 29
    expect(roster.rejected).toEqual([{ index: 3, reason: expect.stringContaining('firstName') }]);
  });

  it('picks different people per seed, the same people for the same seed, never more than it holds', async () => {
    const provider = createRosterPersonaProvider(readRoster(JSON.parse(readFileSync(ROSTER_FILE, 'utf8'))));
    const a = await provider.generate(request('task-1:0'));
    const again = await provider.generate(request('task-1:0'));
    expect(again.personas).toEqual(a.personas);
    const names = (await provider.generate(request('x', 10))).personas.map((p) => p.firstName);
    expect(names).toHaveLength(3);
    expect(new Set(names).size).toBe(3);
    const firsts = new Set<string>();
    for (let i = 0; i < 20; i++) firsts.add((await provider.generate(request(`seed-${i}`, 1))).personas[0]?.firstName as string);
    expect(firsts.size).toBeGreaterThan(1);
  });

  it('refuses a roster that is not a list or has nobody valid in it', () => {
    expect(() => readRoster({ people: [] })).toThrow(ConfigError);
    expect(() => readRoster([{ firstName: '' }])).toThrow('roster: holds no valid persona');
  });
});

describe('roster plugin', () => {
  it('overrides provider-local’s persona provider when registered after it, and keeps its other ports', async () => {
    const container = await buildContainer([localPlugin({ imageSize: 64 }), rosterPlugin({ file: ROSTER_FILE })], { config, logger }, [
      'personaProvider',
      'imagePromptProvider',
      'imageProvider',
    ]);
    const batch = await container.resolvePort('personaProvider').generate(request('override', 3));
    expect(batch.personas.map((p) => p.lastName).sort()).toEqual(['Costa', 'Ferreira', 'Silva']);
    expect(container.hasPort('imagePromptProvider')).toBe(true);
    // Registered first, it is the one overridden.
    const reversed = await buildContainer([rosterPlugin({ file: ROSTER_FILE }), localPlugin({ imageSize: 64 })], { config, logger }, [
      'personaProvider',
    ]);
    const local = await reversed.resolvePort('personaProvider').generate(request('override', 3));
    expect(local.personas.map((p) => p.lastName).sort()).not.toEqual(['Costa', 'Ferreira', 'Silva']);
  });

  it('names the file when it cannot be read, and the missing ports when alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'avatargen-roster-'));
    dirs.push(dir);
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '[{"firstName": ');
    await expect(buildContainer([rosterPlugin({ file: broken })], { config, logger }, ['personaProvider'])).rejects.toThrow(broken);
    await expect(buildContainer([rosterPlugin({ file: ROSTER_FILE })], { config, logger })).rejects.toBeInstanceOf(MissingPortError);
  });
});
