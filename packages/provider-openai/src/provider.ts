import {
  type BaseImageRequest,
  CancelledError,
  ConfigError,
  describeError,
  type EncodedImage,
  extensionFor,
  type ImageOutputOptions,
  type ImageProvider,
  InvalidImageError,
  InvalidResponseError,
  type Pictures,
  type PicturesRequest,
  readImageInfo,
  throwIfAborted,
  type UsageListener,
  ValidationError,
} from '@avatargen/core';
import OpenAI, { APIError, toFile } from 'openai';
import type { ImageEditParamsNonStreaming, ImageGenerateParamsNonStreaming } from 'openai/resources/images';
import PQueue from 'p-queue';
import { SOURCE, scrub, toAvatarGenError } from './errors.js';
import { buildBasePrompt, buildGridPrompt } from './prompts.js';

export type Moderation = 'auto' | 'low';
/** `input_fidelity` of edits; `off` sends none (models before gpt-image-1 refuse it). */
export type InputFidelity = 'high' | 'low' | 'off';
export const INPUT_FIDELITIES: readonly InputFidelity[] = ['high', 'low', 'off'];

/**
 * Parameters sent only to improve the answer: a model that refuses one (HTTP 400 naming it) gets
 * the request again without it, and never again from this provider. `size` is not among them: it
 * has always been sent, and a refused size is a configuration to fix, not to hide.
 */
export const DROPPABLE_PARAMS = ['input_fidelity', 'quality', 'output_format', 'output_compression', 'background'] as const;
type DroppableParam = (typeof DROPPABLE_PARAMS)[number];

/** The grid that buildGridPrompt asks for. */
const GRID_ROWS = 2;
const GRID_COLS = 2;

/** The few log methods the provider uses; a pino logger fits. */
export interface ProviderLogger {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface OpenAIImageProviderOptions {
  /** OPENAI_API_KEY. Never appears in an error or a log line. */
  apiKey: string;
  /** OPENAI_BASE_URL: an OpenAI-compatible gateway, including the `/v1` path. Default https://api.openai.com/v1. */
  baseURL?: string;
  /** OPENAI_IMAGE_MODEL. Default gpt-image-1.5. */
  model?: string;
  /** OPENAI_MODERATION, sent on both endpoints. Default auto. */
  moderation?: Moderation;
  /** OPENAI_INPUT_FIDELITY, sent with edits (reference face, grids). Default high: faces kept closest. */
  inputFidelity?: InputFidelity;
  /** OPENAI_CONCURRENCY: image calls in flight through this provider. Default 4. */
  concurrency?: number;
  /** Timeout of one call, from sending the request to the last byte of the answer. Default 600 000 (10 min). */
  timeoutMs?: number;
  /** BASE_PROMPT_APPEND: appended to every prompt. */
  promptAppend?: string;
  logger?: ProviderLogger;
}

export const DEFAULT_BASE_URL = 'https://api.openai.com/v1';
export const DEFAULT_MODEL = 'gpt-image-1.5';
export const DEFAULT_TIMEOUT_MS = 600_000;
export const DEFAULT_CONCURRENCY = 4;

/** Formats the edits endpoint accepts for input images. */
const EDIT_INPUT_TYPES = new Set(['image/png', 'image/jpeg', 'image/webp']);

type EditParams = ImageEditParamsNonStreaming & { moderation: Moderation };
type Params = Record<string, unknown>;

/** Thrown inside a call when the service refused an optional parameter: sent again without it. */
class RefusedParameter extends Error {}

/** An ImageProvider over the OpenAI Images API: base selfies and 2x2 grids. */
export class OpenAIImageProvider implements ImageProvider {
  readonly model: string;

  /** The model, named in every picture's provenance mark. */
  describe(): { model: string } {
    return { model: this.model };
  }
  readonly moderation: Moderation;
  readonly inputFidelity: InputFidelity;
  readonly timeoutMs: number;
  /** Per model, the optional parameters it refused (kept for the life of the process). */
  private readonly refused = new Map<string, Set<DroppableParam>>();
  private readonly apiKey: string;
  private readonly promptAppend: string | undefined;
  private readonly client: OpenAI;
  /** OPENAI_CONCURRENCY calls at once; the rest wait in order, and leave when their signal fires. */
  private readonly slots: PQueue;
  private readonly logger: ProviderLogger | undefined;

