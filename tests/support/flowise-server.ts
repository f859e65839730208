/**
 * A local stand-in for a Flowise 3.x server that speaks its prediction API on the wire:
 * `POST /api/v1/prediction/:flowId` with `Authorization: Bearer <key>` and a JSON body carrying
 * `overrideConfig.startState.startAgentflow_0`. It checks what Flowise checks, in Flowise's order
 * and with Flowise's status codes and error bodies (see ../shared/fixtures/flowise/README.md):
 *
 *   body not JSON -> 400 | flow id not a UUID -> 400 | unknown flow -> 404 | wrong key -> 500 "- Unauthorized"
 *
 * then checks the start state against the keys the two flows declare (the persona flow's are
 * `personaStateKeys`), and by default runs a
 * deterministic stand-in of each flow: the persona flow answers `requested_amount` valid personas
 * in the flow's exact output shape; the prompt flow answers a `final_prompt` that differs whenever
 * `prompts_history` differs. A whole generation task can run against it.
 *
 * Tests script it per request:
 *
 *   const flowise = await startFlowiseServer({ apiKey: 'k', personaFlowId, promptFlowId });
 *   flowise.setHandler(() => reply.fixture(loadFlowiseFixture('persona-10')));  // every request
 *   flowise.enqueue(reply.error(503, 'busy'), reply.flowise());                // next two, then the handler
 *   flowise.setHandler(() => reply.hang());        // never answers (until the client goes away or close())
 *   flowise.setHandler(() => reply.reset());       // TCP reset: the client sees ECONNRESET
 *   flowise.setHandler(() => reply.stall());       // headers and half a body, then silence
 *   flowise.setHandler(() => reply.garbage());     // 200 with a body that is not JSON
 *   flowise.requests                               // every request as the server saw it
 *   flowise.maxInFlight                            // most requests open at the same time
 *   await flowise.stop();       // Flowise goes down: connections refused, open ones reset
 *   await flowise.restart();    // back on the same port and URL, with its requests, queue and handler
 *   await flowise.close();
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listenOn } from './listen.js';

/** Start-state keys the persona flow declares (the old system's names). */
export const PERSONA_STATE_KEYS = [
  'requested_amount',
  'persona_description',
  'bio_language',
  'instructions_facebook',
  'instructions_instagram',
  'instructions_x',
  'instructions_tiktok',
] as const;

/**
 * Keys a persona flow built from today's README also declares (provider-flowise sends them when
 * FLOWISE_PERSONA_EXTRA_STATE names them). Optional: the provider sends none by default.
 */
export const PERSONA_EXTRA_STATE_KEYS = ['seed', 'used_names', 'quotas'] as const;

/** Start-state keys the prompt flow declares; `prompts_history` is sent from the second prompt on. */
export const PROMPT_STATE_KEYS = ['person_data', 'prompts_history'] as const;
export const PROMPT_REQUIRED_KEYS = ['person_data'] as const;
/** Keys of the JSON in `person_data`. */
export const PERSON_DATA_KEYS = [
  'firstname',
  'lastname',
  'gender',
  'bio_facebook',
  'bio_instagram',
  'bio_x',
  'bio_tiktok',
  'ethnicity',
  'age',
] as const;
/** Keys core added to `person_data` after the old system (issue 17); a flow may ignore them. */
export const PERSON_DATA_EXTRA_KEYS = ['job_title', 'workplace', 'current_city', 'current_state'] as const;
export const PROMPTS_HISTORY_PREFIX = 'Ideas already used, to avoid: ';

/** A recorded answer: `{ status, body }` as in the fixtures folder. */
export interface FlowiseFixture {
  status: number;
  body: unknown;
}

export type FlowName = 'persona' | 'prompt';

