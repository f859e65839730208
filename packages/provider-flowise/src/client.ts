import { CancelledError, InvalidResponseError, ProviderError } from '@avatargen/core';

export const SOURCE = 'flowise';

/** One entry of `overrideConfig.startState.startAgentflow_0`. */
export interface StartStateEntry {
  key: string;
  value: string;
}

export interface PredictionClientOptions {
  /** Base URL of the Flowise server, e.g. http://flowise:3000 (a path prefix is kept). */
  url: string;
  /** Bearer key; omitted from the request when undefined (a flow without API key). */
  apiKey?: string;
  fetch?: typeof globalThis.fetch;
  /** Largest answer accepted, in bytes. Default MAX_ANSWER_BYTES. */
  maxAnswerBytes?: number;
}

export interface PredictionCall {
  /** "persona" or "prompt": names the flow in messages. */
  flow: string;
  flowId: string;
  startState: StartStateEntry[];
  timeoutMs: number;
  signal?: AbortSignal;
}

/** The parts of a successful prediction answer the providers use. */
export interface PredictionAnswer {
  text: string;
}

/**
 * Largest answer read. A 10-persona answer with Flowise's execution trace is about 60 kB; far
 * more is a broken server or proxy, and reading on would only fill memory.
 */
export const MAX_ANSWER_BYTES = 32 * 1024 * 1024;

/** Longest part of Flowise's `message` repeated in our errors. */
const MAX_MESSAGE = 300;
/** Node and undici codes of failures where the request may not have reached Flowise, or the answer got lost. */
const NETWORK_CODES = /\b(ECONNRESET|ECONNREFUSED|ECONNABORTED|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|UND_ERR_\w+)\b/;

function predictionUrl(base: string, flowId: string): string {
  const root = base.endsWith('/') ? base : `${base}/`;
  return new URL(`api/v1/prediction/${encodeURIComponent(flowId)}`, root).toString();
}

/** Parses Retry-After (seconds or an HTTP date) into milliseconds. */
export function parseRetryAfter(header: string | null, now = Date.now()): number | undefined {
  if (!header) return undefined;
  const trimmed = header.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function networkCode(error: unknown): string | undefined {
  const seen = new Set<unknown>();
  for (let e: unknown = error; e && typeof e === 'object' && !seen.has(e); e = (e as { cause?: unknown }).cause) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.test(code)) return code;
    const match = NETWORK_CODES.exec(String((e as { message?: unknown }).message ?? ''));
    if (match) return match[1];
  }
  return undefined;
}

/**
 * Calls Flowise's prediction endpoint and turns every failure into core's typed errors. Messages
 * name the flow and its id and carry Flowise's own `message` (shortened), never the key or the
 * whole body.
 */
export class PredictionClient {
  readonly #url: string;
  readonly #apiKey: string | undefined;
  readonly #fetch: typeof globalThis.fetch;
  readonly #maxAnswerBytes: number;

  constructor(options: PredictionClientOptions) {
    this.#url = options.url;
    this.#maxAnswerBytes = options.maxAnswerBytes ?? MAX_ANSWER_BYTES;
    this.#apiKey = options.apiKey;
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  /** Replaces the key with [redacted] in text that came from the server, in case it was echoed. */
  #redact(text: string): string {
    const key = this.#apiKey;
    return key && key.length >= 4 ? text.split(key).join('[redacted]') : text;
  }

