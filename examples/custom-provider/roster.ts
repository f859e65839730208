/**
 * A PersonaProvider that takes its people from a roster (a JSON file of persona objects) instead
 * of asking a service: handy for demos with hand-picked people, and an example of a plugin.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  type AvatarGenPlugin,
  ConfigError,
  definePlugin,
  normalizePersona,
  type PersonaBatch,
  type PersonaData,
  type PersonaProvider,
  type PersonaRequest,
  type RejectedPersona,
  throwIfAborted,
} from '@avatargen/core';

export interface Roster {
  /** Entries that passed core's persona validation, normalised. */
  personas: PersonaData[];
  /** Entries that did not, with their position in the roster and the reason. */
  rejected: RejectedPersona[];
}

/** Validates roster entries once with core's rules (the same the pipeline applies to any provider). */
export function readRoster(entries: unknown): Roster {
  if (!Array.isArray(entries)) throw new ConfigError(['roster: must be a JSON array of persona objects']);
  const roster: Roster = { personas: [], rejected: [] };
  entries.forEach((entry, index) => {
    const result = normalizePersona(entry);
    if (result.ok) roster.personas.push(result.persona);
    else roster.rejected.push({ index, reason: result.reason });
  });
  if (roster.personas.length === 0) throw new ConfigError(['roster: holds no valid persona']);
  return roster;
}

/** A small seeded PRNG (mulberry32): the same seed always picks the same people. */
function random(seed: string): () => number {
  let state = createHash('sha256').update(seed).digest().readUInt32LE(0);
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Answers each request with up to `count` different people of the roster, shuffled by the
 * request's seed (stable per task and batch). Never more than the roster holds.
 */
export function createRosterPersonaProvider(roster: Roster): PersonaProvider {
  return {
    async generate(request: PersonaRequest): Promise<PersonaBatch> {
      throwIfAborted(request.signal);
      const next = random(request.seed);
      const order = roster.personas.map((_, i) => i);
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [order[i], order[j]] = [order[j] as number, order[i] as number];
      }
      const personas = order.slice(0, request.count).map((i) => structuredClone(roster.personas[i] as PersonaData));
      return { personas, rejected: roster.rejected };
    },
  };
}

export interface RosterPluginOptions {
  /** Path of a JSON file holding an array of persona objects (see personas.json). */
  file: string;
}

/**
 * Fills the `personaProvider` port from a roster file. Register it after the plugin it replaces:
 * `plugins: [localPlugin(), rosterPlugin({ file })]` keeps provider-local's prompts and images.
 */
export function rosterPlugin(options: RosterPluginOptions): AvatarGenPlugin {
  return definePlugin({
    name: 'example-roster',
    provides: ['personaProvider'],
    async register(context) {
      let entries: unknown;
      try {
        entries = JSON.parse(await readFile(options.file, 'utf8'));
      } catch (error) {
        throw new ConfigError([`roster: cannot read ${options.file}: ${(error as Error).message}`]);
      }
      const roster = readRoster(entries);
      if (roster.rejected.length > 0) {
        context.logger.warn({ rejected: roster.rejected }, 'roster entries skipped');
      }
      context.provide('personaProvider', createRosterPersonaProvider(roster));
    },
  });
}
