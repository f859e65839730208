import PQueue from 'p-queue';
import { GenerationTask, Persona, type PersonaEntity, PersonaImage, type TaskEntity } from '../db/entities.js';
import { imageOutputOf, type Settings } from '../domain/settings.js';
import {
  CancelledError,
  describeError,
  InvalidImageError,
  InvalidResponseError,
  isDatabaseUnavailable,
  StorageError,
  throwIfAborted,
} from '../errors.js';
import { readImageInfo } from '../image-info.js';
import type { EncodedImage, ImageOutputOptions, Pictures, PortName, ReferenceFace } from '../ports.js';
import { insertXmp, type Provenance, type ProvenanceProvider, renderXmp, signProvenance } from '../provenance.js';
import { personaData } from '../services/views.js';
import { baseImageKey, pictureKey } from '../storage/keys.js';
import { readObject } from '../storage/read.js';
import { baseImageWithFaces } from './faces.js';
import type { ImagesJob } from './queue.js';
import type { StageSupport } from './support.js';

/**
 * The image stage: one job per persona. Its base selfie, its prompts, then one provider call per
 * prompt for four pictures, each processed, marked and stored under a fixed key, so a persona run
 * again overwrites its objects instead of leaving orphans and never redoes a finished grid.
 */
export class ImageStage {
  /** Image provider calls in flight in this process (IMAGE_CONCURRENCY). */
  private readonly calls: PQueue;

  constructor(
    private readonly support: StageSupport,
    private readonly advance: (taskId: string) => Promise<void>,
  ) {
    this.calls = new PQueue({ concurrency: support.config.IMAGE_CONCURRENCY });
  }

  /** Ends a persona whose job stopped its worker again and again, keeping what it stored. */
  async giveUp(taskId: string, personaId: number, message: string): Promise<void> {
    await this.finishPersonaImages(taskId, personaId, message);
  }

  async run(job: ImagesJob): Promise<void> {
    // Tracked before the task is read: a cancel that lands after that read still aborts this work.
    const controller = this.support.track(job.taskId);
    try {
      await this.work(job, controller);
    } finally {
      this.support.untrack(job.taskId, controller);
    }
  }

  private async work(job: ImagesJob, controller: AbortController): Promise<void> {
    const em = this.support.em;
    const task = await em.findOne(GenerationTask, { id: job.taskId });
    if (task?.status !== 'generating-images' || task.run !== job.run) return;
    const persona = await em.findOne(Persona, { id: job.personaId, taskId: job.taskId });
    if (persona?.imagesStatus !== 'pending') {
      await this.advance(job.taskId);
      return;
    }
    try {
      // A base picture and a grid per four pictures: what the next jobs' admission expects.
      this.support.imageJobMade((persona.baseImageKey ? 0 : 1) + task.imagesPerPersona / 4);
      const problem = await this.makeImages(task, persona, controller.signal);
      await this.finishPersonaImages(task.id, persona.id, problem);
    } catch (error) {
      if (error instanceof CancelledError || controller.signal.aborted) return;
      if (isDatabaseUnavailable(error)) throw error; // not the persona's fault: it is sent again
      await this.finishPersonaImages(task.id, persona.id, describeError(error));
    }
    await this.advance(job.taskId);
  }

  /**
   * The picture's perceptual hash for the quality report, when the processor makes one. Never fails
   * the picture: a hash that cannot be made leaves it unhashed (the report counts those).
   */
  private async hashOf(data: Uint8Array, signal: AbortSignal, what: Record<string, unknown>): Promise<string | null> {
    const processor = this.support.ports.imageProcessor;
    if (typeof processor.perceptualHash !== 'function') return null;
    try {
      const hash = await processor.perceptualHash(data, { signal });
      return typeof hash === 'string' && /^[0-9a-f]{16}$/.test(hash) ? hash : null;
    } catch (error) {
      throwIfAborted(signal);
      this.support.log.debug({ ...what, error: describeError(error) }, 'no perceptual hash for a picture');
      return null;
    }
  }

  /** The plugins (and models, when a provider describes itself) that make and process the pictures. */
  private providers(): ProvenanceProvider[] {
    const { ports, owners } = this.support.options;
    const used: Array<[PortName, object | undefined]> = [
      ['personaProvider', ports.personaProvider],
      ['imagePromptProvider', ports.imagePromptProvider],
      ['imageProvider', ports.imageProvider],
      ['imageProcessor', ports.imageProcessor],
      ['faceSource', ports.faceSource],
    ];
    return used.flatMap(([port, implementation]) => {
      if (!implementation) return [];
      const describe = (implementation as { describe?: () => { model?: string } }).describe;
      const model = typeof describe === 'function' ? describe.call(implementation).model : undefined;
      return [{ port, plugin: owners?.[port]?.plugin ?? 'unknown', ...(model ? { model } : {}) }];
    });
  }