/** One request as the server received it. */
export interface RecordedRequest {
  /** 1-based arrival order. */
  seq: number;
  method: string;
  path: string;
  /** The `:flowId` of the prediction route; null on any other path. */
  flowId: string | null;
  /** Which configured flow the id names, or null. */
  flow: FlowName | null;
  headers: IncomingHttpHeaders;
  rawBody: string;
  /** The parsed JSON body; undefined when it is not JSON. */
  body: unknown;
  /** `overrideConfig.startState.startAgentflow_0` as key -> value (empty when absent or malformed). */
  state: Record<string, string>;
  /** What is wrong with the body's shape for this flow (empty when it is right). Filled for every request. */
  problems: string[];
  /** True once the client closed the connection before the server answered (e.g. an aborted fetch). */
  closedByClient: boolean;
}

/** What the server does with one request. Build them with `reply`. */
export type FlowiseReply =
  /** Behave like Flowise: the checks above, then the flow's default stand-in. */
  | { type: 'flowise' }
  | { type: 'json'; status: number; body: unknown; headers?: Record<string, string> }
  | { type: 'raw'; status: number; body: string | Uint8Array; headers?: Record<string, string> }
  /** Never answer; the socket stays open until the client leaves or the server closes. */
  | { type: 'hang' }
  /** Reset the TCP connection without an answer. */
  | { type: 'reset' }
  /** Send the status, headers and the start of a body, then nothing more (a stalled stream). */
  | { type: 'stall'; status: number; partialBody: string };

export type FlowiseHandler = (request: RecordedRequest) => FlowiseReply | Promise<FlowiseReply>;

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8' };

/** The body of a successful prediction, with the fields Flowise sends besides `text`. */
export function predictionBody(text: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const chatId = randomUUID();
  return {
    text,
    question: 'go',
    chatId,
    chatMessageId: randomUUID(),
    executionId: randomUUID(),
    agentFlowExecutedData: [],
    sessionId: chatId,
    ...extra,
  };
}

/** Flowise's error body. */
export function errorBody(status: number, message: string): Record<string, unknown> {
  return { statusCode: status, success: false, message, stack: {} };
}

export const reply = {
  flowise: (): FlowiseReply => ({ type: 'flowise' }),
  json: (status: number, body: unknown, headers?: Record<string, string>): FlowiseReply => ({
    type: 'json',
    status,
    body,
    headers,
  }),
  /** A recorded answer from the fixtures folder, as Flowise sent it. */
  fixture: (fixture: FlowiseFixture, headers?: Record<string, string>): FlowiseReply => ({
    type: 'json',
    status: fixture.status,
    body: fixture.body,
    headers,
  }),
  /** 200 with a Flowise prediction body whose `text` is the given text. */
  text: (text: string, extra?: Record<string, unknown>): FlowiseReply => ({
    type: 'json',
    status: 200,
    body: predictionBody(text, extra),
  }),
  /** A Flowise error body with the given status and message. */
  error: (status: number, message: string, headers?: Record<string, string>): FlowiseReply => ({
    type: 'json',
    status,
    body: errorBody(status, message),
    headers,
  }),
  raw: (status: number, body: string | Uint8Array, headers?: Record<string, string>): FlowiseReply => ({
    type: 'raw',
    status,
    body,
    headers,
  }),
  /** A body that is not JSON although it says it is (a proxy's HTML page, a truncated answer). */
  garbage: (status = 200): FlowiseReply => ({
    type: 'raw',
    status,
    body: '<html><body>502 Bad Gateway</body></html>\u0000\u00ff{"text": ',
    headers: JSON_HEADERS,
  }),
  hang: (): FlowiseReply => ({ type: 'hang' }),
  stall: (partialBody = '{"text": "{\\"firstname\\": ', status = 200): FlowiseReply => ({ type: 'stall', status, partialBody }),
  reset: (): FlowiseReply => ({ type: 'reset' }),
};

/** The fixtures folder: $FIXTURES_DIR/flowise (or $FIXTURES_DIR itself), else ../shared/fixtures/flowise beside the repo. */
export function flowiseFixturesDir(): string {
  const override = process.env.FIXTURES_DIR;
  if (override) {
    const nested = join(override, 'flowise');
    return existsSync(nested) ? nested : override;
  }
  const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  return resolve(repoRoot, '../shared/fixtures/flowise');
}

