import type { Readable } from 'node:stream';
import type { Language } from './domain/languages.js';
import type { Gender, PersonaData, Platform } from './domain/persona.js';
import type { ImageBackground, ImageOutputFormat, ImageQuality, ImageSize } from './domain/settings.js';
import type { PersonaQuota } from './domain/targets.js';

/**
 * The ports that plugins implement. Every method takes an optional AbortSignal: when it fires,
 * the call stops and rejects with CancelledError. Failures are AvatarGenError subclasses
 * (see errors.ts) whose `retryable` flag tells the pipeline whether to try again.
 */

/** Encoded image bytes (PNG, JPEG, WebP...). A Buffer is a Uint8Array too. */
export type Bytes = Uint8Array;

export interface EncodedImage {
  data: Bytes;
  /** MIME type of `data`, e.g. image/png. */
  contentType: string;
}

/**
 * What one call to a model cost in tokens. Providers report it through `onUsage` on the request;
 * core sums it per task, per provider and model (the shape a later price table can multiply).
 */
export interface ProviderUsage {
  /** The provider, e.g. "openai". */
  provider: string;
  /** The model asked, e.g. "gpt-4.1-mini". */
  model: string;
  /** Prompt (input) tokens. */
  inputTokens: number;
  /** Completion (output) tokens. */
  outputTokens: number;
  /** Images the call made (image providers); what a per-image price multiplies. Default 0. */
  images?: number;
}

/** Called once per call to a model that answered, failed answers included (their tokens were spent too). */
export type UsageListener = (usage: ProviderUsage) => void;

export interface PersonaRequest {
  count: number;
  description: string;
  language: Language;
  bioInstructions: Record<Platform, string>;
  /** Stable per task and batch: a deterministic provider gives the same answer for the same seed. */
  seed: string;
  /**
   * Full names already used in the task (at most the last 500), for a provider that can steer
   * away from them. Core rejects a persona that repeats one, or a first name, age and city, anyway.
   */
  avoidNames?: readonly string[];
  /**
   * The task's demographic targets as one quota per persona asked for (same length as `count`),
   * when the task has targets. A provider that can meet them should (provider-local does, exactly);
   * core checks every persona against the quotas anyway, counts misses and asks again.
   */
  quotas?: readonly PersonaQuota[];
  signal?: AbortSignal;
  /** Optional: where the provider reports token usage (see ProviderUsage). */
  onUsage?: UsageListener;
}

export interface RejectedPersona {
  /** Position of the object in the provider's answer. */
  index: number;
  reason: string;
}

/** A provider's answer: the personas it could read, and those it had to skip with the reason. */
export interface PersonaBatch {
  personas: PersonaData[];
  rejected: RejectedPersona[];
}

/** What a provider may say about itself, for the provenance marks (docs/provenance.md). */
export interface ProviderDescription {
  /** The model that makes its output, e.g. gpt-image-1. */
  model?: string;
}

export interface PersonaProvider {
  generate(request: PersonaRequest): Promise<PersonaBatch>;
  /** Optional: the model, named in every picture's provenance. */
  describe?(): ProviderDescription;
}

export interface PromptRequest {
  persona: PersonaData;
  /** Prompts already used for this persona, oldest first; the next one should differ from them. */
  previousPrompts: readonly string[];
  seed: string;
  signal?: AbortSignal;
  /** Optional: where the provider reports token usage (see ProviderUsage). */
  onUsage?: UsageListener;
}

export interface ImagePromptProvider {
  nextPrompt(request: PromptRequest): Promise<string>;
  /** Optional: the model, named in every picture's provenance. */
  describe?(): ProviderDescription;
}

export interface ReferenceFace extends EncodedImage {
  /** Storage key of the face, recorded in image flags when the image service blocks it. */
  key: string;
}

/**
 * The task's output options (its settings snapshot), named after the Images API's parameters. A
 * provider that cannot honour one ignores it; the pipeline stores what comes back by its content
 * type either way.
 */
export interface ImageOutputOptions {
  quality?: ImageQuality;
  size?: ImageSize;
  format?: ImageOutputFormat;
  /** 0-100; jpeg and webp only. */
  compression?: number;
  background?: ImageBackground;
}

