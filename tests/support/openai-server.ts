/**
 * A local stand-in for the OpenAI Images API (`POST /v1/images/generations` and
 * `POST /v1/images/edits`), for tests. It is a real `node:http` server on 127.0.0.1 that
 * speaks OpenAI's wire format: JSON answers `{ created, data: [{ b64_json }], usage }` and
 * error bodies `{ error: { message, type, param, code } }`.
 *
 * It CHECKS what it receives, the way the real service does, and answers 401/400 when the
 * request is wrong: the Bearer key, the model, the prompt, every parameter (unknown ones are
 * refused), and for edits the multipart parts, their content types and that the bytes of each
 * image really are that type. Every request is recorded (with the problems found) so tests can
 * assert on it.
 *
 * The GPT image options are checked too: `quality`, `size`, `output_format`,
 * `output_compression` (0-100, jpeg and webp only), `background` (transparent needs png or webp)
 * and, on edits, `input_fidelity` and up to 16 `image[]` parts, recorded in order. A model can be
 * made to refuse parameters (`refuse`), answering 400 `Unknown parameter: '<name>'.` as the
 * service does for a model without them. The default answer comes in the asked `output_format`
 * (through `encode`, which tests give; without it a jpeg or webp request is answered 500).
 *
 * Answers are scripted per test with `enqueue(...)` (first matching answer wins, FIFO); with
 * nothing queued it returns a small valid PNG: a 2x2 grid for edits, a bordered photo for
 * generations, so whole tasks can run against it.
 *
 * ```ts
 * const server = await startOpenAIServer({ apiKey: 'sk-test' });
 * server.enqueue({ kind: 'moderation-block', endpoint: 'edits' }, { kind: 'rate-limit', retryAfter: '7' });
 * // ... point the client at server.baseURL (ends in /v1) ...
 * expect(server.requests[0]?.fields.prompt).toContain('selfie');
 * server.setDefaultAnswer({ kind: 'server-error', status: 503 }); // every call not queued, until null
 * await server.stop();     // the service goes down: connections refused, open ones reset
 * await server.restart();  // back on the same port (same baseURL), with its requests and queue
 * await server.close();
 * ```
 *
 * With `imagesPerMinute` it enforces a per-minute image limit the way the service does: every
 * image call (generations and edits alike) that would be the limit's +1st in the last 60 s
 * (a sliding window) is answered 429 `rate_limit_exceeded` with `retry-after` (seconds until the
 * oldest call leaves the window). `rate` counts calls and 429s and keeps their times, so a test
 * can tell how close a fleet of workers kept to the limit (`callsPerMinute`). `host` picks the
 * address it listens on (0.0.0.0 or a network namespace's peer address, for processes that do
 * not share its loopback).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { readImageInfo } from '@avatargen/core';
import { makeBorderedPng, makeGridPng } from '@avatargen/core/testing';
import { listenOn } from './listen.js';
import { checkAuth, invalid, readBody, Rejection, sendError, sendJson } from './openai-wire.js';

export type ImagesEndpoint = 'generations' | 'edits';

/** One scripted answer. `endpoint` restricts it to one endpoint (default: the next call of either). */
export type OpenAIScriptedAnswer = { endpoint?: ImagesEndpoint } & (
  | /** 200 with this image (default: the endpoint's default PNG). */ { kind: 'image'; image?: Uint8Array }
  | /** 400 `moderation_blocked`, the way gpt-image models refuse a request. */ {
      kind: 'moderation-block';
      violations?: string[];
    }
  | /** 400 with the older "rejected as a result of our safety system" message and no code. */ {
      kind: 'safety-message';
    }
  | /** 429 with Retry-After (seconds or an HTTP date) and/or retry-after-ms, as given. */ {
      kind: 'rate-limit';
      retryAfter?: string;
      retryAfterMs?: string;
    }
  | /** A server error (default 500) with OpenAI's error body. */ { kind: 'server-error'; status?: number }
  | /** Never answers; the socket is closed by the client or by `close()`. */ { kind: 'hang' }
  | /** Sends 200, the headers and the start of the body, then stalls (a slow or stuck proxy). */ {
      kind: 'stall-body';
    }
  | /** 200 whose `data[0]` has no `b64_json` (a `url` instead). */ { kind: 'no-b64' }
  | /** 200 whose `data` is empty. */ { kind: 'empty-data' }
  | /** 200 whose `b64_json` decodes to bytes that are not an image. */ { kind: 'garbage-b64' }
  | /** 200 with a body that is not JSON although it says so. */ { kind: 'broken-json' }
  | /** Any status and body, sent as JSON. */ {
      kind: 'raw';
      status: number;
      body: unknown;
      headers?: Record<string, string>;
    }
);