  async predict(call: PredictionCall): Promise<PredictionAnswer> {
    if (call.signal?.aborted) throw new CancelledError();
    const what = `Flowise ${call.flow} flow ${call.flowId}`;
    const timeout = AbortSignal.timeout(call.timeoutMs);
    const signal = call.signal ? AbortSignal.any([call.signal, timeout]) : timeout;
    const headers: Record<string, string> = { 'Content-Type': 'application/json', Accept: 'application/json' };
    if (this.#apiKey) headers.Authorization = `Bearer ${this.#apiKey}`;
    const body = JSON.stringify({
      question: 'go',
      overrideConfig: { startState: { startAgentflow_0: call.startState } },
    });

    let status: number;
    let retryAfter: string | null;
    let raw: string | undefined;
    try {
      const response = await this.#fetch(predictionUrl(this.#url, call.flowId), {
        method: 'POST',
        headers,
        body,
        signal,
      });
      status = response.status;
      retryAfter = response.headers.get('retry-after');
      raw = await readText(response, this.#maxAnswerBytes);
    } catch (error) {
      // The caller's signal wins over the timeout when both fired.
      if (call.signal?.aborted) throw new CancelledError();
      if (timeout.aborted) {
        throw ProviderError.timeout(SOURCE, `${what} did not answer within ${formatSeconds(call.timeoutMs)}`);
      }
      // The code goes into the message; fetch's error is not kept as the cause. Its chain ends in
      // a system error (code ECONNREFUSED, ECONNRESET...), which core's isDatabaseUnavailable()
      // reads as "PostgreSQL is away": a Flowise outage past its retry window would be taken for
      // a database outage and its job sent again for ever instead of being given up.
      const code = networkCode(error);
      throw ProviderError.network(
        SOURCE,
        `${what}: the request failed${code ? ` (${code})` : ''}: ${this.#redact(shorten((error as Error)?.message ?? String(error)))}`,
      );
    }

    if (raw === undefined) {
      throw new InvalidResponseError(SOURCE, `${what} answered more than ${this.#maxAnswerBytes} bytes (HTTP ${status})`, {
        status,
      });
    }
    let json: unknown;
    let parsed = true;
    try {
      json = JSON.parse(raw);
    } catch {
      parsed = false;
    }
    const flowiseMessage =
      parsed && typeof json === 'object' && json !== null && typeof (json as { message?: unknown }).message === 'string'
        ? this.#redact(shorten((json as { message: string }).message))
        : undefined;
    const said = flowiseMessage ? `: ${flowiseMessage}` : '';

    if (status >= 200 && status < 300) {
      if (!parsed || typeof json !== 'object' || json === null || Array.isArray(json)) {
        throw new InvalidResponseError(SOURCE, `${what} answered HTTP ${status} with a body that is not a JSON object`, {
          status,
        });
      }
      const text = (json as { text?: unknown }).text;
      if (typeof text !== 'string' || text.trim() === '') {
        throw new InvalidResponseError(SOURCE, `${what} answered without a text field`, { status });
      }
      return { text };
    }

    // Flowise answers a refused key on the prediction endpoint with 500 "... - Unauthorized".
    if (status === 401 || status === 403 || (status >= 500 && /-\s*Unauthorized\s*$/i.test(flowiseMessage ?? ''))) {
      throw ProviderError.auth(SOURCE, `${what}: the API key was refused (HTTP ${status})${said}`, status);
    }
    if (status === 404) throw ProviderError.notFound(SOURCE, `${what} was not found (HTTP 404)${said}`);
    if (status === 429) {
      const error = ProviderError.rateLimited(SOURCE, `${what} is rate limited (HTTP 429)${said}`, parseRetryAfter(retryAfter));
      throw error;
    }
    if (status === 408) throw ProviderError.timeout(SOURCE, `${what}: the server timed out (HTTP 408)${said}`);
    if (status >= 500) {
      // A 503 may say when to come back; keep that for the retry.
      throw new ProviderError('server', `${what} failed (HTTP ${status})${said}`, {
        source: SOURCE,
        status,
        retryable: true,
        retryAfterMs: parseRetryAfter(retryAfter),
      });
    }
    // 400 (malformed flow id or body), 413, 422...: the same request will fail again.
    throw ProviderError.badRequest(SOURCE, `${what} refused the request (HTTP ${status})${said}`, status);
  }
}

/** The body as text, or undefined when it is larger than `limit` bytes (the rest is not read). */
async function readText(response: Response, limit: number): Promise<string | undefined> {
  if (!response.body) return '';
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    await response.body.cancel().catch(() => {});
    return undefined;
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function shorten(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > MAX_MESSAGE ? `${oneLine.slice(0, MAX_MESSAGE)}…` : oneLine;
}

function formatSeconds(ms: number): string {
  return ms >= 1000 && ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
