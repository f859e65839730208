import {
  type ChatMessage,
  ConfigError,
  imagePromptJsonSchema,
  imagePromptMessages,
  type ImagePromptProvider,
  InvalidResponseError,
  type JsonSchema,
  ModerationError,
  type PersonaBatch,
  personaListJsonSchema,
  personaMessages,
  type PersonaProvider,
  type PersonaRequest,
  type PromptRequest,
  readPersonas,
  readPrompt,
  throwIfAborted,
  type UsageListener,
} from '@avatargen/core';
import OpenAI, { APIError } from 'openai';
import type { ChatCompletion, ChatCompletionCreateParamsNonStreaming } from 'openai/resources/chat/completions';
import { SOURCE, scrub, toAvatarGenError } from './errors.js';
import type { ProviderLogger } from './provider.js';

/**
 * How the answer's shape is asked for. `json_schema`: structured output with a strict schema
 * (OpenAI, vLLM, recent Ollama); `json_object`: JSON mode (older Ollama, LM Studio, some
 * gateways); `prompt`: the instructions alone. `auto` starts with `json_schema` and steps down when
 * the server refuses the mode with a 400.
 */
export type ChatOutput = 'json_schema' | 'json_object' | 'prompt';
export const CHAT_OUTPUTS = ['auto', 'json_schema', 'json_object', 'prompt'] as const;

export interface OpenAIChatOptions {
  /** OPENAI_CHAT_API_KEY (default OPENAI_API_KEY). Omit for a local server that takes none (Ollama). */
  apiKey?: string;
  /** OPENAI_CHAT_BASE_URL (default OPENAI_BASE_URL, then https://api.openai.com/v1), including `/v1`. */
  baseURL?: string;
  /** OPENAI_CHAT_MODEL. Default gpt-4.1-mini. */
  model?: string;
  /** OPENAI_CHAT_TEMPERATURE (0-2). Not sent when unset: the model's default (some models take no other). */
  temperature?: number;
  /** OPENAI_CHAT_TIMEOUT_SECONDS, in ms: one call, from sending to the last byte. Default 120 000. */
  timeoutMs?: number;
  /** OPENAI_CHAT_OUTPUT. Default auto. */
  output?: ChatOutput | 'auto';
  /** The variable named when the key is refused. Default OPENAI_CHAT_API_KEY. */
  keyVariable?: string;
  logger?: ProviderLogger;
}

export interface OpenAIChatProviders {
  personas: PersonaProvider;
  prompts: ImagePromptProvider;
  /** The output mode in use now (after `auto` stepped down, the one that worked). */
  readonly output: ChatOutput;
}

export const DEFAULT_CHAT_MODEL = 'gpt-4.1-mini';
export const DEFAULT_CHAT_TIMEOUT_MS = 120_000;
const DEFAULT_BASE_URL = 'https://api.openai.com/v1';
const OPERATION = 'chat/completions';

/** The next mode `auto` tries after the server refused one. */
const FALLBACK: Record<ChatOutput, ChatOutput | null> = { json_schema: 'json_object', json_object: 'prompt', prompt: null };

/** True when a 400 says the server does not take this `response_format` (rather than that the request is wrong otherwise). */
export function refusesResponseFormat(error: unknown): boolean {
  if (!(error instanceof APIError) || error.status !== 400) return false;
  if (error.param === 'response_format') return true;
  return /response_format|json_schema|json_object|structured output/i.test(error.message);
}

type Finished = { text: string; finish: string | null };

