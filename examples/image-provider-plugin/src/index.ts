import {
  type AvatarGenPlugin,
  type BaseImageRequest,
  CancelledError,
  ConfigError,
  definePlugin,
  type EncodedImage,
  type ImageProvider,
  InvalidImageError,
  type Pictures,
  type PicturesRequest,
  ProviderError,
  readImageInfo,
  throwIfAborted,
  ValidationError,
  z,
} from '@avatargen/core';
import { baseScene, faceOf, identityOf, PAINTER_STYLES, type PainterStyle, paint, pictureScene } from './paint.js';
import { encodePng } from './png.js';

export { baseScene, type Face, faceOf, identityOf, PAINTER_STYLES, type PainterStyle, paint, pictureScene, type Scene } from './paint.js';
export { crc32, encodePng, type RgbImage } from './png.js';

/** The plugin's name: its package name, as listings and errors show it. */
export const PLUGIN_NAME = '@acme/avatargen-painter';
/** Written into every PNG (a tEXt "Software" chunk), so a stored picture tells where it came from. */
export const SOFTWARE = `${PLUGIN_NAME} 1.0.0`;
/** A Painter API token: pt_ and at least 13 more letters, digits, - or _. */
export const TOKEN_PATTERN = /^pt_[A-Za-z0-9_-]{13,}$/;
/** The most pictures one call paints. */
export const MAX_PICTURES = 16;

const sizeError = 'must be a whole number from 128 to 1024';

/**
 * The plugin's environment variables. Core validates them (environment and .env) when the plugin
 * is loaded; an error names the variable and the plugin, never the value.
 */
export const painterConfig = z.object({
  PAINTER_API_TOKEN: z
    .string()
    .trim()
    .regex(TOKEN_PATTERN, { error: 'must be a Painter API token: pt_ followed by at least 13 letters, digits, - or _' })
    .describe('Painter API token (secret, required): pt_ followed by at least 13 letters, digits, - or _.'),
  PAINTER_SIZE: z.coerce
    .number({ error: sizeError })
    .int({ error: sizeError })
    .min(128, { error: sizeError })
    .max(1024, { error: sizeError })
    .default(384)
    .describe('Side of the painted pictures in pixels (128-1024).'),
  PAINTER_STYLE: z
    .enum(PAINTER_STYLES, { error: `must be one of ${PAINTER_STYLES.join(', ')}` })
    .default('flat')
    .describe('Backgrounds: flat (one colour) or stripes (diagonal bands).'),
});

export interface PainterOptions {
  /** The Painter API token (pt_...): the service refuses calls without a valid one. */
  token: string;
  /** Side of the pictures in pixels, 128-1024. Default 384. */
  size?: number;
  /** Backgrounds: flat or stripes. Default flat. */
  style?: PainterStyle;
  /** Simulated service latency per picture, in milliseconds (0-60000). Default 0. */
  delayMs?: number;
}

function checkOptions(options: PainterOptions): Required<Omit<PainterOptions, 'token'>> {
  const issues: string[] = [];
  const size = options.size ?? 384;
  const style = options.style ?? 'flat';
  const delayMs = options.delayMs ?? 0;
  if (!Number.isInteger(size) || size < 128 || size > 1024) issues.push(`painter: size ${sizeError}, got ${String(size)}`);
  if (!PAINTER_STYLES.includes(style)) issues.push(`painter: style must be one of ${PAINTER_STYLES.join(', ')}`);
  if (!Number.isInteger(delayMs) || delayMs < 0 || delayMs > 60_000) {
    issues.push(`painter: delayMs must be a whole number from 0 to 60000, got ${String(delayMs)}`);
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return { size, style, delayMs };
}

/** Waits `ms`, or rejects with CancelledError as soon as the signal fires. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  throwIfAborted(signal);
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(new CancelledError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The image provider: offline and deterministic. `baseImage` paints the persona centred on its
 * backdrop (seeded by the request's seed); `pictures` paints `count` separate pictures of the same
 * face, each with its own background, place and pose. Pictures are PNG, `size` pixels square.
 */
export function createPainterImageProvider(options: PainterOptions): ImageProvider {
  const { size, style, delayMs } = checkOptions(options);
  const authorised = typeof options.token === 'string' && TOKEN_PATTERN.test(options.token);
  const png = (image: ReturnType<typeof paint>): EncodedImage => ({
    data: encodePng(image, { Software: SOFTWARE }),
    contentType: 'image/png',
  });
  // Stands for the hosted service's answer to a bad token: not worth retrying.
  const checkToken = () => {
    if (!authorised) throw ProviderError.auth('painter', 'The Painter service refused the API token (PAINTER_API_TOKEN)', 401);
  };

  return {
    async baseImage(request: BaseImageRequest): Promise<EncodedImage> {
      throwIfAborted(request.signal);
      checkToken();
      await pause(delayMs, request.signal);
      const face = faceOf(request.persona);
      return png(paint(face, baseScene(face, request.seed), size, style));
    },

    async pictures(request: PicturesRequest): Promise<Pictures> {
      throwIfAborted(request.signal);
      checkToken();
      if (!Number.isInteger(request.count) || request.count < 1 || request.count > MAX_PICTURES) {
        throw new ValidationError({ count: `must be a whole number from 1 to ${MAX_PICTURES}, got ${String(request.count)}` });
      }
      // The painter draws from the persona, but a base that is not an image is a caller's mistake.
      const info = readImageInfo(request.base.data);
      if (info.contentType !== request.base.contentType) {
        throw new InvalidImageError(`Base image is ${info.contentType}, not ${request.base.contentType}`);
      }
      const face = faceOf(request.persona);
      const identity = identityOf(request.persona);
      const images: EncodedImage[] = [];
      for (let index = 0; index < request.count; index++) {
        await pause(delayMs, request.signal);
        throwIfAborted(request.signal);
        images.push(png(paint(face, pictureScene(identity, request.seed, request.prompt ?? '', index), size, style)));
      }
      return { kind: 'images', images };
    },
  };
}

export interface PainterPluginOptions {
  /** Simulated service latency per picture, in milliseconds. Default 0. */
  delayMs?: number;
}

/**
 * The plugin: fills `imageProvider` only (a site's other ports keep the host's defaults). Its
 * variables come from the environment or the site's .env: PAINTER_API_TOKEN (secret, required),
 * PAINTER_SIZE, PAINTER_STYLE.
 */
export function painterPlugin(options: PainterPluginOptions = {}): AvatarGenPlugin {
  return definePlugin({
    name: PLUGIN_NAME,
    provides: ['imageProvider'],
    config: painterConfig,
    secrets: ['PAINTER_API_TOKEN'],
    register(context) {
      const { PAINTER_API_TOKEN: token, PAINTER_SIZE: size, PAINTER_STYLE: style } = context.config;
      context.provide('imageProvider', createPainterImageProvider({ token, size, style, delayMs: options.delayMs }));
      context.logger.info({ style, size }, `painter: ${style} pictures of ${size} x ${size} px`);
    },
  });
}

/** A site names the package in avatargen.config.mjs; the host calls this with the entry's options. */
export default painterPlugin;
