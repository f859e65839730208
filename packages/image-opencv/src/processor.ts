import { availableParallelism } from 'node:os';
import {
  type Bytes,
  CancelledError,
  type CropWhiteBordersOptions,
  type ImageProcessor,
  type ProcessedImage,
  type ProcessGridOptions,
  type ProcessPictureOptions,
  STYLE_PRESETS,
  type StyledImage,
  type StyleParams,
  ValidationError,
} from '@avatargen/core';
import PQueue from 'p-queue';
import { Piscina } from 'piscina';
import { ImageTimeoutError, rebuildError } from './errors.js';
import { admit, type InputLimits, parseFormats } from './limits.js';
import { DEFAULT_WHITE_BORDERS, type WhiteBorderSettings } from './pixels.js';
import type { WorkerReply, WorkerResults, WorkerSettings, WorkerTask } from './protocol.js';

export interface ImageProcessorOptions {
  /** Worker threads; 0 or unset: one per available core. */
  threads?: number;
  /** Time limit of one call once a worker has it (waiting in line does not count). Default 60 s. */
  timeoutMs?: number;
  /** Largest accepted input, in bytes. Default 50 MiB. */
  maxInputBytes?: number;
  /** Largest accepted width * height (decompression bombs are refused from the header). Default 50 M. */
  maxPixels?: number;
  /** Accepted input formats among png, jpeg (jpg), webp, gif. Default png, jpeg, webp. */
  formats?: string[];
  /** Optimised Huffman tables for JPEG output: smaller files, slower encoding. Default false. */
  jpegOptimizeCoding?: boolean;
  /**
   * Pool errors that belong to no call (a worker that dies while idle, a close that times out).
   * Calls get their own errors; these would otherwise crash the process as an unhandled 'error'
   * event. Default: ignored (the plugin logs them).
   */
  onPoolError?: (error: unknown) => void;
}

/** Per-call options that this implementation accepts on top of the port's. */
export interface CallOptions {
  /** Overrides the processor's timeoutMs for this call. */
  timeoutMs?: number;
  /** Cancels the call (CancelledError); a running worker is stopped and replaced. */
  signal?: AbortSignal;
}

/** The port, plus replaying stored style parameters and a close() that is always there. */
export interface OpencvImageProcessor extends ImageProcessor {
  processGrid(image: Bytes, options: ProcessGridOptions & CallOptions): Promise<ProcessedImage[]>;
  processPicture(image: Bytes, options: ProcessPictureOptions & CallOptions): Promise<ProcessedImage>;
  randomizeStyle(image: Bytes, options: { seed: string } & CallOptions): Promise<StyledImage>;
  /** Renders stored parameters again: same image and parameters give the same bytes as before. */
  applyStyle(image: Bytes, params: StyleParams, options?: CallOptions): Promise<StyledImage>;
  /**
   * The 64-bit difference hash (dHash) of a picture, as 16 lowercase hex characters: grey, shrunk
   * to 9x8 (fit 'fill', a fixed kernel), one bit per pair of horizontal neighbours. Re-encoded,
   * resized or restyled copies hash within a few bits of each other (core's `hammingDistance`).
   */
  perceptualHash(image: Bytes, options?: CallOptions): Promise<string>;
  /** Number of worker threads the pool runs. */
  readonly threads: number;
  /** Lets calls already made finish, then stops the workers. Later calls reject with CancelledError. */
  close(): Promise<void>;
}

export const DEFAULT_TIMEOUT_MS = 60_000;
/** The longest delay a timer can hold (a larger one fires at once). */
const MAX_TIMEOUT_MS = 2_147_483_647;
export const DEFAULT_MAX_INPUT_BYTES = 50 * 1024 * 1024;
export const DEFAULT_MAX_PIXELS = 50_000_000;
const MAX_GRID = 16;
/** Shots per side of a grid that processGrid cuts (a provider's grid, not any split). */
const MAX_SHOTS_PER_SIDE = 8;
const MAX_THUMBNAIL_WIDTH = 8192;

// Under vitest or tsx this module is TypeScript and so is the worker, which the worker thread
// cannot load by itself: tsx is preloaded there, and workspace packages resolve to their sources
// (`source` condition) as vitest resolves them. Built, both are JavaScript side by side in dist/
// and the worker imports core's built dist/domain.js.
const fromSource = import.meta.url.endsWith('.ts');
const WORKER_URL = new URL(fromSource ? './worker.ts' : './worker.js', import.meta.url);
// tsx is resolved from this package, not from the process's working folder, which may be anywhere.
const WORKER_EXEC_ARGV = fromSource ? ['--conditions=source', '--import', resolveTsx()] : [];

function resolveTsx(): string {
  try {
    return import.meta.resolve('tsx');
  } catch {
    return 'tsx';
  }
}

function positiveInteger(name: string, value: number | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new ValidationError({ [name]: `must be a whole number from 1 to ${max}, got ${String(value)}` });
  }
  return value;
}