/** Persona and image-prompt providers over an OpenAI-compatible `POST /v1/chat/completions`. */
export function createOpenAIChatProviders(options: OpenAIChatOptions = {}): OpenAIChatProviders {
  const issues = validateChatOptions(options);
  if (issues.length > 0) throw new ConfigError(issues);
  const apiKey = options.apiKey?.trim() || null;
  const model = options.model?.trim() || DEFAULT_CHAT_MODEL;
  const timeoutMs = options.timeoutMs ?? DEFAULT_CHAT_TIMEOUT_MS;
  const keyVariable = options.keyVariable ?? 'OPENAI_CHAT_API_KEY';
  const logger = options.logger;
  const auto = (options.output ?? 'auto') === 'auto';
  let output: ChatOutput = auto ? 'json_schema' : (options.output as ChatOutput);
  const client = new OpenAI({
    // The SDK insists on a key; without one, the header it makes is removed below.
    apiKey: apiKey ?? 'none',
    // Explicit, so the SDK reads nothing from the environment behind our back.
    adminAPIKey: null,
    organization: null,
    project: null,
    baseURL: options.baseURL ?? DEFAULT_BASE_URL,
    // Without a key no Authorization header at all (a local server such as Ollama takes none).
    ...(apiKey ? {} : { defaultHeaders: { Authorization: null } }),
    // Core's pipeline retries with backoff and honours Retry-After; SDK retries would multiply them.
    maxRetries: 0,
    timeout: timeoutMs,
  });

  function responseFormat(mode: ChatOutput, name: string, schema: JsonSchema): ChatCompletionCreateParamsNonStreaming['response_format'] {
    if (mode === 'json_schema') return { type: 'json_schema', json_schema: { name, strict: true, schema } };
    if (mode === 'json_object') return { type: 'json_object' };
    return undefined;
  }

  /**
   * One completion with our own timer (the SDK's covers only the wait for the headers). With
   * `auto`, a 400 that refuses the response format steps down a mode and asks again at once.
   */
  async function complete(
    messages: ChatMessage[],
    schemaName: string,
    schema: JsonSchema,
    signal: AbortSignal | undefined,
    onUsage: UsageListener | undefined,
  ): Promise<Finished> {
    for (;;) {
      const mode = output;
      const body: ChatCompletionCreateParamsNonStreaming = { model, messages };
      const format = responseFormat(mode, schemaName, schema);
      if (format) body.response_format = format;
      if (options.temperature !== undefined) body.temperature = options.temperature;
      const controller = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, timeoutMs);
      const onAbort = () => controller.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      const started = Date.now();
      let answer: ChatCompletion;
      try {
        throwIfAborted(signal);
        answer = await client.chat.completions.create(body, { signal: controller.signal });
      } catch (error) {
        const next = FALLBACK[mode];
        if (auto && next && !signal?.aborted && !timedOut && refusesResponseFormat(error)) {
          // Another call may have stepped down already; never step back up.
          if (output === mode) output = next;
          logger?.warn(
            { model, from: mode, to: output, message: scrub((error as Error).message, apiKey ?? '') },
            'chat server refuses this response format; trying the next',
          );
          continue;
        }
        const mapped = toAvatarGenError(error, {
          operation: OPERATION,
          apiKey: apiKey ?? '',
          cancelled: signal?.aborted ?? false,
          timedOut,
          timeoutMs,
          keyVariable,
        });
        logger?.warn({ operation: OPERATION, model, kind: mapped.kind, ms: Date.now() - started }, mapped.message);
        throw mapped;
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      }
      const usage = answer?.usage;
      if (usage && onUsage) {
        onUsage({ provider: SOURCE, model, inputTokens: usage.prompt_tokens ?? 0, outputTokens: usage.completion_tokens ?? 0 });
      }
      logger?.debug({ operation: OPERATION, model, output: mode, ms: Date.now() - started, usage }, 'openai chat call');
      return finished(answer);
    }
  }

  /** The answer's text, or the typed error for a refusal, a content filter or a malformed answer. */
  function finished(answer: ChatCompletion): Finished {
    const where = `OpenAI ${OPERATION} (${model})`;
    const choice = Array.isArray(answer?.choices) ? answer.choices[0] : undefined;
    if (!choice || typeof choice.message !== 'object' || choice.message === null) {
      throw new InvalidResponseError(SOURCE, `${where} answered without a choice`);
    }
    const refusal = choice.message.refusal;
    if (typeof refusal === 'string' && refusal.trim() !== '') {
      throw new ModerationError(SOURCE, `${where} refused: ${scrub(refusal.trim(), apiKey ?? '')}`);
    }
    const text = typeof choice.message.content === 'string' ? choice.message.content : '';
    if (choice.finish_reason === 'content_filter') {
      const words = text.trim() ? `: ${scrub(text.trim(), apiKey ?? '')}` : '';
      throw new ModerationError(SOURCE, `${where} stopped by the content filter${words}`);
    }
    if (text.trim() === '' && choice.finish_reason !== 'length') {
      throw new InvalidResponseError(SOURCE, `${where} answered with no text (finish_reason ${String(choice.finish_reason)})`);
    }
    return { text, finish: choice.finish_reason ?? null };
  }

  const personas: PersonaProvider = {
    // The model, named in every picture's provenance mark.
    describe: () => ({ model }),
    async generate(request: PersonaRequest): Promise<PersonaBatch> {
      throwIfAborted(request.signal);
      let count = request.count;
      for (;;) {
        // A smaller call asks for the first `count` personas only: their quotas, never the whole list
        // (the pipeline asks again for the rest with their own quotas).
        const quotas = request.quotas?.slice(0, count);
        const answer = await complete(
          personaMessages({ ...request, count, quotas }),
          'personas',
          personaListJsonSchema(),
          request.signal,
          request.onUsage,
        );
        const batch = readPersonas(answer.text);
        if (answer.finish === 'length' && batch.personas.length === 0) {
          // Cut off at the model's output limit: ask for fewer at once; the pipeline asks again for the rest.
          if (count > 1) {
            const smaller = Math.ceil(count / 2);
            logger?.warn({ model, asked: count, next: smaller }, 'chat answer cut off at the token limit; asking for fewer personas');
            count = smaller;
            continue;
          }
          throw new InvalidResponseError(
            SOURCE,
            `OpenAI ${OPERATION} (${model}): the answer was cut off at the token limit (finish_reason length) even for one persona`,
          );
        }
        if (batch.personas.length === 0) {
          const reasons = batch.rejected.slice(0, 3).map((r) => r.reason);
          throw new InvalidResponseError(
            SOURCE,
            `OpenAI ${OPERATION} (${model}) answered with no usable persona${
              reasons.length > 0 ? ` (${batch.rejected.length} rejected: ${reasons.join('; ')})` : ' (no JSON object in its text)'
            }`,
          );
        }
        // Fewer than asked is returned as is: the pipeline asks again for the rest.
        return { personas: batch.personas.slice(0, count), rejected: batch.rejected };
      }
    },
  };

  const prompts: ImagePromptProvider = {
    describe: () => ({ model }),
    async nextPrompt(request: PromptRequest): Promise<string> {
      throwIfAborted(request.signal);
      const answer = await complete(imagePromptMessages(request), 'image_prompt', imagePromptJsonSchema(), request.signal, request.onUsage);
      const parsed = readPrompt(answer.text);
      if (!parsed.ok) {
        const cut = answer.finish === 'length' ? ' (cut off at the token limit)' : '';
        throw new InvalidResponseError(SOURCE, `OpenAI ${OPERATION} (${model}) answered without a usable prompt${cut}: ${parsed.reason}`);
      }
      return parsed.prompt;
    },
  };

  return {
    personas,
    prompts,
    get output() {
      return output;
    },
  };
}

function validateChatOptions(options: OpenAIChatOptions): string[] {
  const issues: string[] = [];
  if (options.baseURL !== undefined) {
    try {
      const url = new URL(options.baseURL);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') issues.push('OPENAI_CHAT_BASE_URL must be an http(s) URL');
    } catch {
      issues.push('OPENAI_CHAT_BASE_URL must be a URL such as http://127.0.0.1:11434/v1');
    }
  }
  const t = options.temperature;
  if (t !== undefined && !(Number.isFinite(t) && t >= 0 && t <= 2)) issues.push('OPENAI_CHAT_TEMPERATURE must be a number from 0 to 2');
  const ms = options.timeoutMs;
  if (ms !== undefined && !(Number.isFinite(ms) && ms > 0)) issues.push('OPENAI_CHAT_TIMEOUT_SECONDS must be a positive number');
  if (options.output !== undefined && !(CHAT_OUTPUTS as readonly string[]).includes(options.output)) {
    issues.push(`OPENAI_CHAT_OUTPUT must be one of ${CHAT_OUTPUTS.join(', ')}`);
  }
  return issues;
}
