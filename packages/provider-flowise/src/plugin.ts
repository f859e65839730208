import { type AvatarGenPlugin, definePlugin, variables, z } from '@avatargen/core';
import { createFlowiseProviders, PERSONA_EXTRA_STATE_KEYS, type PersonaExtraStateKey } from './providers.js';

const required = z.string({ error: 'is required' }).trim().min(1, { error: 'is required' });

/**
 * FLOWISE_PERSONA_EXTRA_STATE: `none`, or the extra start-state keys to send, comma-separated
 * (`seed,used_names,quotas`). Unknown names are refused; blank means none.
 */
export function parsePersonaExtraState(text: string | undefined): PersonaExtraStateKey[] | null {
  const names = (text ?? '')
    .split(/[\s,;]+/)
    .map((n) => n.trim().toLowerCase())
    .filter(Boolean);
  if (names.length === 1 && names[0] === 'none') return [];
  if (!names.every((n) => (PERSONA_EXTRA_STATE_KEYS as readonly string[]).includes(n))) return null;
  return [...new Set(names as PersonaExtraStateKey[])];
}

/** The variables this plugin reads; validated by core when the plugin is loaded. */
export const flowiseConfig = z.object({
  FLOWISE_URL: variables.url().describe('Flowise server.'),
  FLOWISE_API_KEY: variables.text().describe('Flowise API key (Bearer).'),
  FLOWISE_PERSONA_FLOW_ID: required.describe('Flowise flow that returns personas.'),
  FLOWISE_PROMPT_FLOW_ID: required.describe('Flowise flow that returns image prompts.'),
  FLOWISE_PERSONA_TIMEOUT_SECONDS: variables.int(1, 3600).default(600).describe('Timeout of one persona call.'),
  FLOWISE_PROMPT_TIMEOUT_SECONDS: variables.int(1, 3600).default(120).describe('Timeout of one prompt call.'),
  // Default none: a flow built before these keys existed does not declare them, and Flowise refuses undeclared keys.
  FLOWISE_PERSONA_EXTRA_STATE: z
    .string()
    .trim()
    .default('none')
    .transform((v) => v || 'none')
    .refine((v) => parsePersonaExtraState(v) !== null, {
      error: `must be none or a comma-separated list of ${PERSONA_EXTRA_STATE_KEYS.join(', ')}`,
    })
    .describe(
      `Extra start-state keys sent to the persona flow (${PERSONA_EXTRA_STATE_KEYS.join(', ')}), comma-separated; the flow's Start node must declare each one.`,
    ),
});
export type FlowiseConfig = z.output<typeof flowiseConfig>;

export interface FlowisePluginOptions {
  /** The fetch to use; Node's global fetch by default. */
  fetch?: typeof globalThis.fetch;
}

/**
 * Fills `personaProvider` and `imagePromptProvider` from the FLOWISE_* variables.
 * (MULTITHREAD_FLOWISE is core's: the pipeline enforces it, not this plugin.)
 */
export function flowisePlugin(options: FlowisePluginOptions = {}): AvatarGenPlugin {
  return definePlugin({
    name: '@avatargen/provider-flowise',
    provides: ['personaProvider', 'imagePromptProvider'],
    config: flowiseConfig,
    secrets: ['FLOWISE_API_KEY'],
    register(context) {
      const config = context.config;
      const providers = createFlowiseProviders({
        url: config.FLOWISE_URL,
        apiKey: config.FLOWISE_API_KEY,
        personaFlowId: config.FLOWISE_PERSONA_FLOW_ID,
        promptFlowId: config.FLOWISE_PROMPT_FLOW_ID,
        personaTimeoutMs: config.FLOWISE_PERSONA_TIMEOUT_SECONDS * 1000,
        promptTimeoutMs: config.FLOWISE_PROMPT_TIMEOUT_SECONDS * 1000,
        personaExtraState: parsePersonaExtraState(config.FLOWISE_PERSONA_EXTRA_STATE) ?? [],
        fetch: options.fetch,
      });
      context.provide('personaProvider', providers.personas);
      context.provide('imagePromptProvider', providers.prompts);
      context.logger.debug(
        {
          url: config.FLOWISE_URL,
          personaFlowId: config.FLOWISE_PERSONA_FLOW_ID,
          promptFlowId: config.FLOWISE_PROMPT_FLOW_ID,
          personaExtraState: config.FLOWISE_PERSONA_EXTRA_STATE,
        },
        'Flowise providers registered',
      );
    },
  });
}