/** Reads `<name>.response.json` (or `<name>` when it has an extension) from the fixtures folder. */
export function loadFlowiseFixture(name: string, dir = flowiseFixturesDir()): FlowiseFixture {
  const file = name.endsWith('.json') ? name : `${name}.response.json`;
  return JSON.parse(readFileSync(join(dir, file), 'utf8')) as FlowiseFixture;
}

// ---------------------------------------------------------------------------------------------
// The default flows: deterministic personas and prompts in the flows' exact output shapes.

/** One persona in the persona flow's shape, before `bios` is turned into a string. */
export interface FlowisePersona {
  firstname: string;
  lastname: string;
  gender: string;
  ethnicity: string;
  bios: {
    facebook_bio: string;
    instagram_bio: string;
    x_bio: string;
    tiktok_bio: string;
    age: number | string | null;
    job_title: string;
    workplace: string;
    edu_establishment: string;
    edu_study: string;
    current_city: string;
    current_state: string;
    current_country: string;
    prev_city: string;
    prev_state: string;
    about: string;
  };
}

const FIRST_F = ['Sofia', 'Ingrid', 'Lucía', 'Zoë', 'Amélie', 'Priya', 'Aaliyah', 'Mei'];
const FIRST_M = ['Kenji', 'Mateo', 'Tomás', 'Jonas', 'Omar', 'Luca', 'Dmitri', 'Kwame'];
const LAST = [
  ['Kowalski', 'Polish'],
  ['Fischer', 'German'],
  ['Nakamura', 'Japanese'],
  ['Rossi', 'Italian'],
  ['Müller', 'German'],
  ['García', 'Spanish'],
  ['Okafor', 'Nigerian'],
  ['Lindqvist', 'Swedish'],
] as const;
const JOBS = [
  ['Physical Therapist', 'MoveWell Clinic', 'University of Florida', 'Kinesiology'],
  ['Software Engineer', 'Brightline Labs', 'Georgia Tech', 'Computer Science'],
  ['Barista', 'Blue Door Coffee', 'Portland Community College', 'Culinary Arts'],
  ['Nurse', "St. Mary's Hospital", 'University of Michigan', 'Nursing'],
  ['Electrician', 'Bright Spark Electric', 'Lakeshore Technical College', 'Electrical Technology'],
] as const;
const CITIES = [
  ['Austin', 'TX'],
  ['Seattle', 'WA'],
  ['Denver', 'CO'],
  ['Atlanta', 'GA'],
  ['Phoenix', 'AZ'],
  ['Miami', 'FL'],
] as const;
const HOBBIES = ['urban gardening', 'vinyl records', 'trail running', 'board games', 'film photography'];
const EMOJI = ['🎧', '📷', '🌿', '🎲', '🧗'];

function pickFrom<T>(list: readonly T[], n: number): T {
  return list[((n % list.length) + list.length) % list.length] as T;
}

/** A valid persona in the flow's shape; `n` selects it (the same n gives the same persona). */
export function makeFlowisePersona(n: number, language = 'English'): FlowisePersona {
  const female = n % 2 === 0;
  const first = pickFrom(female ? FIRST_F : FIRST_M, Math.floor(n / 2));
  // The last name shifts every 16 personas: a full name comes back only after 128 (the pipeline
  // refuses a repeat within a task, as it would a model's), not after 16.
  const [last, ethnicity] = pickFrom(LAST, n * 3 + 1 + Math.floor(n / 16));
  const [job, workplace, school, study] = pickFrom(JOBS, n);
  const [city, state] = pickFrom(CITIES, n);
  const [prevCity, prevState] = pickFrom(CITIES, n + 2);
  const hobby = pickFrom(HOBBIES, n);
  const emoji = pickFrom(EMOJI, n);
  const age = 22 + ((n * 7) % 40);
  return {
    firstname: first,
    lastname: last,
    gender: female ? 'f' : 'm',
    ethnicity,
    bios: {
      // Quotes, an apostrophe, a newline and emoji, like the real flow's answers.
      facebook_bio: `I'm the "${hobby}" person ${emoji}\nSecond line: café talks & weekend trips.`,
      instagram_bio: `${emoji} ${hobby} | ${city}, ${state}`,
      x_bio: `${job}. Opinions are my own. ${emoji}`,
      tiktok_bio: `Day in the life of a ${job.toLowerCase()} ${emoji}`,
      age,
      job_title: job,
      workplace,
      edu_establishment: school,
      edu_study: study,
      current_city: city,
      current_state: state,
      current_country: 'United States',
      prev_city: prevCity,
      prev_state: prevState,
      about: `${first} is a ${age}-year-old ${job.toLowerCase()} who moved from ${prevCity} to ${city}. Bio language: ${language}.`,
    },
  };
}

