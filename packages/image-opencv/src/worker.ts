import { workerData } from 'piscina';
import sharp, { type Sharp } from 'sharp';
import { differenceHash, HASH_HEIGHT, HASH_KERNEL, HASH_WIDTH } from './phash.js';
import { extract, gridCells, type RawImage, type Rect, trimBox, type WhiteBorderSettings, whiteBorderBox } from './pixels.js';
import type { WorkerReply, WorkerSettings, WorkerTask } from './protocol.js';
import { chooseStyle, renderStyle } from './style.js';

/**
 * The pool's worker: decodes once with sharp, does the geometry and the style pass on raw
 * pixels, encodes once per output. Of core it imports only the light `@avatargen/core/domain`
 * (through style.ts); failures go back as data, typed by `kind`.
 */

// One libvips thread per worker: the pool is the parallelism, threads must not fight over cores.
sharp.concurrency(1);
// Every input is new bytes: the operation cache would only hold memory.
sharp.cache(false);

const settings: WorkerSettings = {
  maxPixels: 50_000_000,
  jpegOptimizeCoding: false,
  ...(workerData as Partial<WorkerSettings> | undefined),
};

// Encoder options are fixed, so the same pixels always give the same bytes.
// Lossless cells: adaptive filtering makes photo-like PNGs smaller, and storage lasts longer than
// the encoding.
const PNG_OPTIONS = { compressionLevel: 6, adaptiveFiltering: true, palette: false } as const;
const jpegOptions = (quality: number) =>
  ({
    quality,
    chromaSubsampling: '4:2:0',
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

const rawInput = (width: number, height: number) => ({ raw: { width, height, channels: 3 as const } });

/** The provenance packet goes in at the one encode an output gets (sharp's withXmp): never a second pass. */
const withXmp = (image: Sharp, xmp: string | null) => (xmp === null ? image : image.withXmp(xmp));

async function png(pixels: Uint8Array, width: number, height: number, xmp: string | null = null): Promise<Uint8Array> {
  return withXmp(sharp(pixels, rawInput(width, height)).png(PNG_OPTIONS), xmp).toBuffer();
}

/** JPEG holds at most this many pixels per side. */
const JPEG_MAX_SIDE = 65_535;

async function jpeg(pixels: Uint8Array, width: number, height: number, quality: number, xmp: string | null = null): Promise<Uint8Array> {
  if (width > JPEG_MAX_SIDE || height > JPEG_MAX_SIDE) {
    throw new BadImage(`The result would be ${width}x${height} pixels: a JPEG holds at most ${JPEG_MAX_SIDE} per side`);
  }
  return withXmp(sharp(pixels, rawInput(width, height)).jpeg(jpegOptions(quality)), xmp).toBuffer();
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
        return await withXmp(
          sharp(task.image, { limitInputPixels: settings.maxPixels, failOn: 'warning', autoOrient: true })
            .resize({ width: task.width, withoutEnlargement: true })
            .webp(WEBP_OPTIONS),
          task.xmp ?? null,
        ).toBuffer();
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
        out.push(
          await processRect(image, cell, task.borders, task.styleSeed === null ? null : `${task.styleSeed}:${index}`, task.xmp ?? null),
        );
      }
      return out;
    }
    case 'processPicture': {
      const image = await decode(task.image);
      return processRect(image, whole(image), task.borders, task.styleSeed, task.xmp ?? null);
    }
    case 'perceptualHash':
      return perceptualHash(task.image);
  }
}

/**
 * The dHash (phash.ts) of a picture. The resize goes straight from the input, so libvips streams
 * the decode into the shrink (and a JPEG or WebP is shrunk while it loads): the whole picture is
 * never held as raw pixels. Transparency becomes white, as in decode().
 */
async function perceptualHash(image: Uint8Array): Promise<string> {
  let grey: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    grey = await sharp(image, { limitInputPixels: settings.maxPixels, failOn: 'warning', autoOrient: true })
      .flatten({ background: '#ffffff' })
      .greyscale()
      .resize(HASH_WIDTH, HASH_HEIGHT, { fit: 'fill', kernel: HASH_KERNEL })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw new BadImage(`Cannot decode the image: ${reasonOf(error)}`);
  }
  const { data, info } = grey;
  if (info.channels !== 1 || info.width !== HASH_WIDTH || info.height !== HASH_HEIGHT) {
    throw new Error(`unexpected ${info.width}x${info.height}x${info.channels} pixels for the hash`);
  }
  return differenceHash(data);
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

export default async function handle(task: WorkerTask): Promise<WorkerReply<unknown>> {
  try {
    return { ok: true, value: await perform(task) };
  } catch (error) {
    if (error instanceof BadImage) return { ok: false, kind: 'invalid-image', message: error.message };
    if (error instanceof BadArgument) return { ok: false, kind: 'validation', message: error.message, field: error.field };
    return { ok: false, kind: 'error', message: error instanceof Error ? error.message : String(error) };
  }
}
