import { AvatarGenError, CancelledError, InvalidResponseError, ModerationError, ProviderError } from '@avatargen/core';
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';

export const SOURCE = 'openai';

/** Longest piece of a server message we pass on (a gateway may answer with a whole HTML page). */
const MAX_MESSAGE = 300;

/**
 * Server-advised wait from `retry-after-ms` (OpenAI's own header, milliseconds) or `retry-after`
 * (seconds or an HTTP date). Undefined when absent or unreadable.
 */
export function parseRetryAfter(headers: Headers | undefined, now: number = Date.now()): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get('retry-after-ms');
  if (ms !== null && ms.trim() !== '') {
    const value = Number(ms);
    if (Number.isFinite(value) && value >= 0) return Math.ceil(value);
  }
  const after = headers.get('retry-after');
  if (after === null || after.trim() === '') return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(after)) return Math.ceil(Number(after) * 1000);
  const date = Date.parse(after);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** True when a 400 answer is the image service's safety system refusing the request. */
export function isModerationBlock(error: { status?: number; code?: string | null; message?: string }): boolean {
  if (error.status !== 400) return false;
  if (error.code === 'moderation_blocked') return true;
  return /rejected (?:by|as a result of) (?:the|our) safety system|safety_violations=\[/i.test(error.message ?? '');
}

/** Removes the API key (and anything shaped like an OpenAI key) from text that leaves the provider. */
export function scrub(text: string, apiKey: string): string {
  let out = apiKey.length >= 4 ? text.split(apiKey).join('[redacted]') : text;
  out = out.replace(/\bsk-[A-Za-z0-9_*-]{6,}/g, '[redacted]');
  return out.length > MAX_MESSAGE ? `${out.slice(0, MAX_MESSAGE)}...` : out;
}

export interface CallState {
  /** Which call failed, e.g. "images/edits", for the message. */
  operation: string;
  apiKey: string;
  /** The caller's signal fired. */
  cancelled: boolean;
  /** Our own timer fired. */
  timedOut: boolean;
  timeoutMs: number;
  /** The variable that holds the key, named when the server refuses it. Default OPENAI_API_KEY. */
  keyVariable?: string;
}

/** The server's own message from an SDK error, without the SDK's status prefix. */
function serverMessage(error: APIError): string {
  const body = error.error as { message?: unknown } | undefined;
  if (body && typeof body.message === 'string') return body.message;
  return error.message.replace(/^\d{3}\s+/, '');
}

/** Turns anything the SDK (or fetch under it) throws into one of core's typed errors. */
export function toAvatarGenError(error: unknown, state: CallState): AvatarGenError {
  const where = `OpenAI ${state.operation}`;
  if (state.cancelled) return new CancelledError(`${where} was cancelled`);
  if (state.timedOut || error instanceof APIConnectionTimeoutError) {
    return ProviderError.timeout(SOURCE, `${where} timed out after ${Math.round(state.timeoutMs / 1000)} s`);
  }
  if (error instanceof AvatarGenError) return error;
  if (error instanceof APIUserAbortError) return new CancelledError(`${where} was cancelled`);
  if (error instanceof APIConnectionError) {
    const cause = error.cause instanceof Error ? `: ${scrub(error.cause.message, state.apiKey)}` : '';
    return ProviderError.network(SOURCE, `${where} could not reach the server${cause}`);
  }
  if (error instanceof APIError) {
    const status = error.status ?? 0;
    const message = scrub(serverMessage(error), state.apiKey);
    if (isModerationBlock({ status, code: error.code, message })) {
      return new ModerationError(SOURCE, `${where} blocked by the safety system: ${message}`, { status });
    }
    // The server's message is left out on purpose: OpenAI echoes (part of) the key there.
    if (status === 401)
      return ProviderError.auth(
        SOURCE,
        `${where}: the API key was refused (HTTP 401); check ${state.keyVariable ?? 'OPENAI_API_KEY'}`,
        401,
      );
    if (status === 403) return ProviderError.auth(SOURCE, `${where}: access denied (HTTP 403): ${message}`, 403);
    if (status === 429) {
      return ProviderError.rateLimited(SOURCE, `${where} rate limited (HTTP 429): ${message}`, parseRetryAfter(error.headers));
    }
    if (status === 404) return ProviderError.notFound(SOURCE, `${where} not found (HTTP 404): ${message}`);
    if (status === 408) return ProviderError.timeout(SOURCE, `${where}: the server timed out (HTTP 408)`);
    if (status === 409 || status >= 500) return ProviderError.server(SOURCE, `${where} failed (HTTP ${status}): ${message}`, status);
    return ProviderError.badRequest(SOURCE, `${where} refused the request (HTTP ${status}): ${message}`, status);
  }
  // fetch under the SDK: an answer that says JSON but is not, or a body cut off mid-way.
  if (error instanceof SyntaxError) {
    return new InvalidResponseError(SOURCE, `${where} answered with a body that is not valid JSON`);
  }
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return ProviderError.network(SOURCE, `${where} failed: ${scrub(text, state.apiKey)}`);
}