/** The persona flow's `text`: compact objects joined by newlines, each with `bios` as a string of JSON. */
export function flowisePersonaText(personas: readonly FlowisePersona[]): string {
  return personas.map((p) => JSON.stringify({ ...p, bios: JSON.stringify(p.bios) })).join('\n');
}

/** The prompt flow's `text`. */
export function flowisePromptText(prompt: string): string {
  return JSON.stringify({ final_prompt: prompt });
}

const SCENES = [
  'laughing at a sunny street cafe',
  'browsing a weekend farmers market',
  'hiking a forest trail at golden hour',
  'cooking dinner in a small kitchen',
  'reading on a park bench',
  'waiting for a train on a city platform',
  'at a friend’s birthday dinner',
  'walking a dog along the river',
];

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/** The prompt flow's stand-in: the scene and tag depend on the history, so each prompt differs from the ones before. */
export function defaultPrompt(personData: Record<string, unknown>, history: string | undefined): string {
  const h = history ? hash(history) : 0;
  const who = `${personData.firstname} ${personData.lastname}`;
  const kind = personData.gender === 'm' ? 'man' : 'woman';
  const age = typeof personData.age === 'number' ? `a ${personData.age}-year-old ${kind}` : `a ${kind}`;
  return `Candid smartphone photo of ${who}, ${age} in their home town, ${pickFrom(SCENES, h)}. Natural light, realistic skin texture, no text, no watermark. [v${h.toString(16)}]`;
}

// ---------------------------------------------------------------------------------------------

export interface FlowiseServerOptions {
  /** The key the server accepts; undefined: no key needed (a flow without API key). */
  apiKey?: string;
  /** Ids of the two flows (UUIDs, as Flowise uses); random when omitted. */
  personaFlowId?: string;
  promptFlowId?: string;
  /** Handler for every request not taken by the queue; default `reply.flowise()`. */
  handler?: FlowiseHandler;
  /**
   * The state keys the persona flow's Start node declares. Default: the old system's seven and
   * PERSONA_EXTRA_STATE_KEYS (a flow built from today's README); `PERSONA_STATE_KEYS` alone is a
   * flow built before them, which refuses the extra keys. The old seven are required either way.
   */
  personaStateKeys?: readonly string[];
}