  /**
   * The provider's base selfie with its mark: the XMP goes into the container as it is (PNG iTXt,
   * JPEG APP1, WebP XMP chunk), so the pixels are never encoded a second time.
   */
  private async marked(image: EncodedImage, provenance: Provenance, xmp: string): Promise<EncodedImage> {
    let data: Uint8Array;
    try {
      data = insertXmp(image.data, image.contentType, xmp);
    } catch (error) {
      throw new InvalidResponseError('image provider', `Cannot mark the base image (${image.contentType}): ${describeError(error)}`);
    }
    return signProvenance({ data, contentType: image.contentType }, provenance);
  }

  /**
   * One persona's images: base selfie (stored at once), prompts (each asked with the previous ones,
   * stored as they come), then one grid per prompt in parallel, each split, cleaned and stored.
   * Returns null when every grid was stored, else what went wrong. Finished parts are never redone.
   * Keys are fixed per task, persona and image index, so a run cut short and run again overwrites
   * its objects instead of leaving orphans.
   */
  private async makeImages(task: TaskEntity, row: PersonaEntity, signal: AbortSignal): Promise<string | null> {
    const { ports } = this.support;
    const settings: Settings = task.settings;
    const em = this.support.em;
    const personaId = row.id;
    const persona = personaData(row);
    const seed = `${task.id}:${personaId}`;
    const what = { taskId: task.id, personaId };

    const stored = imageOutputOf(settings);
    const output: ImageOutputOptions = {
      quality: stored.image_quality,
      size: stored.image_size,
      format: stored.image_output_format,
      compression: stored.image_output_compression,
      background: stored.image_background,
    };
    // Snapshots from before gender lock existed have no key: the setting's default (on).
    const genderLock = settings.randomize_face_gender_lock !== false;
    // Provenance marks (docs/provenance.md); snapshots from before the setting have it on.
    const provenance: Provenance | null =
      settings.provenance_marks === false ? null : { datasetId: task.id, personaId, providers: this.providers() };
    const xmp = provenance ? renderXmp(provenance) : undefined;
    let base: EncodedImage | undefined;
    let referenceFace: ReferenceFace | undefined;
    if (row.baseImageKey) {
      const key = row.baseImageKey;
      try {
        const data = await this.support.storing(() => readObject(ports.objectStorage, key), signal, { ...what, key });
        base = { data, contentType: readImageInfo(data).contentType };
      } catch (error) {
        // A base selfie lost from storage is made again; anything else stops this persona.
        if (!(error instanceof StorageError && error.notFound)) throw error;
        this.support.log.warn({ ...what, key }, 'the base image is missing from storage; making a new one');
      }
    }
    if (!base) {
      const result = await this.support.retrying(
        () =>
          this.calls.add(
            () =>
              this.support.limited(
                'imageProvider',
                { images: 1 },
                signal,
                async (onUsage) => {
                  await this.support.count(task.id, 'images_requested');
                  throwIfAborted(signal); // cancelled while counting: no call starts
                  const made = settings.randomize_face_base
                    ? await baseImageWithFaces({
                        imageProvider: ports.imageProvider,
                        faceSource: ports.faceSource,
                        persona,
                        seed,
                        genderLock,
                        output,
                        signal,
                        onUsage,
                        onFlag: (flag) => this.flagFace(task.id, personaId, flag.faceKey, flag.reason),
                        onFaceSourceProblem: (message) => this.support.log.warn(what, message),
                      })
                    : { image: await ports.imageProvider.baseImage({ persona, output, seed, signal, onUsage }), faceKey: null, face: null };
                  const checked = { ...made, image: checkedImage(made.image, 'base image') };
                  await this.support.count(task.id, 'images_made');
                  return checked;
                },
                task.id,
              ),
            { signal },
          ),
        signal,
        what,
      );
      const image = provenance ? await this.marked(result.image, provenance, xmp as string) : result.image;
      base = image;
      referenceFace = result.face ?? undefined;
      const key = baseImageKey(task.storagePrefix, personaId, image.contentType);
      await this.support.storing(
        () => ports.objectStorage.put(key, image.data, { contentType: image.contentType, cacheControl: CACHE_IMMUTABLE }),
        signal,
        { ...what, key },
      );
      const basePhash = await this.hashOf(image.data, signal, what);
      await em.execute('update personas set base_image_key = ?, base_face_key = ?, base_phash = ? where id = ?', [
        key,
        result.faceKey,
        basePhash,
        personaId,
      ]);
      await this.support.notifyTask(task.id);
    }
    const baseImage = base;
    if (!referenceFace && row.baseFaceKey && ports.faceSource?.face) {
      // Made in an earlier run: the face again, when the face source can find it by its key.
      const faceKey = row.baseFaceKey;
      const face = ports.faceSource.face;
      referenceFace =
        (await this.support
          .retrying(() => face.call(ports.faceSource, faceKey, { signal }), signal, { ...what, faceKey })
          .catch((error: unknown) => {
            throwIfAborted(signal);
            this.support.log.warn(
              { ...what, faceKey, error: describeError(error) },
              'the base face could not be read; pictures go without it',
            );
            return null;
          })) ?? undefined;
    }
    // Gender lock keeps the pictures on the face the base was made from: both go to every request.
    const pictureFace = genderLock ? referenceFace : undefined;

    const grids = task.imagesPerPersona / 4;
    const prompts = [...row.prompts];
    while (prompts.length < grids) {
      throwIfAborted(signal);
      const prompt = await this.support.retrying(
        async () => {
          const text = await this.support.limited(
            'imagePromptProvider',
            {},
            signal,
            (onUsage) => ports.imagePromptProvider.nextPrompt({ persona, previousPrompts: prompts, seed, signal, onUsage }),
            task.id,
          );
          if (typeof text !== 'string' || text.trim() === '') {
            throw new InvalidResponseError('prompt provider', 'The prompt provider returned an empty prompt');
          }
          return text.trim();
        },
        signal,
        what,
      );
      prompts.push(prompt);
      await em.execute('update personas set prompts = ?::jsonb where id = ?', [JSON.stringify(prompts), personaId]);
    }

    // A grid is done when all four of its cells have rows. A grid missing some cells (one lost and
    // removed by `doctor`, or one picture regenerated) gets a new shot whose missing cells only are
    // stored: the pictures it still has are kept.
    const cellsOf = new Map<number, Set<number>>();
    for (const r of await em.execute('select grid_no, idx from persona_images where persona_id = ?', [personaId])) {
      const cells = cellsOf.get(r.grid_no) ?? new Set<number>();
      cells.add(r.idx);
      cellsOf.set(r.grid_no, cells);
    }
    const done = new Set([...cellsOf].filter(([, cells]) => cells.size >= SHOTS).map(([gridNo]) => gridNo));
    const results = await Promise.allSettled(
      prompts.slice(0, grids).map(async (prompt, gridNo) => {
        if (done.has(gridNo)) return;
        const cells = await this.support.retrying(
          async () => {
            // A new seed for a grid made again around pictures it keeps: the same seed would give the same shot.
            const shotSeed = cellsOf.has(gridNo) ? `${seed}:${gridNo}:r${task.run}` : `${seed}:${gridNo}`;
            await this.support.count(task.id, 'images_requested', SHOTS);
            throwIfAborted(signal);
            const answer = await this.calls.add(
              () =>
                this.support.limited(
                  'imageProvider',
                  { images: 1 }, // one grid is one image made
                  signal,
                  (onUsage) =>
                    ports.imageProvider.pictures({
                      persona,
                      base: baseImage,
                      referenceFace: pictureFace,
                      output,
                      prompt,
                      count: SHOTS,
                      seed: shotSeed,
                      signal,
                      onUsage,
                    }),
                  task.id,
                ),
              { signal },
            );
            const pictures = checkedPictures(answer, SHOTS);
            const crop = settings.crop_white_borders;
            const styleSeed = settings.randomize_image_style ? shotSeed : null;
            try {
              const processed =
                pictures.kind === 'grid'
                  ? await ports.imageProcessor.processGrid(pictures.image.data, {
                      rows: pictures.rows,
                      cols: pictures.cols,
                      cropWhiteBorders: crop,
                      styleSeed,
                      xmp,
                      signal,
                    })
                  : await Promise.all(
                      // the same seed per picture as a grid's cell gets, so a look can be replayed
                      pictures.images.map((image, index) =>
                        ports.imageProcessor.processPicture(image.data, {
                          cropWhiteBorders: crop,
                          styleSeed: styleSeed === null ? null : `${styleSeed}:${index}`,
                          xmp,
                          signal,
                        }),
                      ),
                    );
              throwIfAborted(signal);
              if (!Array.isArray(processed) || processed.length !== SHOTS) {
                throw new InvalidResponseError(
                  'image processor',
                  `The ${pictures.kind === 'grid' ? 'grid' : 'pictures'} gave ${Array.isArray(processed) ? processed.length : 'no'} images, not ${SHOTS}`,
                );
              }
              return processed;
            } catch (error) {
              // The service's image could not be processed: ask for another one.
              if (error instanceof InvalidImageError) {
                throw new InvalidResponseError(
                  'image provider',
                  `Unusable ${pictures.kind === 'grid' ? 'grid image' : 'picture'}: ${error.message}`,
                );
              }
              throw error;
            }
          },
          signal,
          { ...what, gridNo },
        );
        throwIfAborted(signal);
        const rows = [];
        for (const [cell, image] of cells.entries()) {
          const idx = gridNo * SHOTS + cell;
          if (cellsOf.get(gridNo)?.has(idx)) continue;
          // A picture made again gets a key of its own: browsers keep the old one under the old key.
          const key = pictureKey(task.storagePrefix, personaId, idx, image.contentType, cellsOf.has(gridNo) ? task.run : undefined);
          const signed = provenance ? await signProvenance(image, provenance) : image;
          await this.support.storing(
            () => ports.objectStorage.put(key, signed.data, { contentType: signed.contentType, cacheControl: CACHE_IMMUTABLE }),
            signal,
            { ...what, key },
          );
          rows.push({
            personaId,
            idx,
            taskId: task.id,
            gridNo,
            key,
            contentType: image.contentType,
            width: image.width,
            height: image.height,
            style: image.style,
            phash: await this.hashOf(image.data, signal, { ...what, idx }),
            createdAt: new Date(),
          });
        }
        // A run cut short after storing objects but before these rows stores them again: same keys, merged rows.
        await this.support.em.upsertMany(PersonaImage, rows, { onConflictFields: ['personaId', 'idx'], onConflictAction: 'merge' });
        await this.support.count(task.id, 'images_made', rows.length);
        await this.support.notifyTask(task.id);
      }),
    );
    throwIfAborted(signal);
    const outage = results.find((r) => r.status === 'rejected' && isDatabaseUnavailable(r.reason));
    if (outage) throw (outage as PromiseRejectedResult).reason;
    const failures = results.flatMap((r, gridNo) => (r.status === 'rejected' ? [`grid ${gridNo + 1}: ${describeError(r.reason)}`] : []));
    return failures.length ? failures.join('; ') : null;
  }