  constructor(options: OpenAIImageProviderOptions) {
    const issues = validateOptions(options);
    if (issues.length > 0) throw new ConfigError(issues);
    this.apiKey = options.apiKey.trim();
    this.model = options.model?.trim() || DEFAULT_MODEL;
    this.moderation = options.moderation ?? 'auto';
    this.inputFidelity = options.inputFidelity ?? 'high';
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.promptAppend = options.promptAppend?.trim() || undefined;
    this.slots = new PQueue({ concurrency: options.concurrency ?? DEFAULT_CONCURRENCY });
    this.logger = options.logger;
    this.client = new OpenAI({
      apiKey: this.apiKey,
      // Always explicit, so the SDK does not pick OPENAI_BASE_URL from the environment behind our back.
      baseURL: options.baseURL ?? DEFAULT_BASE_URL,
      // The core pipeline retries with backoff and honours Retry-After; SDK retries would multiply them.
      maxRetries: 0,
      timeout: this.timeoutMs,
    });
  }

  /** Calls to the service in flight now. */
  get inFlight(): number {
    return this.slots.pending;
  }

  /** Calls waiting for a slot (OPENAI_CONCURRENCY reached). */
  get queued(): number {
    return this.slots.size;
  }

  async baseImage(request: BaseImageRequest): Promise<EncodedImage> {
    throwIfAborted(request.signal);
    const face = request.referenceFace;
    const prompt = buildBasePrompt(request.persona, { append: this.promptAppend, withReferenceFace: face !== undefined });
    if (!face) {
      const params = { model: this.model, prompt, ...outputParams(request.output), n: 1, moderation: this.moderation };
      return this.send(
        'images/generations',
        request.signal,
        params,
        (p, signal) => this.client.images.generate(p as unknown as ImageGenerateParamsNonStreaming, { signal }),
        request.onUsage,
      );
    }
    const image = await asUpload(face, `Reference face ${face.key}`, 'face');
    return this.edit(prompt, [image], request.output, request.signal, request.onUsage);
  }

  /** The optional parameters the configured model refused so far (dropped from every request). */
  refusedParameters(model: string = this.model): string[] {
    return [...(this.refused.get(model) ?? [])];
  }

  /** One edits call whose prompt asks for a 2x2 grid: four pictures as one grid image, cut apart by the pipeline. */
  async pictures(request: PicturesRequest): Promise<Pictures> {
    throwIfAborted(request.signal);
    if (request.count !== GRID_ROWS * GRID_COLS) {
      throw new ValidationError(
        { count: `must be ${GRID_ROWS * GRID_COLS}, got ${String(request.count)}` },
        `provider-openai makes ${GRID_ROWS * GRID_COLS} pictures per prompt (its prompt asks for a ${GRID_ROWS}x${GRID_COLS} grid), not ${String(request.count)}`,
      );
    }
    const prompt = buildGridPrompt(request.persona, request.prompt, { append: this.promptAppend });
    // The base first, then the face it was made from: the service reads them in that order.
    const images = [await asUpload(request.base, 'Base image', 'base')];
    const face = request.referenceFace;
    if (face) images.push(await asUpload(face, `Reference face ${face.key}`, 'face'));
    return {
      kind: 'grid',
      image: await this.edit(prompt, images, request.output, request.signal, request.onUsage),
      rows: GRID_ROWS,
      cols: GRID_COLS,
    };
  }

  private edit(
    prompt: string,
    images: File[],
    output: ImageOutputOptions | undefined,
    signal: AbortSignal | undefined,
    onUsage?: UsageListener,
  ): Promise<EncodedImage> {
    // `moderation` is not in the SDK's edit types (6.49.0) but the form carries every key we give it.
    const params: Params = {
      model: this.model,
      prompt,
      image: images,
      ...outputParams(output),
      ...(this.inputFidelity === 'off' ? {} : { input_fidelity: this.inputFidelity }),
      n: 1,
      moderation: this.moderation,
    };
    return this.send('images/edits', signal, params, (p, s) => this.client.images.edit(p as unknown as EditParams, { signal: s }), onUsage);
  }