export interface BaseImageRequest {
  persona: PersonaData;
  /** When present: image-to-image from this face (facial anatomy only). */
  referenceFace?: ReferenceFace;
  output?: ImageOutputOptions;
  seed: string;
  signal?: AbortSignal;
  /** Optional: where the provider reports the model it used, its tokens and the images made (see ProviderUsage). */
  onUsage?: UsageListener;
}

export interface PicturesRequest {
  persona: PersonaData;
  /** The persona's base selfie: every picture shows the same person. */
  base: EncodedImage;
  /**
   * With gender lock on: the reference face the base selfie was made from, sent along with it so
   * the face stays anchored in every picture. A provider that takes one image may ignore it.
   */
  referenceFace?: ReferenceFace;
  output?: ImageOutputOptions;
  prompt: string;
  /** Pictures wanted (4 today). */
  count: number;
  seed: string;
  signal?: AbortSignal;
  /** Optional: where the provider reports the model it used, its tokens and the images made (see ProviderUsage). */
  onUsage?: UsageListener;
}

/**
 * A provider's pictures for one prompt: one image holding a grid of `rows` x `cols` shots (cut
 * apart by the pipeline), or separate images. Either way every picture is then trimmed, cropped
 * and styled.
 */
export type Pictures = { kind: 'grid'; image: EncodedImage; rows: number; cols: number } | { kind: 'images'; images: EncodedImage[] };

export interface ImageProvider {
  /** One selfie of the persona. Throws ModerationError when the service blocks the request. */
  baseImage(request: BaseImageRequest): Promise<EncodedImage>;
  /**
   * `count` different pictures of the same person as `base`, for one prompt: one grid of
   * rows * cols === count shots, or `count` separate images.
   */
  pictures(request: PicturesRequest): Promise<Pictures>;
  /** Optional: the model, named in every picture's provenance. */
  describe?(): ProviderDescription;
}

export interface CropWhiteBordersOptions {
  /** Every RGB channel at or above this counts as white (0-255). Default 220. */
  threshold?: number;
  /** How many rows/columns to scan from each edge. Default 50. */
  scanDepth?: number;
  /** Crop a white run only when it is at least this thick. Default 1. */
  minBorder?: number;
  /** A row/column is white when at least this share of its pixels is white. Default 0.95. */
  whiteRatio?: number;
}

export interface TrimOptions {
  /** 0 = exact white only; higher values treat near-white as white. Default 0. */
  tolerance?: number;
}

export const STYLE_PRESETS = ['natural', 'warm', 'cool', 'matte', 'punchy', 'desaturated'] as const;
export type StylePreset = (typeof STYLE_PRESETS)[number];

/** The parameters randomizeStyle chose; storing them lets the same look be replayed. */
export interface StyleParams {
  seed: string;
  preset: StylePreset;
  contrast: number;
  blurSigma: number | null;
  sharpenAmount: number | null;
  grainSigma: number | null;
  vignetteStrength: number | null;
  jpegQuality: number;
}

export interface StyledImage extends EncodedImage {
  params: StyleParams;
}

export interface ProcessGridOptions {
  /** Rows of shots in the grid (1-8). Default 2. */
  rows?: number;
  /** Columns of shots in the grid (1-8). Default 2. */
  cols?: number;
  cropWhiteBorders: boolean | CropWhiteBordersOptions;
  /** Seed for randomizeStyle per cell (cell index is appended); null leaves the style alone. */
  styleSeed: string | null;
  /** An XMP packet (renderXmp) written into every cell at its one encode; absent: none. */
  xmp?: string;
  signal?: AbortSignal;
}

export interface ProcessPictureOptions {
  cropWhiteBorders: boolean | CropWhiteBordersOptions;
  /** Seed for randomizeStyle, used as given; null leaves the style alone. */
  styleSeed: string | null;
  /** An XMP packet (renderXmp) written into the picture at its one encode; absent: none. */
  xmp?: string;
  signal?: AbortSignal;
}

export interface ThumbnailOptions {
  /** An XMP packet (renderXmp) written into the thumbnail at its encode. */
  xmp?: string;
}

export interface ProcessedImage extends EncodedImage {
  width: number;
  height: number;
  style: StyleParams | null;
}