export interface FlowiseServer {
  /** Base URL, e.g. http://127.0.0.1:41234 (give it to FLOWISE_URL). */
  url: string;
  apiKey: string | undefined;
  personaFlowId: string;
  promptFlowId: string;
  /** Every request received, in arrival order. */
  requests: RecordedRequest[];
  /** Requests open right now, and the most that were open at once. */
  readonly inFlight: number;
  readonly maxInFlight: number;
  /** Answers every request not taken by the queue; null restores `reply.flowise()`. */
  setHandler(handler: FlowiseHandler | null): void;
  /** Replies for the next requests, in order, before the handler is asked. */
  enqueue(...replies: Array<FlowiseReply | FlowiseHandler>): void;
  /** Resolves once at least `count` requests have arrived. */
  waitForRequests(count: number): Promise<RecordedRequest[]>;
  /** Forgets the recorded requests and the queue, restores the default handler; maxInFlight restarts from the requests still open. */
  reset(): void;
  /** The TCP port; it stays the same across stop() and restart(). */
  readonly port: number;
  /** False between stop() and restart() (and after close()). */
  readonly listening: boolean;
  /**
   * Takes the server down as a stopped Flowise is: it stops listening, so new connections are
   * refused (ECONNREFUSED), and every open connection (requests in progress, idle keep-alive ones)
   * is reset. The recorded requests, the queue and the handler stay for restart().
   */
  stop(): Promise<void>;
  /** Listens again on the same port after stop() (retrying for a few seconds while the port is busy). */
  restart(): Promise<void>;
  /** Closes every connection (hanging ones too) and the server. */
  close(): Promise<void>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Reads the start state and lists what is wrong with the body for this flow. */
function inspectBody(
  flow: FlowName | null,
  headers: IncomingHttpHeaders,
  body: unknown,
  personaKeys: readonly string[],
): {
  state: Record<string, string>;
  problems: string[];
} {
  const problems: string[] = [];
  const state: Record<string, string> = {};
  if (!String(headers['content-type'] ?? '').startsWith('application/json')) {
    problems.push('Content-Type is not application/json (Flowise would ignore the body)');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    problems.push('the body is not a JSON object');
    return { state, problems };
  }
  const question = (body as { question?: unknown }).question;
  if (question !== undefined && typeof question !== 'string') problems.push('question is not a string');
  const list = (body as { overrideConfig?: { startState?: { startAgentflow_0?: unknown } } }).overrideConfig?.startState?.startAgentflow_0;
  if (!Array.isArray(list)) {
    problems.push('overrideConfig.startState.startAgentflow_0 is not an array');
    return { state, problems };
  }
  for (const [i, entry] of list.entries()) {
    const { key, value } = (entry ?? {}) as { key?: unknown; value?: unknown };
    if (typeof key !== 'string' || typeof value !== 'string') {
      problems.push(`startAgentflow_0[${i}] is not {key: string, value: string}`);
      continue;
    }
    if (Object.hasOwn(state, key)) problems.push(`state key ${key} is sent twice`);
    state[key] = value;
  }
  if (flow === null) return { state, problems };
  const declared: readonly string[] = flow === 'persona' ? personaKeys : PROMPT_STATE_KEYS;
  const required: readonly string[] = flow === 'persona' ? PERSONA_STATE_KEYS : PROMPT_REQUIRED_KEYS;
  for (const key of Object.keys(state)) {
    if (!declared.includes(key)) problems.push(`state key ${key} is not declared by the ${flow} flow`);
  }
  for (const key of required) {
    if (!Object.hasOwn(state, key)) problems.push(`state key ${key} is missing`);
  }
  if (flow === 'persona' && state.requested_amount !== undefined && !/^[1-9]\d*$/.test(state.requested_amount)) {
    problems.push('requested_amount is not a positive whole number');
  }
  if (flow === 'prompt' && state.person_data !== undefined) {
    let data: unknown;
    try {
      data = JSON.parse(state.person_data);
    } catch {
      problems.push('person_data is not JSON');
    }
    if (data !== undefined) {
      if (typeof data !== 'object' || data === null || Array.isArray(data)) problems.push('person_data is not a JSON object');
      else {
        const keys = Object.keys(data);
        const missing = PERSON_DATA_KEYS.filter((k) => !keys.includes(k));
        const known: readonly string[] = [...PERSON_DATA_KEYS, ...PERSON_DATA_EXTRA_KEYS];
        const extra = keys.filter((k) => !known.includes(k));
        if (missing.length > 0) problems.push(`person_data lacks ${missing.join(', ')}`);
        if (extra.length > 0) problems.push(`person_data has unexpected keys ${extra.join(', ')}`);
      }
    }
  }
  if (flow === 'prompt' && state.prompts_history !== undefined && !state.prompts_history.startsWith(PROMPTS_HISTORY_PREFIX)) {
    problems.push(`prompts_history does not start with "${PROMPTS_HISTORY_PREFIX}"`);
  }
  return { state, problems };
}

export async function startFlowiseServer(options: FlowiseServerOptions = {}): Promise<FlowiseServer> {
  const apiKey = options.apiKey;
  const personaFlowId = options.personaFlowId ?? randomUUID();
  const promptFlowId = options.promptFlowId ?? randomUUID();
  const personaStateKeys = options.personaStateKeys ?? [...PERSONA_STATE_KEYS, ...PERSONA_EXTRA_STATE_KEYS];
  const defaultHandler: FlowiseHandler = () => reply.flowise();
  let handler: FlowiseHandler = options.handler ?? defaultHandler;
  let queue: Array<FlowiseReply | FlowiseHandler> = [];
  const requests: RecordedRequest[] = [];
  const waiters: Array<{ count: number; resolve: (r: RecordedRequest[]) => void }> = [];
  const sockets = new Set<Socket>();
  let inFlight = 0;
  let maxInFlight = 0;
  let personaCounter = 0;
  /** Answers the server cut itself (reset, stop), so their close is not the client's doing. */
  const resetByServer = new WeakSet<ServerResponse>();
  /** Answers not finished yet: stop() cuts them. */
  const openResponses = new Set<ServerResponse>();
  let listening = false;

  /** What real Flowise answers for this request (its checks, then the flow stand-in). */
  function flowiseAnswer(request: RecordedRequest): FlowiseReply {
    if (request.body === undefined) {
      let message = 'Unexpected end of JSON input';
      try {
        JSON.parse(request.rawBody);
      } catch (error) {
        message = (error as Error).message;
      }
      return reply.error(400, message);
    }
    if (!request.flowId || !UUID.test(request.flowId)) return reply.error(400, 'Invalid Chatflow ID');
    if (request.flow === null) return reply.error(404, `Chatflow ${request.flowId} not found in the database!`);
    if (apiKey !== undefined && request.headers.authorization !== `Bearer ${apiKey}`) {
      return reply.error(500, 'Error: predictionsServices.buildChatflow - Unauthorized');
    }
    if (request.problems.length > 0) {
      // What a flow's function does with a state it cannot use: it throws, and Flowise answers 500.
      return reply.error(
        500,
        `Error: predictionsServices.buildChatflow - Error: NodeVM Execution Error: Error: ${request.problems.join('; ')}`,
      );
    }
    if (request.flow === 'persona') {
      // Like an LLM that ignores them, the stand-in reads neither `quotas` nor `used_names`: core's
      // quota and repeat checks are tested against it.
      const count = Number(request.state.requested_amount);
      const personas = Array.from({ length: count }, () => makeFlowisePersona(personaCounter++, request.state.bio_language));
      return reply.text(flowisePersonaText(personas));
    }
    const personData = JSON.parse(request.state.person_data as string) as Record<string, unknown>;
    return reply.text(flowisePromptText(defaultPrompt(personData, request.state.prompts_history)));
  }

  function send(res: ServerResponse, answer: FlowiseReply, request: RecordedRequest): void {
    switch (answer.type) {
      case 'hang':
        return;
      case 'stall':
        res.writeHead(answer.status, { ...JSON_HEADERS, 'transfer-encoding': 'chunked' });
        res.write(answer.partialBody);
        return;
      case 'reset':
        resetByServer.add(res);
        res.socket?.resetAndDestroy();
        return;
      case 'flowise':
        send(res, flowiseAnswer(request), request);
        return;
      case 'json': {
        const payload = JSON.stringify(answer.body);
        res.writeHead(answer.status, { ...JSON_HEADERS, 'content-length': Buffer.byteLength(payload), ...answer.headers });
        res.end(payload);
        return;
      }
      case 'raw': {
        const payload = typeof answer.body === 'string' ? Buffer.from(answer.body) : answer.body;
        // With transfer-encoding: chunked in the headers the body goes out in chunks, without a length.
        const chunked = Object.keys(answer.headers ?? {}).some((h) => h.toLowerCase() === 'transfer-encoding');
        res.writeHead(answer.status, { ...(chunked ? {} : { 'content-length': payload.byteLength }), ...answer.headers });
        res.end(payload);
        return;
      }
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    let open = true;
    let recorded: RecordedRequest | undefined;
    let closedEarly = false;
    openResponses.add(res);
    const done = () => {
      openResponses.delete(res);
      if (open) {
        open = false;
        inFlight--;
      }
    };
    res.on('finish', done);
    res.on('close', () => {
      if (!res.writableFinished && !resetByServer.has(res)) {
        closedEarly = true;
        if (recorded) recorded.closedByClient = true;
      }
      done();
    });

    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const rawBody = Buffer.concat(chunks).toString('utf8');
    const path = (req.url ?? '/').split('?')[0] as string;
    const match = /^\/api\/v1\/prediction\/([^/]+)\/?$/.exec(path);
    const flowId = req.method === 'POST' && match ? decodeURIComponent(match[1] as string) : null;
    const flow: FlowName | null = flowId === personaFlowId ? 'persona' : flowId === promptFlowId ? 'prompt' : null;
    let body: unknown;
    try {
      body = JSON.parse(rawBody);
    } catch {
      body = undefined;
    }
    const { state, problems } = inspectBody(flow, req.headers, body, personaStateKeys);
    recorded = {
      seq: requests.length + 1,
      method: req.method ?? '',
      path,
      flowId,
      flow,
      headers: req.headers,
      rawBody,
      body,
      state,
      problems,
      closedByClient: closedEarly,
    };
    requests.push(recorded);
    for (const waiter of [...waiters]) {
      if (requests.length >= waiter.count) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve([...requests]);
      }
    }

    if (flowId === null) {
      send(res, reply.error(404, `Cannot ${req.method} ${path}`), recorded);
      return;
    }
    const next = queue.shift() ?? handler;
    const answer = typeof next === 'function' ? await next(recorded) : next;
    if (res.destroyed) return;
    send(res, answer, recorded);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      // A handler that throws is a bug in the test; answer 500 so the test sees it.
      if (!res.headersSent && !res.destroyed) {
        const payload = JSON.stringify(errorBody(500, `test server handler failed: ${(error as Error).message}`));
        res.writeHead(500, JSON_HEADERS).end(payload);
      }
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await listenOn(server, 0);
  listening = true;
  const { port } = server.address() as AddressInfo;

  /** Resets every open connection; the answers cut here are not marked closedByClient. */
  function cutConnections(): void {
    for (const res of openResponses) resetByServer.add(res);
    server.closeAllConnections();
    for (const socket of sockets) socket.destroy();
  }

  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    personaFlowId,
    promptFlowId,
    requests,
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    setHandler(next) {
      handler = next ?? defaultHandler;
    },
    enqueue(...replies) {
      queue.push(...replies);
    },
    waitForRequests(count) {
      if (requests.length >= count) return Promise.resolve([...requests]);
      return new Promise((resolveWait) => waiters.push({ count, resolve: resolveWait }));
    },
    reset() {
      requests.length = 0;
      queue = [];
      handler = options.handler ?? defaultHandler;
      maxInFlight = inFlight;
    },
    port,
    get listening() {
      return listening;
    },
    async stop() {
      if (!listening) return;
      listening = false;
      // close() stops accepting at once; it calls back when the last connection has gone.
      const closed = new Promise<void>((resolveClose) => server.close(() => resolveClose()));
      cutConnections();
      await closed;
    },
    async restart() {
      if (listening) return;
      await listenOn(server, port);
      listening = true;
    },
    async close() {
      const closed = new Promise<void>((resolveClose) => server.close(() => resolveClose()));
      listening = false;
      cutConnections();
      await closed;
    },
  };
}
