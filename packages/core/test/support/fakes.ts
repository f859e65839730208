/**
 * Stand-ins for the external services (the LLM and the image API) in core's pipeline tests:
 * deterministic, with latency, failure injection and counters. The image processor here only
 * slices bytes (the real one, sharp in piscina, is tested in @avatargen/image-opencv and end to end).
 */
import { appendFileSync } from 'node:fs';
import {
  CancelledError,
  definePlugin,
  delay,
  type EncodedImage,
  type ImageProcessor,
  ModerationError,
  type PersonaBatch,
  type PersonaData,
  ProviderError,
  readImageInfo,
} from '../../src/index.js';
import { makeBorderedPng, makeGridPng, samplePersona } from '../../src/testing.js';
import { createFilesystemStorage } from '../../src/storage/filesystem.js';

export interface Calls {
  persona: number;
  prompt: number;
  base: number;
  grid: number;
  inFlightPersona: number;
  maxInFlightPersona: number;
  inFlightImage: number;
  maxInFlightImage: number;
  signals: AbortSignal[];
}

export interface FakeOptions {
  personaLatencyMs?: number;
  promptLatencyMs?: number;
  baseLatencyMs?: number;
  gridLatencyMs?: number;
  /** Throw for these persona calls (by seed "task:batch"); return true to fail. */
  failPersona?: (seed: string, attempt: number) => Error | null;
  /** Return fewer personas, or invalid ones, for a batch. */
  shapeBatch?: (seed: string, personas: PersonaData[]) => unknown[];
  failGrid?: (seed: string) => Error | null;
  failBase?: (seed: string, face: string | undefined) => Error | null;
  /** Append one line per call ("persona <seed>", "grid <seed>"...) to this file (for worker processes). */
  callLog?: string;
}

export function fakeServices(options: FakeOptions = {}) {
  const calls: Calls = {
    persona: 0,
    prompt: 0,
    base: 0,
    grid: 0,
    inFlightPersona: 0,
    maxInFlightPersona: 0,
    inFlightImage: 0,
    maxInFlightImage: 0,
    signals: [],
  };
  const attempts = new Map<string, number>();
  const log = (line: string) => {
    if (options.callLog) appendFileSync(options.callLog, `${process.pid} ${line}\n`);
  };
  const wait = async (ms: number | undefined, signal?: AbortSignal) => {
    if (signal?.aborted) throw new CancelledError();
    if (ms) await delay(ms, signal);
  };
  const grid = makeGridPng({ cell: 24, gutter: 4, margin: 4 });
  const base = makeBorderedPng({ width: 32, height: 32, border: 2 });

  const personaProvider = {
    async generate(request: { count: number; seed: string; signal?: AbortSignal }): Promise<PersonaBatch> {
      calls.persona++;
      calls.signals.push(request.signal as AbortSignal);
      calls.inFlightPersona++;
      calls.maxInFlightPersona = Math.max(calls.maxInFlightPersona, calls.inFlightPersona);
      try {
        await wait(options.personaLatencyMs, request.signal);
        const attempt = (attempts.get(request.seed) ?? 0) + 1;
        attempts.set(request.seed, attempt);
        log(`persona ${request.seed}`);
        const failure = options.failPersona?.(request.seed, attempt);
        if (failure) throw failure;
        const personas = Array.from({ length: request.count }, (_, i) =>
          samplePersona({ firstName: `P${request.seed.replace(/\W/g, '')}x${i}`, gender: i % 2 ? 'm' : 'f', age: 20 + i }),
        );
        const shaped = options.shapeBatch ? options.shapeBatch(request.seed, personas) : personas;
        return { personas: shaped as PersonaData[], rejected: [] };
      } finally {
        calls.inFlightPersona--;
      }
    },
  };

  const imagePromptProvider = {
    async nextPrompt(request: { previousPrompts: readonly string[]; seed: string; signal?: AbortSignal }) {
      calls.prompt++;
      await wait(options.promptLatencyMs, request.signal);
      log(`prompt ${request.seed} ${request.previousPrompts.length}`);
      return `shot ${request.previousPrompts.length + 1} for ${request.seed}`;
    },
  };

  const imageCall = async <T>(ms: number | undefined, signal: AbortSignal | undefined, fn: () => T): Promise<T> => {
    calls.inFlightImage++;
    calls.maxInFlightImage = Math.max(calls.maxInFlightImage, calls.inFlightImage);
    try {
      await wait(ms, signal);
      return fn();
    } finally {
      calls.inFlightImage--;
    }
  };

  const imageProvider = {
    async baseImage(request: { seed: string; referenceFace?: { key: string }; signal?: AbortSignal }): Promise<EncodedImage> {
      calls.base++;
      return imageCall(options.baseLatencyMs, request.signal, () => {
        log(`base ${request.seed}`);
        const failure = options.failBase?.(request.seed, request.referenceFace?.key);
        if (failure) throw failure;
        return { data: base, contentType: 'image/png' };
      });
    },
    async gridFromBase(request: { seed: string; signal?: AbortSignal }): Promise<EncodedImage> {
      calls.grid++;
      return imageCall(options.gridLatencyMs, request.signal, () => {
        log(`grid ${request.seed}`);
        const failure = options.failGrid?.(request.seed);
        if (failure) throw failure;
        return { data: grid, contentType: 'image/png' };
      });
    },
  };

  return { calls, personaProvider, imagePromptProvider, imageProvider };
}

/** Cuts nothing: gives the grid back four times. The pipeline only needs four encoded images. */
export const copyProcessor: ImageProcessor = {
  async splitGrid(image) {
    return [image, image, image, image];
  },
  async trimWhitespace(image) {
    return image;
  },
  async cropWhiteBorders(image) {
    return image;
  },
  async randomizeStyle(image, { seed }) {
    return {
      data: image,
      contentType: readImageInfo(image).contentType,
      params: { seed, preset: 'natural', contrast: 1, blurSigma: null, sharpenAmount: null, grainSigma: null, vignetteStrength: null, jpegQuality: 90 },
    };
  },
  async thumbnail(image) {
    return image;
  },
  async processGrid(image, options) {
    const info = readImageInfo(image);
    return [0, 1, 2, 3].map((cell) => ({
      data: image,
      contentType: info.contentType,
      width: info.width,
      height: info.height,
      style: options.styleSeed
        ? { seed: `${options.styleSeed}:${cell}`, preset: 'natural' as const, contrast: 1, blurSigma: null, sharpenAmount: null, grainSigma: null, vignetteStrength: null, jpegQuality: 90 }
        : null,
    }));
  },
};

export function fakePlugin(fakes: ReturnType<typeof fakeServices>, storageRoot: string) {
  return definePlugin({
    name: 'test-services',
    register(context) {
      context.provide('personaProvider', fakes.personaProvider);
      context.provide('imagePromptProvider', fakes.imagePromptProvider);
      context.provide('imageProvider', fakes.imageProvider);
      context.provide('imageProcessor', copyProcessor);
      context.provide('objectStorage', createFilesystemStorage({ root: storageRoot }));
    },
  });
}

export const errors = {
  server: () => ProviderError.server('test', 'upstream 503', 503),
  auth: () => ProviderError.auth('test', 'bad key'),
  moderation: () => new ModerationError('test', 'blocked by the safety system'),
};