export interface ImageProcessor {
  /** Cells in row-major order; uneven sizes lose and duplicate no pixel. Cells are PNG. */
  splitGrid(image: Bytes, rows?: number, cols?: number): Promise<Bytes[]>;
  /** Crop to the bounding box of non-white content. */
  trimWhitespace(image: Bytes, options?: TrimOptions): Promise<Bytes>;
  cropWhiteBorders(image: Bytes, options?: CropWhiteBordersOptions): Promise<Bytes>;
  /** A random but seed-deterministic look, encoded as JPEG. */
  randomizeStyle(image: Bytes, options: { seed: string; signal?: AbortSignal }): Promise<StyledImage>;
  /** WebP of the given width for the web gallery; `xmp` is written into it when given. */
  thumbnail(image: Bytes, width: number, options?: ThumbnailOptions): Promise<Bytes>;
  /** The whole chain for one grid in one call: split -> trim -> crop borders -> style, per cell (row-major). */
  processGrid(image: Bytes, options: ProcessGridOptions): Promise<ProcessedImage[]>;
  /** The same chain for one separate picture, without the split: trim -> crop borders -> style. */
  processPicture(image: Bytes, options: ProcessPictureOptions): Promise<ProcessedImage>;
  /**
   * Optional: a 64-bit perceptual hash (dHash) of the picture as 16 hex characters, for the
   * quality report's near-duplicate pictures. A processor without it leaves pictures unhashed.
   */
  perceptualHash?(image: Bytes, options?: { signal?: AbortSignal }): Promise<string>;
  close?(): Promise<void>;
}

export interface PutOptions {
  contentType: string;
  cacheControl?: string;
}

export interface StoredObject {
  key: string;
  size: number;
}

export interface ObjectStorage {
  put(key: string, body: Bytes | Readable, options: PutOptions): Promise<void>;
  /** A stream of the object's bytes; StorageError with notFound when it does not exist. */
  get(key: string): Promise<Readable>;
  /**
   * Optional: the whole object in memory, for objects of a few MB (images). Cheaper than a
   * stream when a caller needs all the bytes anyway (exports, thumbnails); same errors as get.
   * Callers use readObject(), which falls back to get().
   */
  read?(key: string): Promise<Uint8Array>;
  /** Deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
  deleteMany(keys: readonly string[]): Promise<void>;
  /** Every object under the prefix, across all pages. */
  list(prefix: string): AsyncIterable<StoredObject>;
  /**
   * Optional: removes every object whose key starts with `prefix` and returns how many, in fewer
   * calls than list + deleteMany (S3: one DeleteObjects per 1000 keys; the filesystem also removes
   * the temporary files and empty folders there). The prefix is checked like a key and must not be
   * empty: deleting everything needs an explicit prefix. Callers use deleteUnderPrefix(), which
   * falls back to list + deleteMany.
   */
  deletePrefix?(prefix: string): Promise<number>;
  /** The URL a browser uses to fetch the object (derived when read, never stored). */
  publicUrl(key: string): string;
  close?(): Promise<void>;
}

export interface FaceSource {
  /** A random reference face; of the given gender, or any when gender is null. Null when there is none. */
  randomFace(options: { gender: Gender | null; signal?: AbortSignal }): Promise<ReferenceFace | null>;
  /**
   * Optional: the face with this key again (a persona's recorded base face, when its pictures are
   * made in a later run). Null when it is gone. Without it such pictures go without the face.
   */
  face?(key: string, options?: { signal?: AbortSignal }): Promise<ReferenceFace | null>;
}

/** Names under which plugins register the ports in the container. */
export const PORTS = {
  personaProvider: 'personaProvider',
  imagePromptProvider: 'imagePromptProvider',
  imageProvider: 'imageProvider',
  imageProcessor: 'imageProcessor',
  objectStorage: 'objectStorage',
  faceSource: 'faceSource',
} as const;
export type PortName = keyof typeof PORTS;

export interface PortTypes {
  personaProvider: PersonaProvider;
  imagePromptProvider: ImagePromptProvider;
  imageProvider: ImageProvider;
  imageProcessor: ImageProcessor;
  objectStorage: ObjectStorage;
  faceSource: FaceSource;
}

export const REQUIRED_PORTS: readonly PortName[] = [
  'personaProvider',
  'imagePromptProvider',
  'imageProvider',
  'imageProcessor',
  'objectStorage',
];