function numberIn(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new ValidationError({ [name]: `must be a number from ${min} to ${max}, got ${String(value)}` });
  }
  return value;
}

/** An options argument: absent or null is none; anything but an object is a mistake. */
function optionsObject<T extends object>(name: string, value: T | null | undefined): Partial<T> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object') throw new ValidationError({ [name]: `must be an object, got ${typeof value}` });
  return value;
}

function borderSettings(options: CropWhiteBordersOptions | null | undefined): WhiteBorderSettings {
  // a field left undefined takes its default, as when it is missing
  const given = Object.fromEntries(Object.entries(optionsObject('options', options)).filter(([, v]) => v !== undefined));
  const s = { ...DEFAULT_WHITE_BORDERS, ...given };
  numberIn('threshold', s.threshold, 0, 255);
  numberIn('whiteRatio', s.whiteRatio, 0, 1);
  if (!Number.isInteger(s.scanDepth) || s.scanDepth < 0) throw new ValidationError({ scanDepth: 'must be a whole number >= 0' });
  if (!Number.isInteger(s.minBorder) || s.minBorder < 0) throw new ValidationError({ minBorder: 'must be a whole number >= 0' });
  return s;
}

function checkSeed(seed: unknown): string {
  if (typeof seed !== 'string') throw new ValidationError({ seed: 'must be a string' });
  return seed;
}

function checkParams(params: StyleParams): StyleParams {
  checkSeed(params.seed);
  if (!STYLE_PRESETS.includes(params.preset)) throw new ValidationError({ preset: `must be one of ${STYLE_PRESETS.join(', ')}` });
  numberIn('contrast', params.contrast, 0.5, 2);
  if (params.blurSigma !== null) numberIn('blurSigma', params.blurSigma, 0, 3);
  if (params.sharpenAmount !== null) numberIn('sharpenAmount', params.sharpenAmount, 0, 3);
  if (params.blurSigma !== null && params.sharpenAmount !== null) {
    throw new ValidationError({ blurSigma: 'blurSigma and sharpenAmount cannot both be set' });
  }
  if (params.grainSigma !== null) numberIn('grainSigma', params.grainSigma, 0, 64);
  if (params.vignetteStrength !== null) numberIn('vignetteStrength', params.vignetteStrength, 0, 1);
  if (!Number.isInteger(params.jpegQuality)) throw new ValidationError({ jpegQuality: 'must be a whole number' });
  numberIn('jpegQuality', params.jpegQuality, 1, 100);
  return {
    seed: params.seed,
    preset: params.preset,
    contrast: params.contrast,
    blurSigma: params.blurSigma,
    sharpenAmount: params.sharpenAmount,
    grainSigma: params.grainSigma,
    vignetteStrength: params.vignetteStrength,
    jpegQuality: params.jpegQuality,
  };
}

/** The options that processGrid and processPicture share, checked. */
function chainOptions(options: ProcessPictureOptions | null | undefined): {
  borders: WhiteBorderSettings | null;
  styleSeed: string | null;
} {
  if (options === null || typeof options !== 'object')
    throw new ValidationError({ options: 'must be an object with styleSeed (a string or null)' });
  const borders = options.cropWhiteBorders;
  if (borders !== undefined && typeof borders !== 'boolean' && (borders === null || typeof borders !== 'object')) {
    throw new ValidationError({ cropWhiteBorders: 'must be true, false or border settings' });
  }
  return {
    borders: borders === false ? null : borderSettings(borders === true ? undefined : borders),
    styleSeed: options.styleSeed === null ? null : checkSeed(options.styleSeed),
  };
}

/** A packet of ours is about 1-2 KB: anything near this is a mistake, not a mark. */
const MAX_XMP_BYTES = 64 * 1024;

/** The optional XMP packet of an output: a string of XML, or absent (null to the worker). */
function xmpOption(xmp: unknown): string | null {
  if (xmp === undefined || xmp === null) return null;
  if (typeof xmp !== 'string' || !xmp.trimStart().startsWith('<'))
    throw new ValidationError({ xmp: 'must be an XMP packet (a string of XML)' });
  if (Buffer.byteLength(xmp) > MAX_XMP_BYTES) throw new ValidationError({ xmp: `must be at most ${MAX_XMP_BYTES} bytes` });
  return xmp;
}

/**
 * An ImageProcessor backed by sharp in a piscina pool. Workers start on the first call (a web
 * process that never touches images starts none) and stay until close().
 */
