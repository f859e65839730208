import {
  CancelledError,
  describeQuota,
  hasQuota,
  type ImagePromptProvider,
  InvalidResponseError,
  type PersonaBatch,
  type PersonaProvider,
  type PersonaRequest,
  type PromptRequest,
  readPersonas,
  readPrompt,
} from '@avatargen/core';
import PQueue from 'p-queue';
import { PredictionClient, SOURCE, type StartStateEntry } from './client.js';
import { personDataJson, promptsHistory } from './prompt.js';

export interface FlowiseProvidersOptions {
  /** Base URL of the Flowise server, e.g. http://127.0.0.1:3000. */
  url: string;
  /** Flowise API key, sent as `Authorization: Bearer`. Omit for flows without a key. */
  apiKey?: string;
  personaFlowId: string;
  promptFlowId: string;
  /** Timeout of one persona call in milliseconds. Default 600 000 (10 minutes). */
  personaTimeoutMs?: number;
  /** Timeout of one prompt call in milliseconds. Default 120 000. */
  promptTimeoutMs?: number;
  /** Persona calls in flight at once from these providers; more wait their turn. Default: no limit. */
  personaConcurrency?: number;
  /** Largest answer read, in bytes; a larger one is an invalid response. Default 32 MiB. */
  maxAnswerBytes?: number;
  /**
   * Start-state keys sent to the persona flow besides the old system's seven: any of `seed`,
   * `used_names` and `quotas` (PERSONA_EXTRA_STATE_KEYS). Default none: Flowise refuses a key the
   * flow's Start node does not declare, and flows built before these keys existed declare none.
   */
  personaExtraState?: readonly PersonaExtraStateKey[];
  /** The fetch to use; Node's global fetch (undici) by default. */
  fetch?: typeof globalThis.fetch;
}

/**
 * Keys the persona call can add to the start state, when the flow declares them (README):
 * - `seed`: the batch's seed, stable per task and batch;
 * - `used_names`: full names already used in the task, joined by "; " ('' when none);
 * - `quotas`: one line per persona asked for, what it must be ("female, aged 25-40, ethnicity
 *   Portuguese, living in Lisbon"), "any" for a persona without one; '' when the task has no targets.
 */
export const PERSONA_EXTRA_STATE_KEYS = ['seed', 'used_names', 'quotas'] as const;
export type PersonaExtraStateKey = (typeof PERSONA_EXTRA_STATE_KEYS)[number];

/** The `quotas` value: line i is persona i's quota; '' when no quota asks for anything. */
export function quotasState(request: Pick<PersonaRequest, 'count' | 'quotas'>): string {
  const quotas = request.quotas;
  if (!quotas?.some(hasQuota)) return '';
  return Array.from({ length: request.count }, (_, i) => {
    const quota = quotas[i];
    return quota && hasQuota(quota) ? describeQuota(quota) : 'any';
  }).join('\n');
}

function extraStateValue(key: PersonaExtraStateKey, request: PersonaRequest): string {
  switch (key) {
    case 'seed':
      return request.seed;
    case 'used_names':
      return (request.avoidNames ?? []).join('; ');
    case 'quotas':
      return quotasState(request);
  }
}

export interface FlowiseProviders {
  personas: PersonaProvider;
  prompts: ImagePromptProvider;
}

export const DEFAULT_PERSONA_TIMEOUT_MS = 600_000;
export const DEFAULT_PROMPT_TIMEOUT_MS = 120_000;

