import type { Gender, PersonaData } from '../domain/persona.js';
import { describeError, InvalidImageError, ModerationError, throwIfAborted } from '../errors.js';
import type { EncodedImage, FaceSource, ImageOutputOptions, ImageProvider, ReferenceFace, UsageListener } from '../ports.js';

export interface FaceFlag {
  faceKey: string;
  reason: string;
}

export interface BaseImageWithFacesOptions {
  imageProvider: ImageProvider;
  faceSource?: FaceSource;
  persona: PersonaData;
  seed: string;
  /** Pick a face of the persona's gender only. */
  genderLock: boolean;
  output?: ImageOutputOptions;
  /** Faces tried before giving up on reference faces. Default 3. */
  maxFaceAttempts?: number;
  /** Called for every face the image service blocked, so it can be stored as an image flag. */
  onFlag?: (flag: FaceFlag) => void | Promise<void>;
  /** Passed to every baseImage call: the provider's usage report. */
  onUsage?: UsageListener;
  /** Called when the face source could not be used at all (empty, failing). */
  onFaceSourceProblem?: (message: string) => void;
  signal?: AbortSignal;
}

export interface BaseImageResult {
  image: EncodedImage;
  /** The face the image was made from, or null for text-to-image. */
  faceKey: string | null;
  /** That face itself (null with faceKey). */
  face: ReferenceFace | null;
}

/**
 * The base selfie from a random reference face: when the image service blocks a face
 * (ModerationError), flag it and try another, up to `maxFaceAttempts`; when there is no usable
 * face source, or every face was blocked, fall back to text-to-image.
 */
export async function baseImageWithFaces(options: BaseImageWithFacesOptions): Promise<BaseImageResult> {
  const { imageProvider, faceSource, persona, seed, signal, output } = options;
  const attempts = options.maxFaceAttempts ?? 3;
  if (faceSource) {
    const gender: Gender | null = options.genderLock ? persona.gender : null;
    const tried = new Set<string>();
    for (let attempt = 0; attempt < attempts; attempt++) {
      throwIfAborted(signal);
      let face: Awaited<ReturnType<FaceSource['randomFace']>>;
      try {
        face = await faceSource.randomFace({ gender, signal });
      } catch (error) {
        throwIfAborted(signal);
        options.onFaceSourceProblem?.(`Reference faces unavailable (${describeError(error)}); using text-to-image`);
        break;
      }
      if (!face) {
        options.onFaceSourceProblem?.('No reference faces available; using text-to-image');
        break;
      }
      // A face already blocked is not sent again; the draw still counts as an attempt.
      if (tried.has(face.key)) continue;
      tried.add(face.key);
      try {
        const image = await imageProvider.baseImage({ persona, referenceFace: face, output, seed, signal, onUsage: options.onUsage });
        return { image, faceKey: face.key, face };
      } catch (error) {
        if (error instanceof InvalidImageError) {
          // A broken face file: not the persona's fault; try another face.
          options.onFaceSourceProblem?.(`Reference face ${face.key} is not a usable image: ${error.message}`);
          continue;
        }
        if (!(error instanceof ModerationError)) throw error;
        await options.onFlag?.({ faceKey: face.key, reason: error.message });
      }
    }
  }
  throwIfAborted(signal);
  const image = await imageProvider.baseImage({ persona, output, seed, signal, onUsage: options.onUsage });
  return { image, faceKey: null, face: null };
}