export interface RecordedFile {
  /** Form field name, e.g. `image[]`. */
  field: string;
  filename: string;
  /** The part's Content-Type. */
  type: string;
  bytes: Buffer;
}

export interface RecordedRequest {
  endpoint: ImagesEndpoint | null;
  method: string;
  path: string;
  /** The `Authorization` header as received. */
  authorization: string | undefined;
  contentType: string | undefined;
  /** Generations: the JSON body; edits: the text fields of the form. */
  fields: Record<string, unknown>;
  /** Edits: the file parts, in order. */
  files: RecordedFile[];
  /** What the server found wrong with the request (it answered 400/401 when not empty). */
  problems: string[];
  /** The scripted answer used, or 'default' / 'rejected'. */
  answer: OpenAIScriptedAnswer['kind'] | 'default' | 'rejected';
}

export interface OpenAIServerOptions {
  /** The Bearer key the server accepts. Default `sk-test-openai-key`. */
  apiKey?: string;
  /** The model the server accepts. Default `gpt-image-1.5`. Null accepts any model. */
  model?: string | null;
  /** Default answer of edits (a 2x2 grid PNG). */
  editImage?: Uint8Array;
  /** Default answer of generations (a bordered photo PNG). */
  generationImage?: Uint8Array;
  /** Per model, the parameters it refuses with a 400 naming them (e.g. `{ 'gpt-image-1.5': ['input_fidelity'] }`). */
  refuse?: Record<string, string[]>;
  /** Re-encodes a default answer for `output_format` jpeg or webp (sharp, in tests that have it). */
  encode?: (png: Buffer, format: 'jpeg' | 'webp', compression: number | undefined) => Buffer | Promise<Buffer>;
  /**
   * Image calls allowed in any 60 s (a sliding window, as the service's IPM limit): beyond it a
   * call is answered 429 with `retry-after`. Calls refused with 429 do not use the limit. Default: no limit.
   */
  imagesPerMinute?: number;
  /** The address to listen on. Default 127.0.0.1; `0.0.0.0` for every interface. */
  host?: string;
}

/** One image call the rate limit looked at: when it arrived and whether it was let through. */
export interface RateEntry {
  /** Date.now() at arrival. */
  at: number;
  endpoint: ImagesEndpoint;
  /** 429: refused by `imagesPerMinute`. */
  status: 200 | 429;
}

/** What the `imagesPerMinute` limit saw (every valid image call, also without a limit). */
export interface RateRecord {
  readonly limit: number | null;
  /** Every image call that passed the checks, in arrival order. */
  readonly entries: RateEntry[];
  /** Calls counted (entries.length). */
  readonly calls: number;
  /** Calls answered 429 by the limit. */
  readonly rateLimited: number;
}

