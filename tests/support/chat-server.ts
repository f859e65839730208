/**
 * A local stand-in for an OpenAI-compatible chat server (`POST /v1/chat/completions`), for tests.
 * A real `node:http` server on 127.0.0.1 that answers in OpenAI's wire format:
 * `{ id, object: 'chat.completion', model, choices: [{ message: { content, refusal }, finish_reason }], usage }`
 * and error bodies `{ error: { message, type, param, code } }`.
 *
 * It CHECKS each request the way OpenAI does and refuses a wrong one: the Bearer key (401), the
 * model (404 model_not_found), the messages, unknown parameters, and `response_format`: a
 * `json_schema` must be strict-valid (every object closed and all its properties required), a
 * `json_object` needs the word "json" in the messages. In `dialect: 'ollama'` it refuses
 * `json_schema` with a 400 (older Ollama, LM Studio, some gateways) and takes `json_object`.
 *
 * Like a model it reads the request: "Write exactly N personas" gets N personas (core's field
 * names, inside `{"personas": [...]}`), a request for a `final_prompt` gets a prompt naming the
 * persona's job and city and differing from the numbered ideas to avoid. Without a
 * `response_format` it answers in ``` fences with prose around, as chat models do. It records the
 * per-persona quotas a prompt names ("Persona 1 must be: ...") but ignores them, as a model may:
 * its personas are the same with or without. Scripted
 * answers (`enqueue`) cover the failures: fewer personas, a cut answer (`finish_reason: length`),
 * a refusal, the content filter, 429 with retry-after, 5xx, a stall.
 *
 * ```ts
 * const chat = await startChatServer({ apiKey: 'sk-chat', model: 'gpt-4.1-mini' });
 * chat.enqueue({ kind: 'length' }, { kind: 'rate-limit', retryAfter: '1' });
 * // ... point the client at chat.baseURL (ends in /v1) ...
 * expect(chat.requests[0]?.body.response_format).toMatchObject({ type: 'json_schema' });
 * ```
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { listenOn } from './listen.js';
import { checkAuth, invalid, readBody, Rejection, sendError, sendJson } from './openai-wire.js';

export type ChatScriptedAnswer =
  | /** The normal answer, with only `count` personas when given (fewer than asked). */ { kind: 'normal'; count?: number }
  | /** 200 with this content and finish_reason (default stop). */ { kind: 'text'; content: string; finishReason?: string }
  | /** The normal answer cut at 60 %, finish_reason length (truncated JSON). */ { kind: 'length' }
  | /** The model refuses: `message.refusal` set, content null. */ { kind: 'refusal'; refusal?: string }
  | /** finish_reason content_filter, with a partial content. */ { kind: 'content-filter'; content?: string }
  | /** 429 with `retry-after` (seconds) as given. */ { kind: 'rate-limit'; retryAfter?: string }
  | /** A server error (default 500) with OpenAI's error body. */ { kind: 'server-error'; status?: number }
  | /** 200 and the headers, then the body stalls (never ends). */ { kind: 'stall' }
  | /** Any status and JSON body. */ { kind: 'raw'; status: number; body: unknown };

export interface ChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface RecordedChatRequest {
  path: string;
  authorization: string | undefined;
  /** The JSON body as received (empty object when it was not JSON). */
  body: Record<string, unknown>;
  /** What the server found wrong (it answered 4xx when not empty). */
  problems: string[];
  /** persona / prompt / other: what the messages asked for. */
  asked: 'personas' | 'prompt' | 'other';
  /** Personas asked for (from "Write exactly N personas"). */
  count: number | null;
  /**
   * The quota the prompt names for each persona, in order ("female, aged 25-40", or "any" from
   * "Persona 3: any"); null when it names none. The stand-in reads them but, like a model that
   * ignores them, does not follow them: core's quota checks are tested against it.
   */
  quotas: string[] | null;
  answer: ChatScriptedAnswer['kind'] | 'rejected';
  /** The usage the answer reported, when it had one. */
  usage: ChatUsage | null;
}