export function createImageProcessor(options: ImageProcessorOptions = {}): OpencvImageProcessor {
  const threads = options.threads ? positiveInteger('threads', options.threads, 1, 256) : availableParallelism();
  const timeoutMs = positiveInteger('timeoutMs', options.timeoutMs, DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS);
  const limits: InputLimits = {
    maxInputBytes: positiveInteger('maxInputBytes', options.maxInputBytes, DEFAULT_MAX_INPUT_BYTES),
    maxPixels: positiveInteger('maxPixels', options.maxPixels, DEFAULT_MAX_PIXELS),
    formats: parseFormats(options.formats),
  };
  const workerSettings: WorkerSettings = { maxPixels: limits.maxPixels, jpegOptimizeCoding: options.jpegOptimizeCoding ?? false };
  // A call reaches piscina (and starts its clock) only when a worker is free; first in, first out.
  const queue = new PQueue({ concurrency: threads });
  let pool: Piscina | undefined;
  let closed = false;
  let closing: Promise<void> | undefined;

  const getPool = () => {
    if (pool) return pool;
    pool = new Piscina({
      filename: WORKER_URL.href,
      minThreads: threads,
      maxThreads: threads,
      concurrentTasksPerWorker: 1,
      idleTimeout: Number.POSITIVE_INFINITY,
      execArgv: WORKER_EXEC_ARGV,
      workerData: workerSettings,
    });
    // Once per pool (not per call): errors that belong to no call.
    pool.on('error', (error: unknown) => options.onPoolError?.(error));
    return pool;
  };

  async function run<K extends WorkerTask['op']>(
    op: K,
    image: Bytes,
    task: Omit<Extract<WorkerTask, { op: K }>, 'op' | 'image'>,
    call: CallOptions | null = {},
  ): Promise<WorkerResults[K]> {
    if (closed) throw new CancelledError('The image processor is closed');
    const limit = positiveInteger('timeoutMs', call?.timeoutMs, timeoutMs, MAX_TIMEOUT_MS);
    if (call?.signal !== undefined && !(call.signal instanceof AbortSignal))
      throw new ValidationError({ signal: 'must be an AbortSignal' });
    if (call?.signal?.aborted) throw new CancelledError();
    const bytes = admit(image, limits);
    try {
      return await queue.add(
        async () => {
          const timer = new AbortController();
          const clock = setTimeout(() => timer.abort(), limit);
          const signal = call?.signal ? AbortSignal.any([call.signal, timer.signal]) : timer.signal;
          try {
            // piscina copies the input for the worker: the caller's buffer is never detached
            const reply: WorkerReply<WorkerResults[K]> = await getPool().run({ ...task, op, image: bytes }, { signal });
            if (!reply.ok) throw rebuildError(reply.kind, reply.message, reply.field);
            return reply.value;
          } catch (error) {
            if (timer.signal.aborted) throw new ImageTimeoutError(op, limit);
            throw error;
          } finally {
            clearTimeout(clock);
          }
        },
        { signal: call?.signal },
      );
    } catch (error) {
      if (call?.signal?.aborted) throw new CancelledError();
      throw error;
    }
  }

  const gridSize = (name: string, value: number | undefined) => positiveInteger(name, value, 2, MAX_GRID);

  // every method is async so that a bad argument rejects the promise instead of throwing
  return {
    threads,
    async splitGrid(image, rows, cols) {
      return run('splitGrid', image, { rows: gridSize('rows', rows), cols: gridSize('cols', cols) });
    },
    async trimWhitespace(image, options) {
      return run('trimWhitespace', image, { tolerance: numberIn('tolerance', optionsObject('options', options).tolerance ?? 0, 0, 255) });
    },
    async cropWhiteBorders(image, options) {
      return run('cropWhiteBorders', image, { settings: borderSettings(options) });
    },
    async randomizeStyle(image, options) {
      return run('randomizeStyle', image, { seed: checkSeed(options?.seed) }, options);
    },
    async applyStyle(image, params, options) {
      return run('applyStyle', image, { params: checkParams(params) }, options);
    },
    async thumbnail(image, width, options) {
      if (width === undefined) throw new ValidationError({ width: 'is required' });
      const xmp = xmpOption(optionsObject('options', options).xmp);
      return run('thumbnail', image, { width: positiveInteger('width', width, 0, MAX_THUMBNAIL_WIDTH), xmp });
    },
    async processGrid(image, options) {
      const { borders, styleSeed } = chainOptions(options);
      return run(
        'processGrid',
        image,
        {
          rows: positiveInteger('rows', options.rows, 2, MAX_SHOTS_PER_SIDE),
          cols: positiveInteger('cols', options.cols, 2, MAX_SHOTS_PER_SIDE),
          borders,
          styleSeed,
          xmp: xmpOption(options.xmp),
        },
        options,
      );
    },
    async processPicture(image, options) {
      return run('processPicture', image, { ...chainOptions(options), xmp: xmpOption(options.xmp) }, options);
    },
    async perceptualHash(image, options) {
      return run('perceptualHash', image, {}, optionsObject('options', options));
    },
    close() {
      closed = true;
      closing ??= (async () => {
        await queue.onIdle();
        await pool?.close();
      })();
      return closing;
    },
  };
}