  private async flagFace(taskId: string, personaId: number, faceKey: string, reason: string): Promise<void> {
    await this.support.em.execute(
      `insert into image_flags (kind, face_key, task_id, persona_id, reason) values ('moderation-block', ?, ?, ?, ?)`,
      [faceKey, taskId, personaId, reason],
    );
    await this.support.count(taskId, 'moderation_blocks');
  }

  async finishPersonaImages(taskId: string, personaId: number, problem: string | null): Promise<void> {
    const rows = await this.support.em.execute(
      `update personas set images_status = ?, images_error = ? where id = ? and images_status = 'pending' returning first_name, last_name`,
      [problem ? 'failed' : 'done', problem && this.support.redact(problem), personaId],
    );
    if (problem && rows[0]) {
      await this.support.appendLog(taskId, {
        stage: 'images',
        message: this.support.redact(`${rows[0].first_name} ${rows[0].last_name} (#${personaId}): ${problem}`),
      });
    }
    await this.support.notifyTask(taskId);
  }
}

const CACHE_IMMUTABLE = 'public, max-age=31536000, immutable';

/** Pictures per prompt: one shot's images are stored at idx gridNo * SHOTS + cell. */
const SHOTS = 4;

/**
 * A provider's pictures, checked at our edge: a grid of rows * cols === count shots, or exactly
 * `count` separate images, each a real image. Anything else is an InvalidResponseError (retried).
 */
