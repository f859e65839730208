import type { Readable } from 'node:stream';
import type { AvatarGen } from '@avatargen/core';

async function readAll(stream: Readable, limit = 64 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    size += buffer.length;
    if (size > limit) throw new Error('object too large for a thumbnail');
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

/** The storage key of an image's thumbnail: inside the task's folder, so deleting the task removes it. */
export function thumbnailKey(key: string, width: number): string | null {
  const match = /^tasks\/([^/]+)\/(.+)$/.exec(key);
  if (!match || match[2]?.startsWith('thumbs/')) return null;
  return `tasks/${match[1]}/thumbs/w${width}/${match[2]}.webp`;
}

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
        const original = await readAll(await storage.get(key));
        const thumb = Buffer.from(await this.gen.port('imageProcessor').thumbnail(original, this.width));
        await storage.put(thumbKey, thumb, { contentType: 'image/webp', cacheControl: 'public, max-age=31536000, immutable' }).catch((error) => {
          this.gen.logger.warn({ err: error, key: thumbKey }, 'thumbnail not cached');
        });
        return thumb;
      })().finally(() => this.inFlight.delete(thumbKey));
      this.inFlight.set(thumbKey, pending);
    }
    return pending;
  }
}
