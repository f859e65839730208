import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { move, transferableSymbol, valueSymbol, workerData } from 'piscina';
import sharp, { type Sharp } from 'sharp';
import { extract, gridCells, type RawImage, type Rect, trimBox, type WhiteBorderSettings, whiteBorderBox } from './pixels.js';
import type { WorkerReply, WorkerSettings, WorkerTask } from './protocol.js';
import { chooseStyle, renderStyle } from './style.js';

/**
 * The pool's worker: decodes once with sharp, does the geometry and the style pass on raw
 * pixels, encodes once per output. It imports nothing from core at runtime (a worker stays
 * small and starts fast); failures go back as data, typed by `kind`.
 */

// One libvips thread per worker: the pool is the parallelism, threads must not fight over cores.
sharp.concurrency(1);
// Every input is new bytes: the operation cache would only hold memory.
sharp.cache(false);

/**
 * A young-generation collection, run after each task. sharp's decoded pixels (3 MB for a 1024 px
 * grid) are native memory freed only when V8 collects their Buffer, and V8 waits for ~64 MB of
 * them: by then glibc hands the lot back to the kernel and every decode touches fresh pages
 * again (a page fault per 4 KiB, ~9 ms a grid on our VMs). Collected at once, the next decode
 * reuses the same memory. A scavenge of this small heap takes well under a millisecond.
 * The flag is switched on only to fetch `gc` and off again, as Jest does.
 */
type Gc = (options: { type: 'minor' | 'major' }) => void;
const collectGarbage = ((): (() => void) => {
  // a process started with --expose-gc already has it, and its flag is left as it was
  const exposed = (globalThis as { gc?: Gc }).gc;
  if (typeof exposed === 'function') return () => exposed({ type: 'minor' });
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as Gc;
    return () => gc({ type: 'minor' });
  } catch {
    return () => {};
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
})();

const settings: WorkerSettings = {
  maxPixels: 50_000_000,
  jpegOptimizeCoding: false,
  ...(workerData as Partial<WorkerSettings> | undefined),
};

// Encoder options are fixed, so the same pixels always give the same bytes.
// Lossless cells: adaptive filtering makes photo-like PNGs about a quarter smaller for ~50% more
// encoding time, and storage lasts longer than the few ms spent here.
const PNG_OPTIONS = { compressionLevel: 6, adaptiveFiltering: true, palette: false } as const;
const jpegOptions = (quality: number) =>
  ({
    quality,
    chromaSubsampling: '4:2:0',
    // optimised Huffman tables make files 3-14% smaller but double the encoding time
    optimiseCoding: settings.jpegOptimizeCoding,
    progressive: false,
    mozjpeg: false,
  }) as const;
const WEBP_OPTIONS = { quality: 80, effort: 4, smartSubsample: false } as const;

class BadImage extends Error {}
class BadArgument extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** A grid needs at least one pixel per cell. */
function checkGrid(image: RawImage, rows: number, cols: number): void {
  if (rows > image.height) throw new BadArgument('rows', `${rows} rows do not fit in an image ${image.height} px high`);
  if (cols > image.width) throw new BadArgument('cols', `${cols} columns do not fit in an image ${image.width} px wide`);
}

/** Decodes any accepted input to 8-bit sRGB without alpha (transparency becomes white). */
async function decode(image: Uint8Array): Promise<RawImage> {
  try {
    const { data, info } = await sharp(image, { limitInputPixels: settings.maxPixels, failOn: 'warning', autoOrient: true })
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`unexpected ${info.channels} channels after decoding`);
    return { data, width: info.width, height: info.height };
  } catch (error) {
    throw new BadImage(`Cannot decode the image: ${reasonOf(error)}`);
  }
}

/**
 * sharp's message, first line only: libvips keeps one error buffer for the whole process, so
 * with two workers a message can gain lines from another call's failure.
 */
function reasonOf(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const line = text.split('\n').find((l) => l.trim() !== '') ?? '';
  return line.trim().replace(/:$/, '') || 'unreadable data';
}

/** A buffer the worker owns outright (sharp's output memory cannot be transferred, only copied). */
function owned(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && !Buffer.isBuffer(bytes)
    ? bytes
    : new Uint8Array(bytes);
}

const rawInput = (width: number, height: number) => ({ raw: { width, height, channels: 3 as const } });

/** The provenance packet goes in at the one encode an output gets (sharp's withXmp): never a second pass. */
const withXmp = (image: Sharp, xmp: string | null) => (xmp === null ? image : image.withXmp(xmp));

async function png(pixels: Uint8Array, width: number, height: number, xmp: string | null = null): Promise<Uint8Array> {
  return owned(await withXmp(sharp(pixels, rawInput(width, height)).png(PNG_OPTIONS), xmp).toBuffer());
}

/** JPEG holds at most this many pixels per side. */
const JPEG_MAX_SIDE = 65_535;

async function jpeg(pixels: Uint8Array, width: number, height: number, quality: number, xmp: string | null = null): Promise<Uint8Array> {
  if (width > JPEG_MAX_SIDE || height > JPEG_MAX_SIDE) {
    throw new BadImage(`The result would be ${width}x${height} pixels: a JPEG holds at most ${JPEG_MAX_SIDE} per side`);
  }
  return owned(await withXmp(sharp(pixels, rawInput(width, height)).jpeg(jpegOptions(quality)), xmp).toBuffer());
}

