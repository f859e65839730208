import {
  type BaseImageRequest,
  ConfigError,
  describeError,
  type EncodedImage,
  extensionFor,
  type ImageProvider,
  InvalidImageError,
  InvalidResponseError,
  type Pictures,
  type PicturesRequest,
  readImageInfo,
  throwIfAborted,
  ValidationError,
} from '@avatargen/core';
import OpenAI, { toFile } from 'openai';
import type { ImageEditParamsNonStreaming, ImageGenerateParamsNonStreaming } from 'openai/resources/images';
import { SOURCE, toAvatarGenError } from './errors.js';
import { buildBasePrompt, buildGridPrompt } from './prompts.js';
import { Semaphore } from './semaphore.js';

export type Moderation = 'auto' | 'low';

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

/** An ImageProvider over the OpenAI Images API: base selfies and 2x2 grids. */
export class OpenAIImageProvider implements ImageProvider {
  readonly model: string;
  readonly moderation: Moderation;
  readonly timeoutMs: number;
  private readonly apiKey: string;
  private readonly promptAppend: string | undefined;
  private readonly client: OpenAI;
  private readonly slots: Semaphore;
  private readonly logger: ProviderLogger | undefined;

  constructor(options: OpenAIImageProviderOptions) {
    const issues = validateOptions(options);
    if (issues.length > 0) throw new ConfigError(issues);
    this.apiKey = options.apiKey.trim();
    this.model = options.model?.trim() || DEFAULT_MODEL;
    this.moderation = options.moderation ?? 'auto';
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.promptAppend = options.promptAppend?.trim() || undefined;
    this.slots = new Semaphore(options.concurrency ?? DEFAULT_CONCURRENCY);
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
    return this.slots.inFlight;
  }

  /** Calls waiting for a slot (OPENAI_CONCURRENCY reached). */
  get queued(): number {
    return this.slots.queued;
  }

  async baseImage(request: BaseImageRequest): Promise<EncodedImage> {
    throwIfAborted(request.signal);
    const face = request.referenceFace;
    const prompt = buildBasePrompt(request.persona, { append: this.promptAppend, withReferenceFace: face !== undefined });
    if (!face) {
      const params: ImageGenerateParamsNonStreaming = {
        model: this.model,
        prompt,
        size: 'auto',
        n: 1,
        moderation: this.moderation,
      };
      return this.call('images/generations', request.signal, (signal) => this.client.images.generate(params, { signal }));
    }
    const image = await asUpload(face, `Reference face ${face.key}`, 'face');
    return this.edit(prompt, image, request.signal);
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
    const image = await asUpload(request.base, 'Base image', 'base');
    return { kind: 'grid', image: await this.edit(prompt, image, request.signal), rows: GRID_ROWS, cols: GRID_COLS };
  }

  private edit(prompt: string, image: File, signal: AbortSignal | undefined): Promise<EncodedImage> {
    // `moderation` is not in the SDK's edit types (6.49.0) but the form carries every key we give it.
    const params: EditParams = {
      model: this.model,
      prompt,
      image: [image],
      size: 'auto',
      n: 1,
      moderation: this.moderation,
    };
    return this.call('images/edits', signal, (s) => this.client.images.edit(params, { signal: s }));
  }

  /**
   * One call: waits for a slot, runs with our own timer (the SDK's covers only the wait for the
   * response headers, not the body), and turns every failure into a core error.
   */
  private async call(
    operation: string,
    callerSignal: AbortSignal | undefined,
    send: (signal: AbortSignal) => Promise<unknown>,
  ): Promise<EncodedImage> {
    const release = await this.slots.acquire(callerSignal);
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
      const answer = await send(controller.signal);
      const image = decodeAnswer(answer, operation);
      this.logger?.debug({ operation, model: this.model, ms: Date.now() - started, bytes: image.data.length }, 'openai image call');
      return image;
    } catch (error) {
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
      release();
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