  /**
   * A call without the parameters the model refused before; when it refuses another one now, that
   * one is remembered, logged once and the call made again without it (at most once per parameter).
   */
  private async send(
    operation: string,
    signal: AbortSignal | undefined,
    params: Params,
    fire: (params: Params, signal: AbortSignal) => Promise<unknown>,
    onUsage?: UsageListener,
  ): Promise<EncodedImage> {
    for (;;) {
      try {
        return await this.call(operation, signal, params, fire, onUsage);
      } catch (error) {
        if (!(error instanceof RefusedParameter)) throw error;
      }
    }
  }

  /** Remembers (and logs once) a parameter the model refused. */
  private dropParameter(param: DroppableParam, operation: string, serverMessage: string): void {
    const set = this.refused.get(this.model) ?? new Set<DroppableParam>();
    // calls in flight together may all be refused: one line per parameter
    if (set.has(param)) return;
    set.add(param);
    this.refused.set(this.model, set);
    this.logger?.warn(
      { operation, model: this.model, param },
      `OpenAI model ${this.model} refused ${param}; it is no longer sent to this model (${scrub(serverMessage, this.apiKey)})`,
    );
  }

  /**
   * One call: waits for a slot, then sends it. A caller that gives up (its signal fires) while it
   * waits leaves the queue and is never sent; either way it gets a CancelledError.
   */
  private async call(
    operation: string,
    callerSignal: AbortSignal | undefined,
    params: Params,
    fire: (params: Params, signal: AbortSignal) => Promise<unknown>,
    onUsage?: UsageListener,
  ): Promise<EncodedImage> {
    try {
      return await this.slots.add(() => this.callInSlot(operation, callerSignal, params, fire, onUsage), { signal: callerSignal });
    } catch (error) {
      // p-queue rejects with the signal's reason; the pipeline expects a CancelledError
      if (callerSignal?.aborted && error === callerSignal.reason) throw new CancelledError();
      throw error;
    }
  }

  /**
   * One call in its slot, with our own timer (the SDK's covers only the wait for the response
   * headers, not the body); every failure becomes a core error.
   */
  private async callInSlot(
    operation: string,
    callerSignal: AbortSignal | undefined,
    params: Params,
    fire: (params: Params, signal: AbortSignal) => Promise<unknown>,
    onUsage?: UsageListener,
  ): Promise<EncodedImage> {
    // Filtered once a slot is ours, so a call that waited sees what the calls before it learnt.
    const refused = this.refused.get(this.model);
    const sent = Object.fromEntries(Object.entries(params).filter(([key]) => !refused?.has(key as DroppableParam)));
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeoutMs);
    const onAbort = () => controller.abort();
    callerSignal?.addEventListener('abort', onAbort, { once: true });
    const started = Date.now();
    try {
      throwIfAborted(callerSignal);
      const answer = await fire(sent, controller.signal);
      const image = decodeAnswer(answer, operation);
      // The model and the image made, for the task's usage and cost; tokens where the answer has them.
      const usage = (answer as { usage?: { input_tokens?: unknown; output_tokens?: unknown } } | null)?.usage;
      onUsage?.({
        provider: 'openai',
        model: this.model,
        inputTokens: typeof usage?.input_tokens === 'number' ? usage.input_tokens : 0,
        outputTokens: typeof usage?.output_tokens === 'number' ? usage.output_tokens : 0,
        images: 1,
      });
      this.logger?.debug({ operation, model: this.model, ms: Date.now() - started, bytes: image.data.length }, 'openai image call');
      return image;
    } catch (error) {
      const param = refusedParam(error, sent);
      if (param) {
        // remembered before the slot is given back, so the calls waiting for it go without it
        this.dropParameter(param, operation, (error as APIError).message);
        throw new RefusedParameter(param);
      }
      const mapped = toAvatarGenError(error, {
        operation,
        apiKey: this.apiKey,
        cancelled: callerSignal?.aborted ?? false,
        timedOut,
        timeoutMs: this.timeoutMs,
      });
      this.logger?.warn({ operation, model: this.model, kind: mapped.kind, ms: Date.now() - started }, mapped.message);
      throw mapped;
    } finally {
      clearTimeout(timer);
      callerSignal?.removeEventListener('abort', onAbort);
    }
  }
}

export function createOpenAIImageProvider(options: OpenAIImageProviderOptions): OpenAIImageProvider {
  return new OpenAIImageProvider(options);
}