async function pngOf(image: RawImage, rect: Rect, xmp: string | null = null): Promise<Uint8Array> {
  return png(extract(image, rect), rect.width, rect.height, xmp);
}

const whole = (image: RawImage): Rect => ({ x: 0, y: 0, width: image.width, height: image.height });

/**
 * The style kernel returns a view into its WebAssembly memory: it is encoded before the next
 * cell is rendered, so no pixel buffer is allocated per cell.
 */
async function styled(image: RawImage, rect: Rect, params: ReturnType<typeof chooseStyle>, xmp: string | null = null) {
  const data = await jpeg(renderStyle(image, rect, params), rect.width, rect.height, params.jpegQuality, xmp);
  return { data, contentType: 'image/jpeg', params };
}

async function perform(task: WorkerTask): Promise<unknown> {
  switch (task.op) {
    case 'splitGrid': {
      const image = await decode(task.image);
      checkGrid(image, task.rows, task.cols);
      const cells: Uint8Array[] = [];
      for (const cell of gridCells(image.width, image.height, task.rows, task.cols)) cells.push(await pngOf(image, cell));
      return cells;
    }
    case 'trimWhitespace': {
      const image = await decode(task.image);
      return pngOf(image, trimBox(image, whole(image), task.tolerance));
    }
    case 'cropWhiteBorders': {
      const image = await decode(task.image);
      return pngOf(image, whiteBorderBox(image, whole(image), task.settings));
    }
    case 'randomizeStyle': {
      const image = await decode(task.image);
      return styled(image, whole(image), chooseStyle(task.seed));
    }
    case 'applyStyle': {
      const image = await decode(task.image);
      return styled(image, whole(image), task.params);
    }
    case 'thumbnail': {
      try {
        // never wider than the original: a thumbnail is for looking, not for inventing pixels
        const data = await withXmp(
          sharp(task.image, { limitInputPixels: settings.maxPixels, failOn: 'warning', autoOrient: true })
            .resize({ width: task.width, withoutEnlargement: true })
            .webp(WEBP_OPTIONS),
          task.xmp ?? null,
        ).toBuffer();
        return owned(data);
      } catch (error) {
        throw new BadImage(`Cannot make a thumbnail of the image: ${reasonOf(error)}`);
      }
    }
    case 'processGrid': {
      // decode once; each cell is a rectangle until its single encode
      const image = await decode(task.image);
      checkGrid(image, task.rows, task.cols);
      const out = [];
      const cells = gridCells(image.width, image.height, task.rows, task.cols);
      for (const [index, cell] of cells.entries()) {
        out.push(await processRect(image, cell, task.borders, task.styleSeed === null ? null : `${task.styleSeed}:${index}`, task.xmp ?? null));
      }
      return out;
    }
    case 'processPicture': {
      const image = await decode(task.image);
      return processRect(image, whole(image), task.borders, task.styleSeed, task.xmp ?? null);
    }
  }
}

/** What a grid cell or a separate picture goes through: trim -> crop white borders -> style (or PNG). */
async function processRect(image: RawImage, area: Rect, borders: WhiteBorderSettings | null, styleSeed: string | null, xmp: string | null) {
  let rect = trimBox(image, area, 0);
  if (borders) rect = whiteBorderBox(image, rect, borders);
  if (styleSeed === null) {
    return { data: await pngOf(image, rect, xmp), contentType: 'image/png', width: rect.width, height: rect.height, style: null };
  }
  const { data, contentType, params } = await styled(image, rect, chooseStyle(styleSeed), xmp);
  return { data, contentType, width: rect.width, height: rect.height, style: params };
}

/** Every Uint8Array inside the result, so their memory moves to the main thread instead of being copied. */
function buffersOf(value: unknown, found: Set<ArrayBuffer> = new Set()): Set<ArrayBuffer> {
  if (value instanceof Uint8Array) {
    if (value.buffer instanceof ArrayBuffer) found.add(value.buffer);
  } else if (Array.isArray(value)) {
    for (const item of value) buffersOf(item, found);
  } else if (value !== null && typeof value === 'object') {
    for (const item of Object.values(value)) buffersOf(item, found);
  }
  return found;
}

export default async function handle(task: WorkerTask): Promise<unknown> {
  let reply: WorkerReply<unknown>;
  try {
    reply = { ok: true, value: await perform(task) };
  } catch (error) {
    if (error instanceof BadImage) reply = { ok: false, kind: 'invalid-image', message: error.message };
    else if (error instanceof BadArgument) reply = { ok: false, kind: 'validation', message: error.message, field: error.field };
    else reply = { ok: false, kind: 'error', message: error instanceof Error ? error.message : String(error) };
  }
  // after the reply has gone out, while the main thread reads it
  setImmediate(collectGarbage);
  // the input buffer goes back to the pool, to carry the next input
  const transfer = reply.ok ? buffersOf(reply.value) : new Set<ArrayBuffer>();
  const input = task.image?.buffer;
  if (input instanceof ArrayBuffer && !transfer.has(input)) {
    reply.input = input;
    transfer.add(input);
  }
  return move({
    get [transferableSymbol]() {
      return [...transfer];
    },
    get [valueSymbol]() {
      return reply;
    },
  });
}