function positiveMs(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number of milliseconds`);
  return value;
}

/** The persona and prompt providers over one Flowise server. */
export function createFlowiseProviders(options: FlowiseProvidersOptions): FlowiseProviders {
  if (!options.url) throw new TypeError('createFlowiseProviders: url is required');
  if (!options.personaFlowId) throw new TypeError('createFlowiseProviders: personaFlowId is required');
  if (!options.promptFlowId) throw new TypeError('createFlowiseProviders: promptFlowId is required');
  const client = new PredictionClient({
    url: options.url,
    apiKey: options.apiKey,
    fetch: options.fetch,
    maxAnswerBytes: options.maxAnswerBytes,
  });
  const personaTimeoutMs = positiveMs('personaTimeoutMs', options.personaTimeoutMs, DEFAULT_PERSONA_TIMEOUT_MS);
  const promptTimeoutMs = positiveMs('promptTimeoutMs', options.promptTimeoutMs, DEFAULT_PROMPT_TIMEOUT_MS);
  const extraState = options.personaExtraState ?? [];
  const unknown = extraState.filter((key) => !(PERSONA_EXTRA_STATE_KEYS as readonly string[]).includes(key));
  if (unknown.length > 0) {
    throw new TypeError(`personaExtraState: unknown key ${unknown.join(', ')} (use ${PERSONA_EXTRA_STATE_KEYS.join(', ')})`);
  }
  // Persona calls beyond personaConcurrency wait in order; one whose signal fires leaves the queue unsent.
  const slots = options.personaConcurrency ? new PQueue({ concurrency: options.personaConcurrency }) : undefined;
  const inSlot = async <T>(call: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> => {
    if (!slots) return call();
    try {
      return await slots.add(call, { signal });
    } catch (error) {
      // p-queue rejects with the signal's reason; the pipeline expects a CancelledError
      if (signal?.aborted && error === signal.reason) throw new CancelledError();
      throw error;
    }
  };

  const personas: PersonaProvider = {
    async generate(request: PersonaRequest): Promise<PersonaBatch> {
      if (request.signal?.aborted) throw new CancelledError();
      const startState: StartStateEntry[] = [
        // The old system sent every value as a string, the count too.
        { key: 'requested_amount', value: String(request.count) },
        { key: 'persona_description', value: request.description },
        { key: 'bio_language', value: request.language.name },
        { key: 'instructions_facebook', value: request.bioInstructions.facebook },
        { key: 'instructions_instagram', value: request.bioInstructions.instagram },
        { key: 'instructions_x', value: request.bioInstructions.x },
        { key: 'instructions_tiktok', value: request.bioInstructions.tiktok },
        // Only the keys asked for, once each and in a fixed order: the flow must declare each one.
        ...PERSONA_EXTRA_STATE_KEYS.filter((key) => extraState.includes(key)).map((key) => ({ key, value: extraStateValue(key, request) })),
      ];
      const call = () =>
        client.predict({
          flow: 'persona',
          flowId: options.personaFlowId,
          startState,
          timeoutMs: personaTimeoutMs,
          signal: request.signal,
        });
      const answer = await inSlot(call, request.signal);
      const batch = readPersonas(answer.text);
      if (batch.personas.length === 0) {
        const reasons = batch.rejected.slice(0, 3).map((r) => r.reason);
        throw new InvalidResponseError(
          SOURCE,
          `Flowise persona flow ${options.personaFlowId} answered with no usable persona${
            reasons.length > 0 ? ` (${batch.rejected.length} rejected: ${reasons.join('; ')})` : ' (no JSON object in its text)'
          }`,
        );
      }
      // A flow that makes more than asked: keep the batch to the asked size (the port promises at most `count`).
      return { personas: batch.personas.slice(0, request.count), rejected: batch.rejected };
    },
  };

  const prompts: ImagePromptProvider = {
    async nextPrompt(request: PromptRequest): Promise<string> {
      if (request.signal?.aborted) throw new CancelledError();
      const startState: StartStateEntry[] = [{ key: 'person_data', value: personDataJson(request.persona) }];
      if (request.previousPrompts.length > 0) {
        startState.push({ key: 'prompts_history', value: promptsHistory(request.previousPrompts) });
      }
      const answer = await client.predict({
        flow: 'prompt',
        flowId: options.promptFlowId,
        startState,
        timeoutMs: promptTimeoutMs,
        signal: request.signal,
      });
      const parsed = readPrompt(answer.text);
      if (!parsed.ok) {
        throw new InvalidResponseError(
          SOURCE,
          `Flowise prompt flow ${options.promptFlowId} answered without a usable prompt: ${parsed.reason}`,
        );
      }
      return parsed.prompt;
    },
  };

  return { personas, prompts };
}