function validateOptions(options: OpenAIImageProviderOptions): string[] {
  const issues: string[] = [];
  if (typeof options.apiKey !== 'string' || options.apiKey.trim() === '') issues.push('OPENAI_API_KEY is required');
  if (options.baseURL !== undefined) {
    try {
      const url = new URL(options.baseURL);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') issues.push('OPENAI_BASE_URL must be an http(s) URL');
    } catch {
      issues.push('OPENAI_BASE_URL must be a URL such as https://api.openai.com/v1');
    }
  }
  if (options.moderation !== undefined && options.moderation !== 'auto' && options.moderation !== 'low') {
    issues.push('OPENAI_MODERATION must be auto or low');
  }
  if (options.inputFidelity !== undefined && !INPUT_FIDELITIES.includes(options.inputFidelity)) {
    issues.push('OPENAI_INPUT_FIDELITY must be high, low or off');
  }
  const c = options.concurrency;
  if (c !== undefined && !(Number.isInteger(c) && c >= 1)) issues.push('OPENAI_CONCURRENCY must be a whole number >= 1');
  const t = options.timeoutMs;
  if (t !== undefined && !(Number.isFinite(t) && t > 0)) issues.push('OPENAI_TIMEOUT_SECONDS must be a positive number');
  return issues;
}

/**
 * An input image as a multipart file part. The content type comes from the bytes, not from the
 * label, because the service checks the bytes; an image it cannot take is refused here.
 */
async function asUpload(image: EncodedImage, what: string, name: string): Promise<File> {
  let contentType: string;
  try {
    contentType = readImageInfo(image.data).contentType;
  } catch (error) {
    throw new InvalidImageError(`${what} is not an image: ${describeError(error)}`);
  }
  if (!EDIT_INPUT_TYPES.has(contentType)) {
    throw new InvalidImageError(`${what} is ${contentType}; OpenAI image edits take PNG, JPEG or WebP`);
  }
  return toFile(Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength), `${name}.${extensionFor(contentType)}`, {
    type: contentType,
  });
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** `data[0].b64_json` decoded and checked to be an image; anything else is an invalid response. */
export function decodeAnswer(answer: unknown, operation: string): EncodedImage {
  const where = `OpenAI ${operation}`;
  const data = answer !== null && typeof answer === 'object' ? (answer as { data?: unknown }).data : undefined;
  if (!Array.isArray(data) || data.length === 0) {
    throw new InvalidResponseError(SOURCE, `${where} answered without image data`);
  }
  const b64 = (data[0] as { b64_json?: unknown } | null)?.b64_json;
  if (typeof b64 !== 'string' || b64.length === 0) {
    throw new InvalidResponseError(SOURCE, `${where} answered without data[0].b64_json`);
  }
  if (!BASE64.test(b64)) throw new InvalidResponseError(SOURCE, `${where} answered with a b64_json that is not base64`);
  const bytes = Buffer.from(b64, 'base64');
  try {
    return { data: bytes, contentType: readImageInfo(bytes).contentType };
  } catch (error) {
    throw new InvalidResponseError(SOURCE, `${where} answered with a b64_json that is not an image (${describeError(error)})`);
  }
}

/**
 * The Images API parameters of the task's output options. `size` is always sent (auto by default,
 * as before); `output_compression` only with jpeg or webp, which are the formats it applies to.
 */
export function outputParams(output: ImageOutputOptions | undefined): Params {
  const params: Params = { size: output?.size ?? 'auto' };
  if (!output) return params;
  if (output.quality !== undefined) params.quality = output.quality;
  if (output.format !== undefined) params.output_format = output.format;
  if (output.compression !== undefined && (output.format === 'jpeg' || output.format === 'webp')) {
    params.output_compression = output.compression;
  }
  if (output.background !== undefined) params.background = output.background;
  return params;
}

/**
 * The optional parameter a 400 refuses, when it is one we sent: the error's `param`, or else the
 * first one the message names in quotes (`Unknown parameter: 'input_fidelity'.`). Null otherwise:
 * a 400 about anything else stays an error.
 */
function refusedParam(error: unknown, sent: Params): DroppableParam | null {
  if (!(error instanceof APIError) || error.status !== 400) return null;
  const named = typeof error.param === 'string' ? error.param : null;
  const candidates = DROPPABLE_PARAMS.filter((p) => p in sent);
  if (named) return (candidates as readonly string[]).includes(named) ? (named as DroppableParam) : null;
  const message = error.message ?? '';
  return candidates.find((p) => new RegExp(`['"\`]${p}['"\`]`).test(message)) ?? null;
}