export interface ChatServerOptions {
  /** The Bearer key required; null accepts requests without (and records the header as sent). Default `sk-test-chat-key`. */
  apiKey?: string | null;
  /** The model accepted. Default `gpt-4.1-mini`. */
  model?: string;
  /** `openai` (default) takes strict json_schema; `ollama` refuses json_schema with a 400 and takes json_object. */
  dialect?: 'openai' | 'ollama';
}

export interface ChatServer {
  /** `http://127.0.0.1:<port>/v1`. */
  readonly baseURL: string;
  readonly apiKey: string | null;
  readonly model: string;
  readonly requests: RecordedChatRequest[];
  enqueue(...answers: ChatScriptedAnswer[]): void;
  pending(): number;
  reset(): void;
  /** Sum of the usage of every answer sent. */
  usageTotals(): { inputTokens: number; outputTokens: number; calls: number };
  /** Resolves once `count` requests have arrived. */
  waitForRequests(count: number): Promise<void>;
  close(): Promise<void>;
}

const DEFAULT_KEY = 'sk-test-chat-key';
const PARAMS = new Set([
  'model',
  'messages',
  'response_format',
  'temperature',
  'top_p',
  'max_tokens',
  'max_completion_tokens',
  'seed',
  'n',
  'stream',
  'user',
]);
const ROLES = new Set(['system', 'developer', 'user', 'assistant']);

const FIRST = ['Ana', 'Bruno', 'Chiara', 'Dmitri', 'Efua', 'Farid', 'Greta', 'Hiro', 'Ines', 'Jonas', 'Kemi', 'Luca'];
const LAST = ['Silva', 'Costa', 'Rossi', 'Petrov', 'Mensah', 'Haddad', 'Berg', 'Tanaka', 'Moreau', 'Keller', 'Adeyemi', 'Bianchi'];
const CITIES = [
  ['Lisbon', 'Lisboa'],
  ['Porto', 'Porto'],
  ['Braga', 'Braga'],
  ['Coimbra', 'Coimbra'],
] as const;
const SCENES = [
  'at the morning market',
  'on a tram at dusk',
  'at a friend’s birthday dinner',
  'hiking a coastal trail',
  'in a small bookshop',
  'at a football match',
];