export interface OpenAIServer {
  /** `http://127.0.0.1:<port>/v1` (or the `host` given, when not 0.0.0.0): what the OpenAI SDK calls `baseURL`. */
  readonly baseURL: string;
  /** The baseURL through another address of this machine (e.g. a namespace's peer address when listening on 0.0.0.0). */
  baseURLAt(host: string): string;
  /** The image calls and 429s of the `imagesPerMinute` limit. */
  readonly rate: RateRecord;
  readonly apiKey: string;
  /** Every request received, oldest first. */
  readonly requests: RecordedRequest[];
  /** Adds answers to the end of the queue. */
  enqueue(...answers: OpenAIScriptedAnswer[]): void;
  /** Answers still queued. */
  pending(): number;
  /** Forgets recorded requests, queued answers, the default answer and the rate record. */
  reset(): void;
  /** Resolves when `count` requests have arrived (e.g. to know a `hang` request is in flight). */
  waitForRequests(count: number): Promise<void>;
  /**
   * The answer for every call the queue does not answer (an outage answering 503, say); null
   * restores the default image. Requests the server refuses (401/400) are refused as before.
   */
  setDefaultAnswer(answer: OpenAIScriptedAnswer | null): void;
  /** Makes `model` refuse these parameters from now on (until reset(), which restores the options' list). */
  refuse(model: string, params: string[]): void;
  /** The TCP port; it stays the same across stop() and restart(). */
  readonly port: number;
  /** False between stop() and restart() (and after close()). */
  readonly listening: boolean;
  /**
   * Takes the service down: the server stops listening, so new connections are refused
   * (ECONNREFUSED), and every open connection (calls in progress, idle keep-alive ones) is reset.
   * Recorded requests, the queue and the default answer stay for restart().
   */
  stop(): Promise<void>;
  /** Listens again on the same port after stop() (retrying for a few seconds while the port is busy). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

const DEFAULT_KEY = 'sk-test-openai-key';
const WINDOW_MS = 60_000;
const MAX_PROMPT = 32_000;
const SIZES = new Set(['auto', '1024x1024', '1536x1024', '1024x1536', '256x256', '512x512']);
const QUALITIES = ['auto', 'low', 'medium', 'high', 'standard', 'hd'];
const OUTPUT_FORMATS = ['png', 'jpeg', 'webp'];
const BACKGROUNDS = ['auto', 'opaque', 'transparent'];
const INPUT_FIDELITIES = ['high', 'low'];
const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/webp']);
const COMMON_PARAMS = [
  'prompt',
  'model',
  'n',
  'size',
  'quality',
  'output_format',
  'output_compression',
  'background',
  'moderation',
  'response_format',
  'user',
  'stream',
  'partial_images',
];
const GENERATION_PARAMS = new Set([...COMMON_PARAMS, 'style']);
const EDIT_FIELDS = new Set([...COMMON_PARAMS, 'input_fidelity']);
const EDIT_FILE_FIELDS = new Set(['image', 'image[]', 'mask']);

export async function startOpenAIServer(options: OpenAIServerOptions = {}): Promise<OpenAIServer> {
  const apiKey = options.apiKey ?? DEFAULT_KEY;
  const model = options.model === undefined ? 'gpt-image-1.5' : options.model;
  const editImage = Buffer.from(options.editImage ?? makeGridPng({ cell: 24, gutter: 4, margin: 4 }));
  const generationImage = Buffer.from(options.generationImage ?? makeBorderedPng({ width: 48, height: 40, border: 3 }));
  const queue: OpenAIScriptedAnswer[] = [];
  const initialRefusals = () => new Map(Object.entries(options.refuse ?? {}).map(([m, params]) => [m, new Set(params)]));
  let refusals = initialRefusals();
  const checkRefused = (fields: Record<string, unknown>) => {
    const refused = refusals.get(String(fields.model));
    for (const name of Object.keys(fields)) {
      if (refused?.has(name)) throw invalid(`Unknown parameter: '${name}'.`, name, 'unknown_parameter');
    }
  };
  const requests: RecordedRequest[] = [];
  const host = options.host ?? '127.0.0.1';
  const limit = options.imagesPerMinute ?? null;
  if (limit !== null && !(Number.isInteger(limit) && limit > 0))
    throw new TypeError(`imagesPerMinute must be a positive integer, got ${limit}`);
  const rate = { entries: [] as RateEntry[], rateLimited: 0 };
  /** Times of the calls let through in the last 60 s, oldest first. */
  let window: number[] = [];
  /** Null when the call may go through, else the whole seconds until the oldest call in the window leaves it. */
  const admit = (endpoint: ImagesEndpoint): number | null => {
    const at = Date.now();
    window = window.filter((t) => t > at - WINDOW_MS);
    const refused = limit !== null && window.length >= limit;
    rate.entries.push({ at, endpoint, status: refused ? 429 : 200 });
    if (!refused) {
      window.push(at);
      return null;
    }
    rate.rateLimited++;
    return Math.max(1, Math.ceil(((window[0] as number) + WINDOW_MS - at) / 1000));
  };
  const sockets = new Set<Socket>();
  let waiters: Array<{ count: number; resolve: () => void }> = [];

  const record = (request: RecordedRequest) => {
    requests.push(request);
    const ready = waiters.filter((w) => requests.length >= w.count);
    waiters = waiters.filter((w) => requests.length < w.count);
    for (const w of ready) w.resolve();
  };