function checkedPictures(answer: Pictures, count: number): Pictures {
  const problem = (message: string) => new InvalidResponseError('image provider', `Unusable pictures: ${message}`);
  if (answer === null || typeof answer !== 'object')
    throw problem(`expected a grid or images, got ${answer === null ? 'null' : typeof answer}`);
  if (answer.kind === 'grid') {
    const { rows, cols } = answer;
    if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) {
      throw problem(`a grid needs whole rows and cols of at least 1, got ${String(rows)}x${String(cols)}`);
    }
    if (rows * cols !== count) throw problem(`a ${rows}x${cols} grid holds ${rows * cols} shots, not the ${count} asked for`);
    return { kind: 'grid', image: checkedImage(answer.image, 'grid'), rows, cols };
  }
  if (answer.kind === 'images') {
    if (!Array.isArray(answer.images)) throw problem('images is not a list');
    if (answer.images.length !== count) throw problem(`${answer.images.length} images, not the ${count} asked for`);
    return { kind: 'images', images: answer.images.map((image, index) => checkedImage(image, `picture ${index + 1}`)) };
  }
  throw problem(`unknown kind ${JSON.stringify((answer as { kind?: unknown }).kind)}`);
}

function checkedImage(image: EncodedImage, what: string): EncodedImage {
  try {
    const info = readImageInfo(image.data);
    return { data: image.data, contentType: info.contentType };
  } catch (error) {
    throw new InvalidResponseError('image provider', `The ${what} is not an image: ${describeError(error)}`);
  }
}
