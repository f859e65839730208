import type { Readable } from 'node:stream';
import {
  type AvatarGen,
  extractXmp,
  type PortName,
  personaIdOf,
  readObject,
  readXmp,
  renderXmp,
  taskFolderOf,
  thumbnailKey,
} from '@avatargen/core';

/** Larger originals are refused rather than read into memory for a thumbnail. */
const MAX_ORIGINAL_BYTES = 64 * 1024 * 1024;

/**
 * Gallery thumbnails (WebP, made by the ImageProcessor), cached in the object storage next to
 * the task's images: made once, then read like any other object. Concurrent requests for the
 * same thumbnail share one computation.
 */
export class ThumbnailCache {
  private readonly inFlight = new Map<string, Promise<Buffer>>();
  constructor(
    private readonly gen: AvatarGen,
    readonly width: number,
  ) {}

  /** The thumbnail of an image key the caller may see (checked by the route), as a stream or bytes. */
  async get(key: string): Promise<Readable | Buffer> {
    const thumbKey = thumbnailKey(key, this.width);
    if (!thumbKey) throw new Error('not a task image');
    const storage = this.gen.port('objectStorage');
    try {
      return await storage.get(thumbKey);
    } catch {
      // not made yet
    }
    let pending = this.inFlight.get(thumbKey);
    if (!pending) {
      pending = (async () => {
        const original = await readObject(storage, key, MAX_ORIGINAL_BYTES);
        const xmp = await this.provenanceOf(key, original);
        const thumb = Buffer.from(await this.gen.port('imageProcessor').thumbnail(original, this.width, xmp ? { xmp } : undefined));
        await storage
          .put(thumbKey, thumb, { contentType: 'image/webp', cacheControl: 'public, max-age=31536000, immutable' })
          .catch((error) => {
            this.gen.logger.warn({ err: error, key: thumbKey }, 'thumbnail not cached');
          });
        return thumb;
      })().finally(() => this.inFlight.delete(thumbKey));
      this.inFlight.set(thumbKey, pending);
    }
    return pending;
  }

  /**
   * The thumbnail's provenance XMP: the original's own packet when it is marked (same ids,
   * providers and models); else, with the provenance_marks setting on, one made from the key
   * (`tasks/<task id>/<persona id>/...`) and the plugins of this site (pictures made before
   * marks existed). None when marks are off and the original has none.
   */
  private async provenanceOf(key: string, original: Uint8Array): Promise<string | undefined> {
    const own = extractXmp(original);
    if (own && readXmp(own).marked) return own;
    if ((await this.gen.settings.get()).provenance_marks === false) return undefined;
    const folder = taskFolderOf(key);
    const personaId = personaIdOf(key);
    if (folder === null || personaId === null) return undefined;
    const ports: PortName[] = ['personaProvider', 'imagePromptProvider', 'imageProvider', 'imageProcessor'];
    const providers = ports.flatMap((port) => {
      const plugin = this.gen.plugins.ports[port]?.plugin;
      return plugin ? [{ port, plugin }] : [];
    });
    return renderXmp({ datasetId: folder, personaId: String(personaId), providers });
  }
}