  let defaultAnswer: OpenAIScriptedAnswer | null = null;
  let listening = false;

  const takeAnswer = (endpoint: ImagesEndpoint): OpenAIScriptedAnswer | undefined => {
    const index = queue.findIndex((a) => a.endpoint === undefined || a.endpoint === endpoint);
    if (index >= 0) return queue.splice(index, 1)[0];
    if (defaultAnswer && (defaultAnswer.endpoint === undefined || defaultAnswer.endpoint === endpoint)) return defaultAnswer;
    return undefined;
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent)
        sendError(res, 500, { message: `test server: ${String(error)}`, type: 'server_error', param: null, code: null });
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const endpoint: ImagesEndpoint | null =
      path === '/v1/images/generations' ? 'generations' : path === '/v1/images/edits' ? 'edits' : null;
    const recorded: RecordedRequest = {
      endpoint,
      method: req.method ?? '',
      path,
      authorization: req.headers.authorization,
      contentType: req.headers['content-type'],
      fields: {},
      files: [],
      problems: [],
      answer: 'rejected',
    };
    try {
      if (!endpoint || req.method !== 'POST') {
        throw new Rejection(404, {
          message: `Invalid URL (${req.method} ${path})`,
          type: 'invalid_request_error',
          param: null,
          code: null,
        });
      }
      checkAuth(req.headers.authorization, apiKey);
      if (endpoint === 'generations') {
        recorded.fields = parseJsonBody(req.headers['content-type'], body);
        checkRefused(recorded.fields);
        checkParams(recorded.fields, GENERATION_PARAMS, model);
      } else {
        const parsed = await parseMultipart(req, body);
        recorded.fields = parsed.fields;
        recorded.files = parsed.files;
        checkRefused(recorded.fields);
        checkParams(recorded.fields, EDIT_FIELDS, model);
        checkEditFiles(parsed.files);
      }
    } catch (error) {
      if (!(error instanceof Rejection)) throw error;
      recorded.problems.push(error.message);
      record(recorded);
      sendError(res, error.status, error.body);
      return;
    }
    const retryAfter = admit(endpoint);
    if (retryAfter !== null) {
      recorded.answer = 'rate-limit';
      record(recorded);
      sendError(
        res,
        429,
        {
          message: `Rate limit reached for ${String(recorded.fields.model)} in organization org-test on images per minute (IPM): Limit ${limit}, Used ${limit}, Requested 1. Please try again in ${retryAfter}s.`,
          type: 'requests',
          param: null,
          code: 'rate_limit_exceeded',
        },
        { 'retry-after': String(retryAfter) },
      );
      return;
    }
    const answer = takeAnswer(endpoint);
    recorded.answer = answer?.kind ?? 'default';
    record(recorded);
    await respond(res, endpoint, answer, recorded.fields);
  }

  /** The default image in the asked output_format. */
  async function defaultImage(endpoint: ImagesEndpoint, fields: Record<string, unknown>): Promise<Buffer | null> {
    const png = endpoint === 'edits' ? editImage : generationImage;
    const format = fields.output_format;
    if (format !== 'jpeg' && format !== 'webp') return png;
    if (!options.encode) return null;
    return options.encode(png, format, fields.output_compression as number | undefined);
  }

  async function respond(
    res: ServerResponse,
    endpoint: ImagesEndpoint,
    answer: OpenAIScriptedAnswer | undefined,
    fields: Record<string, unknown>,
  ): Promise<void> {
    switch (answer?.kind) {
      case undefined:
      case 'image': {
        const image = answer?.image ? Buffer.from(answer.image) : await defaultImage(endpoint, fields);
        if (!image) {
          sendError(res, 500, {
            message: `test server: no encoder for output_format ${String(fields.output_format)} (pass encode)`,
            type: 'server_error',
            param: null,
            code: null,
          });
          return;
        }
        sendImage(res, image, fields);
        return;
      }
      case 'moderation-block': {
        const violations = answer.violations ?? ['sexual'];
        sendError(res, 400, {
          message: `Your request was rejected by the safety system. If you believe this is an error, contact us at help.openai.com and include the request ID req_${Date.now().toString(16)}. safety_violations=[${violations.join(', ')}].`,
          type: 'image_generation_user_error',
          param: null,
          code: 'moderation_blocked',
        });
        return;
      }
      case 'safety-message':
        sendError(res, 400, {
          message:
            'Your request was rejected as a result of our safety system. Your request may contain content that is not allowed by our safety system.',
          type: 'invalid_request_error',
          param: null,
          code: null,
        });
        return;
      case 'rate-limit': {
        const headers: Record<string, string> = {};
        if (answer.retryAfter !== undefined) headers['retry-after'] = answer.retryAfter;
        if (answer.retryAfterMs !== undefined) headers['retry-after-ms'] = answer.retryAfterMs;
        sendError(
          res,
          429,
          {
            message:
              'Rate limit reached for gpt-image-1.5 in organization org-test on images per minute (IPM): Limit 5, Used 5, Requested 1.',
            type: 'requests',
            param: null,
            code: 'rate_limit_exceeded',
          },
          headers,
        );
        return;
      }
      case 'server-error':
        sendError(res, answer.status ?? 500, {
          message: 'The server had an error while processing your request. Sorry about that!',
          type: 'server_error',
          param: null,
          code: null,
        });
        return;
      case 'hang':
        return; // the request stays open until the client gives up or the server closes
      case 'stall-body':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"created": 1, "data": [{"b64_json": "iVBORw0KGgo');
        return;
      case 'no-b64':
        sendJson(res, 200, { created: now(), data: [{ url: 'https://example.invalid/image.png' }] });
        return;
      case 'empty-data':
        sendJson(res, 200, { created: now(), data: [] });
        return;
      case 'garbage-b64':
        sendJson(res, 200, {
          created: now(),
          data: [{ b64_json: Buffer.from('this is not an image, just some text bytes').toString('base64') }],
        });
        return;
      case 'broken-json':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"created": 1, "data": [{"b64_json": "iVBOR');
        return;
      case 'raw':
        sendJson(res, answer.status, answer.body, answer.headers);
        return;
    }
  }

  await listenAt(server, 0, host);
  listening = true;
  const { port } = server.address() as AddressInfo;
  const baseURLAt = (at: string) => `http://${at.includes(':') ? `[${at}]` : at}:${port}/v1`;
  const cutConnections = () => {
    server.closeAllConnections();
    for (const socket of sockets) socket.destroy();
  };

  return {
    baseURL: baseURLAt(host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host),
    baseURLAt,
    apiKey,
    requests,
    rate: {
      limit,
      entries: rate.entries,
      get calls() {
        return rate.entries.length;
      },
      get rateLimited() {
        return rate.rateLimited;
      },
    },
    enqueue: (...answers) => {
      queue.push(...answers);
    },
    pending: () => queue.length,
    refuse: (forModel, params) => {
      const set = refusals.get(forModel) ?? new Set<string>();
      for (const p of params) set.add(p);
      refusals.set(forModel, set);
    },
    reset: () => {
      refusals = initialRefusals();
      queue.length = 0;
      requests.length = 0;
      defaultAnswer = null;
      rate.entries.length = 0;
      rate.rateLimited = 0;
      window = [];
    },
    waitForRequests: (count) => (requests.length >= count ? Promise.resolve() : new Promise((resolve) => waiters.push({ count, resolve }))),
    setDefaultAnswer: (answer) => {
      defaultAnswer = answer;
    },
    port,
    get listening() {
      return listening;
    },
    stop: async () => {
      if (!listening) return;
      listening = false;
      // close() stops accepting at once; it calls back when the last connection has gone.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      cutConnections();
      await closed;
    },
    restart: async () => {
      if (listening) return;
      await listenAt(server, port, host);
      listening = true;
    },
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      listening = false;
      cutConnections();
      await closed;
    },
  };
}

/**
 * The most calls let through (status 200) in any whole sliding minute, and the fewest, over the
 * busy part: windows that start at a call and end by the last call. Null when the calls span
 * less than a minute.
 */
export function callsPerMinute(entries: readonly RateEntry[]): { min: number; max: number; windows: number } | null {
  const times = entries.filter((e) => e.status === 200).map((e) => e.at);
  const last = times.at(-1);
  if (last === undefined) return null;
  let min = Number.POSITIVE_INFINITY;
  let max = 0;
  let windows = 0;
  let end = 0;
  for (const [start, at] of times.entries()) {
    if (at + WINDOW_MS > last) break;
    while (end < times.length && (times[end] as number) < at + WINDOW_MS) end++;
    const count = end - start;
    min = Math.min(min, count);
    max = Math.max(max, count);
    windows++;
  }
  return windows === 0 ? null : { min, max, windows };
}

/** listenOn (127.0.0.1, EADDRINUSE retried on a restart), or another address for hosts other than the loopback. */
async function listenAt(server: Server, port: number, host: string): Promise<void> {
  if (host === '127.0.0.1') return listenOn(server, port);
  for (let attempt = 0; ; attempt++) {
    try {
      await new Promise<void>((resolveListen, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolveListen();
        });
      });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0 || attempt >= 50) throw error;
      await new Promise((resolveWait) => setTimeout(resolveWait, 100));
    }
  }
}

