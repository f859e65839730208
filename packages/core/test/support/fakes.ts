/**
 * Stand-ins for the external services (the LLM and the image API) in core's pipeline tests:
 * deterministic, with latency, failure injection and counters. The image processor here only
 * slices bytes (the real one, sharp in piscina, is tested in @avatargen/image-opencv and end to end).
 */
import { appendFileSync } from 'node:fs';
import { inflateSync } from 'node:zlib';
import {
  CancelledError,
  definePlugin,
  delay,
  type EncodedImage,
  type ImageProcessor,
  ModerationError,
  neutralStyle,
  type PersonaBatch,
  type PersonaData,
  type Pictures,
  type ProcessedImage,
  ProviderError,
  readImageInfo,
} from '../../src/index.js';
import { encodePng, makeBorderedPng, makeGridPng, samplePersona } from '../../src/testing.js';
// A real storage: @avatargen/storage-filesystem is a dev dependency of core for its tests.
import { createFilesystemStorage } from '@avatargen/storage-filesystem';

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
  shapeBatch?: (seed: string, personas: PersonaData[], request: { avoidNames?: readonly string[] }) => unknown[];
  /** Throw for these pictures calls (by seed "task:persona:shot"). */
  failGrid?: (seed: string) => Error | null;
  /**
   * What pictures() answers: 'grid' (default) is one 2x2 grid; 'images' is `count` separate
   * pictures with a white border (see borderedPicture); a function shapes any answer (a wrong
   * count, a 3x3 grid...) per seed and call.
   */
  pictures?: 'grid' | 'images' | ((request: { seed: string; count: number }, attempt: number) => Pictures);
  failBase?: (seed: string, face: string | undefined, firstName?: string) => Error | null;
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
    async generate(request: { count: number; seed: string; avoidNames?: readonly string[]; signal?: AbortSignal }): Promise<PersonaBatch> {
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
        const shaped = options.shapeBatch ? options.shapeBatch(request.seed, personas, request) : personas;
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
    async baseImage(request: {
      seed: string;
      persona?: { firstName: string };
      referenceFace?: { key: string };
      signal?: AbortSignal;
    }): Promise<EncodedImage> {
      calls.base++;
      return imageCall(options.baseLatencyMs, request.signal, () => {
        log(`base ${request.seed}`);
        const failure = options.failBase?.(request.seed, request.referenceFace?.key, request.persona?.firstName);
        if (failure) throw failure;
        return { data: base, contentType: 'image/png' };
      });
    },
    async pictures(request: { seed: string; count: number; signal?: AbortSignal }): Promise<Pictures> {
      calls.grid++;
      return imageCall(options.gridLatencyMs, request.signal, () => {
        log(`grid ${request.seed}`);
        const failure = options.failGrid?.(request.seed);
        if (failure) throw failure;
        const attempt = (attempts.get(`pictures ${request.seed}`) ?? 0) + 1;
        attempts.set(`pictures ${request.seed}`, attempt);
        const shape = options.pictures ?? 'grid';
        if (typeof shape === 'function') return shape(request, attempt);
        if (shape === 'images') {
          return {
            kind: 'images',
            images: Array.from({ length: request.count }, (_, i) => ({ data: borderedPicture(i), contentType: 'image/png' })),
          };
        }
        return { kind: 'grid', image: { data: grid, contentType: 'image/png' }, rows: 2, cols: 2 };
      });
    },
  };

  return { calls, personaProvider, imagePromptProvider, imageProvider };
}

/** Side of a picture from borderedPicture(), and of its white border. */
export const PICTURE = { size: 30, border: 3 };

/** Separate picture `index` of a shot: a distinct colour inside a white border. */
export function borderedPicture(index: number): Buffer {
  const { size, border } = PICTURE;
  return encodePng(size, size, (x, y) =>
    x < border || y < border || x >= size - border || y >= size - border ? [255, 255, 255] : [40 + index * 40, 90, 200 - index * 30],
  );
}

/** Decodes the PNGs that encodePng makes (8-bit RGB, no filters), for the fake processor. */
function decodeOwnPng(png: Uint8Array): { width: number; height: number; pixels: Buffer } | null {
  const bytes = Buffer.from(png);
  if (bytes.readUInt32BE(12) !== 0x49484452) return null; // IHDR
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  if (bytes[24] !== 8 || bytes[25] !== 2) return null;
  const idat: Buffer[] = [];
  for (let o = 8; o < bytes.length; ) {
    const length = bytes.readUInt32BE(o);
    if (bytes.toString('ascii', o + 4, o + 8) === 'IDAT') idat.push(bytes.subarray(o + 8, o + 8 + length));
    o += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    if (raw[y * (width * 3 + 1)] !== 0) return null;
    raw.copy(pixels, y * width * 3, y * (width * 3 + 1) + 1, (y + 1) * (width * 3 + 1));
  }
  return { width, height, pixels };
}

/** Crops a pure-white frame off our own PNGs (others are given back as they are). */
function cropWhite(image: Uint8Array): Uint8Array {
  const decoded = decodeOwnPng(image);
  if (!decoded) return image;
  const { width, height, pixels } = decoded;
  const white = (x: number, y: number) => pixels.readUIntBE((y * width + x) * 3, 3) === 0xffffff;
  let top = 0;
  let left = 0;
  let bottom = height;
  let right = width;
  while (top < bottom && Array.from({ length: width }, (_, x) => white(x, top)).every(Boolean)) top++;
  while (bottom > top && Array.from({ length: width }, (_, x) => white(x, bottom - 1)).every(Boolean)) bottom--;
  while (left < right && Array.from({ length: height }, (_, y) => white(left, y)).every(Boolean)) left++;
  while (right > left && Array.from({ length: height }, (_, y) => white(right - 1, y)).every(Boolean)) right--;
  if (top === bottom || left === right) return image;
  return encodePng(right - left, bottom - top, (x, y) => {
    const o = ((y + top) * width + x + left) * 3;
    return [pixels[o] as number, pixels[o + 1] as number, pixels[o + 2] as number];
  });
}

const fakeStyle = (seed: string) => neutralStyle(seed);

/**
 * Cuts nothing in a grid: gives the grid back rows * cols times (the pipeline only needs encoded
 * images). A separate picture has its white frame cropped (when asked), so tests can see it was processed.
 */
export const copyProcessor: ImageProcessor = {
  async splitGrid(image, rows = 2, cols = 2) {
    return Array.from({ length: rows * cols }, () => image);
  },
  async trimWhitespace(image) {
    return image;
  },
  async cropWhiteBorders(image) {
    return image;
  },
  async randomizeStyle(image, { seed }) {
    return { data: image, contentType: readImageInfo(image).contentType, params: fakeStyle(seed) };
  },
  async thumbnail(image) {
    return image;
  },
  async processGrid(image, options) {
    const info = readImageInfo(image);
    return Array.from({ length: (options.rows ?? 2) * (options.cols ?? 2) }, (_, cell) => ({
      data: image,
      contentType: info.contentType,
      width: info.width,
      height: info.height,
      style: options.styleSeed ? fakeStyle(`${options.styleSeed}:${cell}`) : null,
    }));
  },
  async processPicture(image, options): Promise<ProcessedImage> {
    const data = options.cropWhiteBorders ? cropWhite(image) : image;
    const info = readImageInfo(data);
    return {
      data,
      contentType: info.contentType,
      width: info.width,
      height: info.height,
      style: options.styleSeed ? fakeStyle(options.styleSeed) : null,
    };
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