export async function startChatServer(options: ChatServerOptions = {}): Promise<ChatServer> {
  const apiKey = options.apiKey === undefined ? DEFAULT_KEY : options.apiKey;
  const model = options.model ?? 'gpt-4.1-mini';
  const dialect = options.dialect ?? 'openai';
  const queue: ChatScriptedAnswer[] = [];
  const requests: RecordedChatRequest[] = [];
  const sockets = new Set<Socket>();
  let waiters: Array<{ count: number; resolve: () => void }> = [];
  let made = 0;
  const totals = { inputTokens: 0, outputTokens: 0, calls: 0 };

  const record = (request: RecordedChatRequest) => {
    requests.push(request);
    const ready = waiters.filter((w) => requests.length >= w.count);
    waiters = waiters.filter((w) => requests.length < w.count);
    for (const w of ready) w.resolve();
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
    const raw = await readBody(req);
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const recorded: RecordedChatRequest = {
      path,
      authorization: req.headers.authorization,
      body: {},
      problems: [],
      asked: 'other',
      count: null,
      quotas: null,
      answer: 'rejected',
      usage: null,
    };
    try {
      if (path !== '/v1/chat/completions' || req.method !== 'POST') {
        throw new Rejection(404, {
          message: `Invalid URL (${req.method} ${path})`,
          type: 'invalid_request_error',
          param: null,
          code: null,
        });
      }
      if (apiKey !== null) checkAuth(req.headers.authorization, apiKey);
      if (!/^application\/json\b/.test(req.headers['content-type'] ?? '')) throw invalid('Content-Type must be application/json');
      try {
        recorded.body = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
      } catch {
        throw invalid('We could not parse the JSON body of your request.');
      }
      check(recorded.body);
    } catch (error) {
      if (!(error instanceof Rejection)) throw error;
      recorded.problems.push(error.message);
      record(recorded);
      sendError(res, error.status, error.body);
      return;
    }
    const user = userText(recorded.body);
    const wanted = /Write exactly (\d+) personas?/.exec(user);
    recorded.asked = wanted ? 'personas' : user.includes('final_prompt') ? 'prompt' : 'other';
    recorded.count = wanted ? Number(wanted[1]) : null;
    recorded.quotas = quotasOf(user);
    const answer = queue.shift() ?? { kind: 'normal' };
    recorded.answer = answer.kind;
    record(recorded);
    respond(res, recorded, answer);
  }

  function check(body: Record<string, unknown>): void {
    for (const key of Object.keys(body)) {
      if (!PARAMS.has(key)) throw invalid(`Unrecognized request argument supplied: ${key}`, key);
    }
    if (typeof body.model !== 'string' || body.model === '') throw invalid('you must provide a model parameter', 'model');
    if (body.model !== model) {
      throw new Rejection(404, {
        message: `The model \`${body.model}\` does not exist or you do not have access to it.`,
        type: 'invalid_request_error',
        param: null,
        code: 'model_not_found',
      });
    }
    if (body.stream === true) throw invalid('this stand-in does not stream', 'stream');
    const messages = body.messages;
    if (!Array.isArray(messages) || messages.length === 0) throw invalid("'messages' must be a non-empty array", 'messages');
    for (const [i, m] of messages.entries()) {
      const message = m as { role?: unknown; content?: unknown };
      if (typeof message !== 'object' || message === null || !ROLES.has(message.role as string)) {
        throw invalid(`Invalid value for 'messages[${i}].role'`, `messages[${i}].role`);
      }
      if (typeof message.content !== 'string' || message.content === '')
        throw invalid(`'messages[${i}].content' must be a non-empty string`, `messages[${i}].content`);
    }
    if (body.temperature !== undefined && !(typeof body.temperature === 'number' && body.temperature >= 0 && body.temperature <= 2)) {
      throw invalid('temperature must be a number from 0 to 2', 'temperature', 'decimal_above_max_value');
    }
    const format = body.response_format as { type?: unknown; json_schema?: unknown } | undefined;
    if (format === undefined) return;
    if (typeof format !== 'object' || format === null) throw invalid("Invalid type for 'response_format'", 'response_format');
    if (format.type === 'text') return;
    if (format.type === 'json_object') {
      const all = messages.map((m) => (m as { content: string }).content).join('\n');
      if (!/json/i.test(all)) {
        throw invalid("'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.", 'messages');
      }
      return;
    }
    if (format.type === 'json_schema') {
      // Older Ollama, LM Studio and some gateways: no structured outputs.
      if (dialect === 'ollama')
        throw invalid("invalid response_format type 'json_schema': only 'json_object' is supported", 'response_format');
      const spec = format.json_schema as { name?: unknown; strict?: unknown; schema?: unknown } | undefined;
      if (!spec || typeof spec !== 'object')
        throw invalid("Missing required parameter: 'response_format.json_schema'.", 'response_format.json_schema');
      if (typeof spec.name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(spec.name)) {
        throw invalid("Invalid 'response_format.json_schema.name': must match ^[a-zA-Z0-9_-]{1,64}$", 'response_format.json_schema.name');
      }
      if (spec.strict === true) {
        const problem = strictProblem(spec.schema, []);
        if (problem)
          throw invalid(`Invalid schema for response_format '${spec.name}': ${problem}`, 'response_format', 'invalid_json_schema');
      }
      return;
    }
    throw invalid(
      `Invalid value: '${String(format.type)}'. Supported values are: 'json_object', 'json_schema', and 'text'.`,
      'response_format.type',
    );
  }

  function respond(res: ServerResponse, request: RecordedChatRequest, answer: ChatScriptedAnswer): void {
    const format = (request.body.response_format as { type?: string } | undefined)?.type;
    const normal = (count?: number) => normalContent(request, format, count);
    switch (answer.kind) {
      case 'normal':
        complete(res, request, normal(answer.count), 'stop');
        return;
      case 'text':
        complete(res, request, answer.content, answer.finishReason ?? 'stop');
        return;
      case 'length': {
        const full = normal();
        complete(res, request, full.slice(0, Math.floor(full.length * 0.6)), 'length');
        return;
      }
      case 'refusal':
        complete(res, request, null, 'stop', answer.refusal ?? "I'm sorry, but I can't help with that request.");
        return;
      case 'content-filter':
        complete(res, request, answer.content ?? '', 'content_filter');
        return;
      case 'rate-limit':
        sendError(
          res,
          429,
          {
            message: `Rate limit reached for ${model} on tokens per min (TPM): Limit 1000, Used 1000.`,
            type: 'tokens',
            param: null,
            code: 'rate_limit_exceeded',
          },
          answer.retryAfter === undefined ? {} : { 'retry-after': answer.retryAfter },
        );
        return;
      case 'server-error':
        sendError(res, answer.status ?? 500, {
          message: 'The server had an error while processing your request. Sorry about that!',
          type: 'server_error',
          param: null,
          code: null,
        });
        return;
      case 'stall':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(
          '{"id": "chatcmpl-stall", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "{\\"personas\\": [',
        );
        return;
      case 'raw':
        sendJson(res, answer.status, answer.body);
        return;
    }
  }

  function complete(
    res: ServerResponse,
    request: RecordedChatRequest,
    content: string | null,
    finish: string,
    refusal: string | null = null,
  ): void {
    const promptChars = JSON.stringify(request.body.messages).length;
    const usage = {
      prompt_tokens: Math.ceil(promptChars / 4),
      completion_tokens: Math.ceil((content ?? refusal ?? '').length / 4),
      total_tokens: 0,
    };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    request.usage = usage;
    totals.inputTokens += usage.prompt_tokens;
    totals.outputTokens += usage.completion_tokens;
    totals.calls++;
    sendJson(res, 200, {
      id: `chatcmpl-${Math.random().toString(36).slice(2)}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: `${model}-2025-04-14`,
      choices: [{ index: 0, message: { role: 'assistant', content, refusal, annotations: [] }, logprobs: null, finish_reason: finish }],
      usage,
      system_fingerprint: 'fp_test',
    });
  }

  /** What a model would answer: personas or a prompt, shaped by the response format. */
  function normalContent(request: RecordedChatRequest, format: string | undefined, count?: number): string {
    let json: string;
    if (request.asked === 'personas') {
      const n = count ?? request.count ?? 1;
      json = JSON.stringify({ personas: Array.from({ length: n }, () => persona(made++)) });
    } else if (request.asked === 'prompt') {
      json = JSON.stringify({ final_prompt: promptFor(userText(request.body)) });
    } else {
      json = '{"answer": "I do not know what to write."}';
    }
    // Without a response format a chat model wraps its JSON in prose and fences.
    return format === 'json_schema' || format === 'json_object'
      ? json
      : `Sure! Here it is:\n\`\`\`json\n${json}\n\`\`\`\nLet me know if you need changes.`;
  }

  await listenOn(server, 0);
  return {
    get baseURL() {
      return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
    },
    apiKey,
    model,
    requests,
    enqueue: (...answers) => void queue.push(...answers),
    pending: () => queue.length,
    reset() {
      requests.length = 0;
      queue.length = 0;
      totals.inputTokens = totals.outputTokens = totals.calls = 0;
    },
    usageTotals: () => ({ ...totals }),
    waitForRequests(count) {
      if (requests.length >= count) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ count, resolve }));
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function persona(i: number): Record<string, unknown> {
  const first = FIRST[i % FIRST.length] as string;
  const last = LAST[(i * 7 + 3) % LAST.length] as string;
  const [city, state] = CITIES[i % CITIES.length] as readonly [string, string];
  return {
    firstName: first,
    lastName: last,
    gender: i % 2 === 0 ? 'f' : 'm',
    ethnicity: 'Portuguese',
    age: 22 + ((i * 5) % 40),
    bios: {
      facebook: `${first} from ${city}. Family, friends and "good coffee".\nSecond line.`,
      instagram: `☕ ${city} | tram driver`,
      x: `Tram driver. Opinions my own. #${i}`,
      tiktok: `Day in the life of a tram driver in ${city}`,
    },
    jobTitle: 'Tram driver',
    workplace: 'Carris',
    eduEstablishment: 'Escola Secundária',
    eduStudy: 'Mechanics',
    currentCity: city,
    currentState: state,
    currentCountry: 'Portugal',
    prevCity: 'Faro',
    prevState: 'Algarve',
    about: `${first} ${last} drives trams in ${city}.`,
  };
}

/** A prompt that uses the persona's job and city, and a scene after the numbered ideas already used. */
function promptFor(user: string): string {
  const used = (user.match(/^\d+\. /gm) ?? []).length;
  const data = /The person: (\{.*\})/.exec(user)?.[1];
  let who = 'the person';
  let where = 'their city';
  let job = 'work';
  if (data) {
    const person = JSON.parse(data) as { firstname?: string; current_city?: string; job_title?: string };
    who = person.firstname ?? who;
    where = person.current_city || where;
    job = person.job_title || job;
  }
  return `Four amateur phone photos of ${who} in ${where}: ${SCENES[used % SCENES.length]}, then at ${job}, (idea ${used + 1}).`;
}

/** "Persona 1 must be: female, aged 25-40" and "Persona 2: any" lines, in persona order; null when there are none. */
function quotasOf(user: string): string[] | null {
  const lines = [...user.matchAll(/^Persona (\d+)(?: must be: (.+)|: any)$/gm)];
  if (lines.length === 0) return null;
  const quotas: string[] = [];
  for (const [, n, quota] of lines) quotas[Number(n) - 1] = quota ?? 'any';
  return quotas;
}

function userText(body: Record<string, unknown>): string {
  const messages = Array.isArray(body.messages) ? (body.messages as Array<{ role?: string; content?: unknown }>) : [];
  return messages
    .filter((m) => m.role === 'user')
    .map((m) => String(m.content))
    .join('\n');
}

/** Why a schema is not valid for strict structured outputs, or null. */
function strictProblem(schema: unknown, path: string[]): string | null {
  const at = `In context=(${path.map((p) => `'${p}'`).join(', ')})`;
  if (typeof schema !== 'object' || schema === null) return `${at}, schema must be an object`;
  const s = schema as {
    type?: unknown;
    properties?: Record<string, unknown>;
    required?: unknown;
    additionalProperties?: unknown;
    items?: unknown;
    anyOf?: unknown[];
  };
  if (path.length === 0 && s.type !== 'object') return `${at}, the root schema must be of type 'object'`;
  for (const key of ['minLength', 'maxLength', '$schema']) {
    if (key in s) return `${at}, '${key}' is not permitted.`;
  }
  if (s.type === 'object') {
    if (s.additionalProperties !== false) return `${at}, 'additionalProperties' is required to be supplied and to be false.`;
    const keys = Object.keys(s.properties ?? {});
    const required = Array.isArray(s.required) ? (s.required as string[]) : [];
    const missing = keys.filter((k) => !required.includes(k));
    if (missing.length > 0 || !Array.isArray(s.required)) {
      return `${at}, 'required' is required to be supplied and to be an array including every key in properties. Missing '${missing[0] ?? ''}'.`;
    }
    for (const key of keys) {
      const problem = strictProblem(s.properties?.[key], [...path, 'properties', key]);
      if (problem) return problem;
    }
  }
  if (s.items !== undefined) {
    const problem = strictProblem(s.items, [...path, 'items']);
    if (problem) return problem;
  }
  for (const [i, sub] of (s.anyOf ?? []).entries()) {
    const problem = strictProblem(sub, [...path, 'anyOf', String(i)]);
    if (problem) return problem;
  }
  return null;
}