function now(): number {
  return Math.floor(Date.now() / 1000);
}

function parseJsonBody(contentType: string | undefined, body: Buffer): Record<string, unknown> {
  if (!contentType?.startsWith('application/json')) {
    throw invalid(`Invalid Content-Type header (${contentType ?? 'none'}), expected application/json.`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalid('We could not parse the JSON body of your request.');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw invalid('The body of your request must be a JSON object.');
  }
  return parsed as Record<string, unknown>;
}

async function parseMultipart(req: IncomingMessage, body: Buffer): Promise<{ fields: Record<string, unknown>; files: RecordedFile[] }> {
  const contentType = req.headers['content-type'];
  if (!contentType?.startsWith('multipart/form-data')) {
    throw invalid(`Invalid Content-Type header (${contentType ?? 'none'}), expected multipart/form-data.`);
  }
  // Only the content type (with its boundary) matters to the parser; hop-by-hop headers would not fit a Request.
  const headers = new Headers({ 'content-type': contentType });
  let form: FormData;
  try {
    form = await new Request(`http://127.0.0.1${req.url ?? '/'}`, { method: 'POST', headers, body }).formData();
  } catch {
    throw invalid('Could not parse multipart form data.');
  }
  const fields: Record<string, unknown> = {};
  const files: RecordedFile[] = [];
  for (const [name, value] of form.entries()) {
    if (typeof value === 'string') {
      if (name in fields) throw invalid(`Duplicate parameter: '${name}'.`, name, 'duplicate_parameter');
      fields[name] = coerceFormValue(name, value);
    } else {
      files.push({ field: name, filename: value.name, type: value.type, bytes: Buffer.from(await value.arrayBuffer()) });
    }
  }
  return { fields, files };
}

/** Multipart fields are text; numbers are read the way the API reads them. */
function coerceFormValue(name: string, value: string): unknown {
  if ((name === 'n' || name === 'output_compression' || name === 'partial_images') && /^\d+$/.test(value)) return Number(value);
  if (name === 'stream') return value === 'true';
  return value;
}

function checkParams(fields: Record<string, unknown>, known: Set<string>, model: string | null): void {
  for (const name of Object.keys(fields)) {
    if (!known.has(name)) throw invalid(`Unknown parameter: '${name}'.`, name, 'unknown_parameter');
  }
  const prompt = fields.prompt;
  if (typeof prompt !== 'string' || prompt.trim() === '') {
    throw invalid("Missing required parameter: 'prompt'.", 'prompt', 'missing_required_parameter');
  }
  if (prompt.length > MAX_PROMPT) {
    throw invalid(
      `Invalid 'prompt': string too long. Expected a string with maximum length ${MAX_PROMPT}, but got a string with length ${prompt.length} instead.`,
      'prompt',
      'string_above_max_length',
    );
  }
  if (model !== null && fields.model !== model) {
    throw invalid(`Invalid value: '${String(fields.model)}'. This server expects model '${model}'.`, 'model', 'invalid_value');
  }
  if (fields.n !== undefined && !(Number.isInteger(fields.n) && (fields.n as number) >= 1 && (fields.n as number) <= 10)) {
    throw invalid(`Invalid 'n': expected an integer from 1 to 10.`, 'n', 'invalid_value');
  }
  if (fields.size !== undefined && !(typeof fields.size === 'string' && SIZES.has(fields.size))) {
    throw invalid(
      `Invalid value: '${String(fields.size)}'. Supported values are: ${[...SIZES].map((s) => `'${s}'`).join(', ')}.`,
      'size',
      'invalid_value',
    );
  }
  if (fields.moderation !== undefined && fields.moderation !== 'auto' && fields.moderation !== 'low') {
    throw invalid(`Invalid value: '${String(fields.moderation)}'. Supported values are: 'low' and 'auto'.`, 'moderation', 'invalid_value');
  }
  if (fields.stream === true) throw invalid('This test server does not stream.', 'stream', 'invalid_value');
  oneOf(fields, 'quality', QUALITIES);
  oneOf(fields, 'output_format', OUTPUT_FORMATS);
  oneOf(fields, 'background', BACKGROUNDS);
  oneOf(fields, 'input_fidelity', INPUT_FIDELITIES);
  const compression = fields.output_compression;
  if (compression !== undefined) {
    if (!(Number.isInteger(compression) && (compression as number) >= 0 && (compression as number) <= 100)) {
      throw invalid(`Invalid 'output_compression': expected an integer from 0 to 100.`, 'output_compression', 'invalid_value');
    }
    if (fields.output_format !== 'jpeg' && fields.output_format !== 'webp') {
      throw invalid(`'output_compression' is only supported for the jpeg and webp output formats.`, 'output_compression', 'invalid_value');
    }
  }
  if (fields.background === 'transparent' && fields.output_format === 'jpeg') {
    throw invalid(`Transparent background is not supported for the jpeg output format.`, 'background', 'invalid_value');
  }
}

function oneOf(fields: Record<string, unknown>, name: string, values: string[]): void {
  const value = fields[name];
  if (value !== undefined && !(typeof value === 'string' && values.includes(value))) {
    throw invalid(
      `Invalid value: '${String(value)}'. Supported values are: ${values.map((v) => `'${v}'`).join(', ')}.`,
      name,
      'invalid_value',
    );
  }
}

function checkEditFiles(files: RecordedFile[]): void {
  for (const file of files) {
    if (!EDIT_FILE_FIELDS.has(file.field)) throw invalid(`Unknown parameter: '${file.field}'.`, file.field, 'unknown_parameter');
  }
  const images = files.filter((f) => f.field === 'image' || f.field === 'image[]');
  if (images.length === 0) throw invalid("Missing required parameter: 'image'.", 'image', 'missing_required_parameter');
  if (images.length > 16) throw invalid('Too many images: at most 16.', 'image', 'invalid_value');
  for (const file of images) {
    if (!IMAGE_TYPES.has(file.type)) {
      throw invalid(
        `Invalid file '${file.field}': unsupported mimetype ('${file.type || 'none'}'). Supported file formats are 'image/jpeg', 'image/png', and 'image/webp'.`,
        file.field,
        'unsupported_file',
      );
    }
    let sniffed: string;
    try {
      sniffed = readImageInfo(file.bytes).contentType;
    } catch {
      throw invalid(`Invalid image file '${file.filename}': the bytes are not an image.`, file.field, 'invalid_image_file');
    }
    if (sniffed !== file.type) {
      throw invalid(
        `Invalid image file '${file.filename}': sent as ${file.type} but the bytes are ${sniffed}.`,
        file.field,
        'invalid_image_file',
      );
    }
  }
}

/** The answer echoes what was made, as the service does (`auto` resolved). */
function sendImage(res: ServerResponse, image: Buffer, fields: Record<string, unknown>): void {
  const pick = (name: string, auto: string) =>
    typeof fields[name] === 'string' && fields[name] !== 'auto' ? (fields[name] as string) : auto;
  let format = 'png';
  try {
    format = readImageInfo(image).format;
  } catch {
    // a scripted answer that is not an image: say png, as the service would have meant
  }
  sendJson(res, 200, {
    created: now(),
    background: pick('background', 'opaque'),
    data: [{ b64_json: image.toString('base64') }],
    output_format: format,
    quality: pick('quality', 'medium'),
    size: pick('size', '1024x1024'),
    usage: {
      input_tokens: 50,
      input_tokens_details: { image_tokens: 40, text_tokens: 10 },
      output_tokens: 1056,
      total_tokens: 1106,
    },
  });
}
