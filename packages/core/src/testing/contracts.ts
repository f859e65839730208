import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LANGUAGES } from '../domain/languages.js';
import { normalizePersona, type PersonaData } from '../domain/persona.js';
import { DEFAULT_BIO_PROMPTS } from '../domain/settings.js';
import { CancelledError, InvalidImageError, StorageError } from '../errors.js';
import { readImageInfo } from '../image-info.js';
import { deleteUnderPrefix } from '../storage/prefix.js';
import {
  STYLE_PRESETS,
  type FaceSource,
  type ImagePromptProvider,
  type ImageProcessor,
  type ImageProvider,
  type ObjectStorage,
  type PersonaProvider,
} from '../ports.js';
import { encodePng, makeBorderedPng, makeGridPng } from './png.js';

/** How a contract suite gets the implementation under test, and how it cleans up. */
export interface ContractSubject<T> {
  create: () => T | Promise<T>;
  destroy?: (subject: T) => void | Promise<void>;
}

function useSubject<T>(subject: ContractSubject<T>): () => T {
  let value: T | undefined;
  beforeAll(async () => {
    value = await subject.create();
  });
  afterAll(async () => {
    if (value !== undefined) await subject.destroy?.(value);
  });
  return () => {
    if (value === undefined) throw new Error('contract subject was not created');
    return value;
  };
}

function aborted(): AbortSignal {
  const controller = new AbortController();
  controller.abort();
  return controller.signal;
}

/** A complete, valid persona for suites that need one. */
export function samplePersona(overrides: Partial<PersonaData> = {}): PersonaData {
  return {
    firstName: 'Maria',
    lastName: 'Garcia',
    gender: 'f',
    ethnicity: 'Hispanic',
    age: 34,
    bios: {
      facebook: 'Nurse in Austin. Weekend hiker, coffee snob, proud aunt of three.',
      instagram: 'Scrubs by day, trails by weekend ⛰️',
      x: 'ER nurse | hiking | bad puns',
      tiktok: 'nurse life + trail snacks',
    },
    jobTitle: 'Registered Nurse',
    workplace: "St. David's Medical Center",
    eduEstablishment: 'University of Texas at Austin',
    eduStudy: 'Nursing',
    currentCity: 'Austin',
    currentState: 'Texas',
    prevCity: 'El Paso',
    prevState: 'Texas',
    about: 'Grew up in El Paso, moved to Austin for school and never left.',
    ...overrides,
  };
}

export function describePersonaProviderContract(name: string, subject: ContractSubject<PersonaProvider>): void {
  describe(`PersonaProvider contract: ${name}`, () => {
    const provider = useSubject(subject);
    const request = {
      count: 3,
      description: 'Nurses and teachers in their 30s living in Texas',
      language: { code: 'en', name: LANGUAGES.en as string },
      bioInstructions: DEFAULT_BIO_PROMPTS,
      seed: 'contract-seed',
    };

    it('returns at most the requested number of valid, normalised personas', async () => {
      const batch = await provider().generate(request);
      expect(batch.personas.length).toBeGreaterThan(0);
      expect(batch.personas.length).toBeLessThanOrEqual(request.count);
      for (const persona of batch.personas) {
        const normalized = normalizePersona(persona);
        expect(normalized.ok, normalized.ok ? '' : normalized.reason).toBe(true);
        if (normalized.ok) expect(normalized.persona).toEqual(persona);
      }
      expect(Array.isArray(batch.rejected)).toBe(true);
      for (const rejected of batch.rejected) {
        expect(typeof rejected.index).toBe('number');
        expect(rejected.reason.length).toBeGreaterThan(0);
      }
    });

    it('rejects with CancelledError when the signal is already aborted', async () => {
      await expect(provider().generate({ ...request, signal: aborted() })).rejects.toBeInstanceOf(CancelledError);
    });
  });
}

export function describeImagePromptProviderContract(name: string, subject: ContractSubject<ImagePromptProvider>): void {
  describe(`ImagePromptProvider contract: ${name}`, () => {
    const provider = useSubject(subject);
    const persona = samplePersona();

    it('returns a non-empty prompt', async () => {
      const prompt = await provider().nextPrompt({ persona, previousPrompts: [], seed: 'contract' });
      expect(typeof prompt).toBe('string');
      expect(prompt.trim().length).toBeGreaterThan(0);
      expect(prompt.length).toBeLessThanOrEqual(4000);
    });

    it('returns a prompt different from the previous ones', async () => {
      const first = await provider().nextPrompt({ persona, previousPrompts: [], seed: 'contract' });
      const second = await provider().nextPrompt({ persona, previousPrompts: [first], seed: 'contract' });
      expect(second).not.toEqual(first);
    });

    it('rejects with CancelledError when the signal is already aborted', async () => {
      await expect(provider().nextPrompt({ persona, previousPrompts: [], seed: 'contract', signal: aborted() })).rejects.toBeInstanceOf(
        CancelledError,
      );
    });
  });
}

export function describeImageProviderContract(name: string, subject: ContractSubject<ImageProvider>): void {
  describe(`ImageProvider contract: ${name}`, () => {
    const provider = useSubject(subject);
    const persona = samplePersona();

    it('makes a base image whose bytes match its content type', async () => {
      const image = await provider().baseImage({ persona, seed: 'contract' });
      const info = readImageInfo(image.data);
      expect(info.contentType).toBe(image.contentType);
      expect(info.width).toBeGreaterThan(0);
    });

    it('makes four pictures from a base image: one grid of rows x cols === 4, or four separate images', async () => {
      const base = await provider().baseImage({ persona, seed: 'contract' });
      const pictures = await provider().pictures({ persona, base, prompt: 'at a cafe, morning light', count: 4, seed: 'contract' });
      const images = pictures.kind === 'grid' ? [pictures.image] : pictures.images;
      if (pictures.kind === 'grid') {
        expect(Number.isInteger(pictures.rows) && Number.isInteger(pictures.cols)).toBe(true);
        expect(pictures.rows * pictures.cols).toBe(4);
      } else {
        expect(pictures.kind).toBe('images');
        expect(pictures.images).toHaveLength(4);
        // four different shots, not one picture four times
        expect(new Set(images.map((image) => Buffer.from(image.data).toString('base64'))).size).toBe(4);
      }
      for (const image of images) {
        const info = readImageInfo(image.data);
        expect(info.contentType).toBe(image.contentType);
        expect(info.width).toBeGreaterThan(0);
      }
    });

    it('rejects with CancelledError when the signal is already aborted', async () => {
      await expect(provider().baseImage({ persona, seed: 'contract', signal: aborted() })).rejects.toBeInstanceOf(CancelledError);
      const base = { data: makeBorderedPng(), contentType: 'image/png' };
      await expect(
        provider().pictures({ persona, base, prompt: 'x', count: 4, seed: 'contract', signal: aborted() }),
      ).rejects.toBeInstanceOf(CancelledError);
    });
  });
}

export function describeImageProcessorContract(name: string, subject: ContractSubject<ImageProcessor>): void {
  describe(`ImageProcessor contract: ${name}`, () => {
    const processor = useSubject(subject);
    // 2 * 12 margin + 2 * 64 cells + 8 gutter = 160 px square
    const grid = makeGridPng({ cell: 64, gutter: 8, margin: 12 });

    it('splits a grid into cells in row-major order without losing pixels', async () => {
      const cells = await processor().splitGrid(grid, 2, 2);
      expect(cells).toHaveLength(4);
      const sizes = cells.map((c) => readImageInfo(c));
      expect(sizes.map((s) => s.width)).toEqual([80, 80, 80, 80]);
      const odd = encodePng(101, 99, (x, y) => [x % 256, y % 256, 0]);
      const oddCells = (await processor().splitGrid(odd, 2, 2)).map((c) => readImageInfo(c));
      expect((oddCells[0]?.width ?? 0) + (oddCells[1]?.width ?? 0)).toBe(101);
      expect((oddCells[0]?.height ?? 0) + (oddCells[2]?.height ?? 0)).toBe(99);
    });

    it('trims white space and crops white borders', async () => {
      const bordered = makeBorderedPng({ width: 96, height: 80, border: 6 });
      const trimmed = readImageInfo(await processor().trimWhitespace(bordered));
      expect([trimmed.width, trimmed.height]).toEqual([84, 68]);
      const cropped = readImageInfo(await processor().cropWhiteBorders(bordered));
      expect([cropped.width, cropped.height]).toEqual([84, 68]);
    });

    it('randomizes the style deterministically per seed, as JPEG, and returns its parameters', async () => {
      const image = makeBorderedPng();
      const a = await processor().randomizeStyle(image, { seed: 'seed-1' });
      const b = await processor().randomizeStyle(image, { seed: 'seed-1' });
      expect(Buffer.from(a.data).equals(Buffer.from(b.data))).toBe(true);
      expect(a.contentType).toBe('image/jpeg');
      expect(readImageInfo(a.data).format).toBe('jpeg');
      expect(a.params).toEqual(b.params);
      expect(STYLE_PRESETS).toContain(a.params.preset);
      expect(a.params.jpegQuality).toBeGreaterThanOrEqual(78);
      expect(a.params.jpegQuality).toBeLessThanOrEqual(95);
    });

    it('makes WebP thumbnails of the asked width', async () => {
      const thumb = readImageInfo(await processor().thumbnail(makeBorderedPng(), 32));
      expect(thumb.format).toBe('webp');
      expect(thumb.width).toBe(32);
    });

    it('processes a whole grid into four styled cells', async () => {
      const out = await processor().processGrid(grid, { cropWhiteBorders: true, styleSeed: 'grid-seed' });
      expect(out).toHaveLength(4);
      for (const image of out) {
        const info = readImageInfo(image.data);
        expect(info.contentType).toBe(image.contentType);
        expect([info.width, info.height]).toEqual([image.width, image.height]);
        expect([image.width, image.height]).toEqual([64, 64]);
        expect(image.style).not.toBeNull();
      }
      const plain = await processor().processGrid(grid, { cropWhiteBorders: false, styleSeed: null });
      expect(plain.every((image) => image.style === null)).toBe(true);
    });

    it('processes other grid shapes into rows * cols cells in reading order', async () => {
      const out = await processor().processGrid(grid, { rows: 1, cols: 2, cropWhiteBorders: false, styleSeed: 'wide' });
      expect(out).toHaveLength(2);
      expect(out.map((image) => image.style?.seed)).toEqual(['wide:0', 'wide:1']);
      // each half is trimmed to its two 64 px cells and the 8 px gutter between them
      for (const image of out) expect([image.width, image.height]).toEqual([64, 136]);
    });

    it('processes one separate picture: trimmed, borders cropped, styled with the seed as given', async () => {
      const bordered = makeBorderedPng({ width: 96, height: 80, border: 6 });
      const styled = await processor().processPicture(bordered, { cropWhiteBorders: true, styleSeed: 'picture-seed' });
      const info = readImageInfo(styled.data);
      expect(info.contentType).toBe(styled.contentType);
      expect([info.width, info.height]).toEqual([styled.width, styled.height]);
      expect([styled.width, styled.height]).toEqual([84, 68]);
      expect(styled.style?.seed).toBe('picture-seed');
      const again = await processor().processPicture(bordered, { cropWhiteBorders: true, styleSeed: 'picture-seed' });
      expect(Buffer.from(again.data).equals(Buffer.from(styled.data))).toBe(true);
      const plain = await processor().processPicture(bordered, { cropWhiteBorders: false, styleSeed: null });
      expect(plain.style).toBeNull();
      expect([plain.width, plain.height]).toEqual([84, 68]); // trimmed all the same
    });

    it('refuses bytes that are not an image with InvalidImageError, and keeps working', async () => {
      await expect(processor().trimWhitespace(Buffer.from('definitely not an image'))).rejects.toBeInstanceOf(InvalidImageError);
      await expect(processor().splitGrid(new Uint8Array(0))).rejects.toBeInstanceOf(InvalidImageError);
      await expect(
        processor().processPicture(Buffer.from('not a picture'), { cropWhiteBorders: true, styleSeed: null }),
      ).rejects.toBeInstanceOf(InvalidImageError);
      expect(await processor().splitGrid(grid, 2, 2)).toHaveLength(4);
    });
  });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

export function describeObjectStorageContract(name: string, subject: ContractSubject<ObjectStorage>): void {
  describe(`ObjectStorage contract: ${name}`, () => {
    const storage = useSubject(subject);
    const prefix = `contract-${randomUUID()}`;

    it('round-trips bytes and streams', async () => {
      const bytes = Buffer.from([0, 1, 2, 250, 255]);
      await storage().put(`${prefix}/a.bin`, bytes, { contentType: 'application/octet-stream' });
      expect(await readAll(await storage().get(`${prefix}/a.bin`))).toEqual(bytes);
      const big = Buffer.alloc(300_000, 7);
      await storage().put(`${prefix}/b.bin`, Readable.from([big.subarray(0, 1000), big.subarray(1000)]), {
        contentType: 'application/octet-stream',
      });
      expect((await readAll(await storage().get(`${prefix}/b.bin`))).equals(big)).toBe(true);
    });

    it('reads whole objects with read(), when it has one, with the same errors as get', async (context) => {
      const read = storage().read?.bind(storage());
      if (!read) return context.skip();
      const big = Buffer.alloc(1_500_000, 3);
      await storage().put(`${prefix}/r/big.bin`, big, { contentType: 'application/octet-stream' });
      await storage().put(`${prefix}/r/empty.bin`, Buffer.alloc(0), { contentType: 'application/octet-stream' });
      expect(Buffer.from(await read(`${prefix}/r/big.bin`)).equals(big)).toBe(true);
      expect((await read(`${prefix}/r/empty.bin`)).byteLength).toBe(0);
      const error = await read(`${prefix}/r/missing.bin`).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageError);
      expect((error as StorageError).notFound).toBe(true);
    });

    it('lists every object under a prefix and only those', async () => {
      await storage().put(`${prefix}/list/one.txt`, Buffer.from('1'), { contentType: 'text/plain' });
      await storage().put(`${prefix}/list/sub/two.txt`, Buffer.from('22'), { contentType: 'text/plain' });
      await storage().put(`${prefix}/other/three.txt`, Buffer.from('333'), { contentType: 'text/plain' });
      const listed: { key: string; size: number }[] = [];
      for await (const object of storage().list(`${prefix}/list/`)) listed.push(object);
      expect(listed.sort((a, b) => a.key.localeCompare(b.key))).toEqual([
        { key: `${prefix}/list/one.txt`, size: 1 },
        { key: `${prefix}/list/sub/two.txt`, size: 2 },
      ]);
    });

    it('deletes one and many; a missing key is a not-found StorageError on get and no error on delete', async () => {
      await storage().put(`${prefix}/d/1`, Buffer.from('x'), { contentType: 'text/plain' });
      await storage().put(`${prefix}/d/2`, Buffer.from('y'), { contentType: 'text/plain' });
      await storage().put(`${prefix}/d/3`, Buffer.from('z'), { contentType: 'text/plain' });
      await storage().delete(`${prefix}/d/1`);
      await storage().deleteMany([`${prefix}/d/2`, `${prefix}/d/3`]);
      const error = await storage()
        .get(`${prefix}/d/1`)
        .then(readAll)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageError);
      expect((error as StorageError).notFound).toBe(true);
      await storage().delete(`${prefix}/d/never-existed`);
      const left: string[] = [];
      for await (const object of storage().list(`${prefix}/d/`)) left.push(object.key);
      expect(left).toEqual([]);
    });

    it('leaves nothing listed after a failed write, and keeps the object a failed overwrite was replacing', async () => {
      const failing = () => {
        let sent = 0;
        return new Readable({
          read() {
            // some bytes first, so the write has begun when the source breaks
            if (sent++ < 3) this.push(Buffer.alloc(64 * 1024, 1));
            else this.destroy(new Error('source broke'));
          },
        });
      };
      const error = await storage()
        .put(`${prefix}/failed/new.bin`, failing(), { contentType: 'application/octet-stream' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageError);
      await storage().put(`${prefix}/failed/old.bin`, Buffer.from('old'), { contentType: 'application/octet-stream' });
      const overwrite = await storage()
        .put(`${prefix}/failed/old.bin`, failing(), { contentType: 'application/octet-stream' })
        .catch((e: unknown) => e);
      expect(overwrite).toBeInstanceOf(StorageError);
      const listed: { key: string; size: number }[] = [];
      for await (const object of storage().list(`${prefix}/failed/`)) listed.push(object);
      expect(listed).toEqual([{ key: `${prefix}/failed/old.bin`, size: 3 }]);
      expect((await readAll(await storage().get(`${prefix}/failed/old.bin`))).toString()).toBe('old');
    });

    it('deletes everything under a prefix with deletePrefix, when it has one, and nothing else', async (context) => {
      const deletePrefix = storage().deletePrefix?.bind(storage());
      if (!deletePrefix) return context.skip();
      const keys = ['dp/t1/a.bin', 'dp/t1/p/b.bin', 'dp/t1/p/q/c.bin', 'dp/t10/d.bin', 'dp/t2/e.bin', 'dp/t1.bin'];
      for (const key of keys) await storage().put(`${prefix}/${key}`, Buffer.from(key), { contentType: 'text/plain' });
      const listKeys = async () => {
        const found: string[] = [];
        for await (const object of storage().list(`${prefix}/dp/`)) found.push(object.key.slice(prefix.length + 1));
        return found.sort();
      };
      expect(await deletePrefix(`${prefix}/dp/t1/`)).toBe(3);
      expect(await listKeys()).toEqual(['dp/t1.bin', 'dp/t10/d.bin', 'dp/t2/e.bin']);
      expect(await deletePrefix(`${prefix}/dp/t1/`)).toBe(0);
      // without the trailing "/", a prefix matches like list(): t1.bin and t10/ too
      expect(await deletePrefix(`${prefix}/dp/t1`)).toBe(2);
      expect(await listKeys()).toEqual(['dp/t2/e.bin']);
      for (const bad of ['', '/', `${prefix}/../dp/`, `${prefix}//dp/`, `${prefix}/dp\u0000/`, `${prefix}/./dp/`]) {
        const error = await deletePrefix(bad).catch((e: unknown) => e);
        expect(error, JSON.stringify(bad)).toBeInstanceOf(StorageError);
        expect((error as StorageError).keyRefused, JSON.stringify(bad)).toBe(true);
        expect((error as StorageError).retryable, JSON.stringify(bad)).toBe(false);
      }
      expect(await listKeys()).toEqual(['dp/t2/e.bin']);
    });

    it('deleteUnderPrefix deletes through deletePrefix, or by list + deleteMany without it', async () => {
      const subject = storage();
      // The same storage without deletePrefix: the fallback path.
      const plain: ObjectStorage = {
        put: (key, body, options) => subject.put(key, body, options),
        get: (key) => subject.get(key),
        delete: (key) => subject.delete(key),
        deleteMany: (keys) => subject.deleteMany(keys),
        list: (listPrefix) => subject.list(listPrefix),
        publicUrl: (key) => subject.publicUrl(key),
      };
      for (const key of ['du/a/1.txt', 'du/a/2/3.txt', 'du/b/4.txt', 'du/c/5.txt']) {
        await subject.put(`${prefix}/${key}`, Buffer.from('x'), { contentType: 'text/plain' });
      }
      expect(await deleteUnderPrefix(subject, `${prefix}/du/a/`)).toBe(2);
      expect(await deleteUnderPrefix(plain, `${prefix}/du/b/`)).toBe(1);
      await expect(deleteUnderPrefix(plain, '')).rejects.toMatchObject({ keyRefused: true, retryable: false });
      await expect(deleteUnderPrefix(subject, `${prefix}/../du/`)).rejects.toMatchObject({ keyRefused: true, retryable: false });
      const left: string[] = [];
      for await (const object of subject.list(`${prefix}/du/`)) left.push(object.key);
      expect(left).toEqual([`${prefix}/du/c/5.txt`]);
    });

    it('refuses keys no object can have (.., empty segments, control characters) with keyRefused, not a server error', async () => {
      for (const key of [`${prefix}/../escape.bin`, `${prefix}//double.bin`, `${prefix}/nul\u0000.bin`, `${prefix}/./dot.bin`]) {
        const error = await storage()
          .get(key)
          .then(readAll)
          .catch((e: unknown) => e);
        expect(error, key).toBeInstanceOf(StorageError);
        expect((error as StorageError).keyRefused, key).toBe(true);
        expect((error as StorageError).retryable, key).toBe(false);
        const put = await storage()
          .put(key, Buffer.from('x'), { contentType: 'text/plain' })
          .catch((e: unknown) => e);
        expect((put as StorageError).keyRefused, key).toBe(true);
      }
    });

    it('encodes every key segment in public URLs', () => {
      const url = storage().publicUrl('tasks/a b/Ärger ü.jpg');
      expect(url).toContain('tasks/a%20b/%C3%84rger%20%C3%BC.jpg');
    });
  });
}

export interface FaceSourceFixture {
  source: FaceSource;
  /** Keys of the faces the fixture holds, by gender. */
  faces: { f: string[]; m: string[] };
  /** A source over no faces at all. */
  empty: FaceSource;
}

export function describeFaceSourceContract(name: string, subject: ContractSubject<FaceSourceFixture>): void {
  describe(`FaceSource contract: ${name}`, () => {
    const fixture = useSubject(subject);

    it('returns a face of the asked gender', async () => {
      for (const gender of ['f', 'm'] as const) {
        const face = await fixture().source.randomFace({ gender });
        expect(face).not.toBeNull();
        expect(fixture().faces[gender]).toContain(face?.key);
        expect(readImageInfo(face?.data ?? new Uint8Array()).contentType).toBe(face?.contentType);
      }
    });

    it('returns a face of either gender when gender is not locked', async () => {
      const all = [...fixture().faces.f, ...fixture().faces.m];
      for (let i = 0; i < 5; i++) {
        const face = await fixture().source.randomFace({ gender: null });
        expect(all).toContain(face?.key);
      }
    });

    it('returns null when there are no faces', async () => {
      expect(await fixture().empty.randomFace({ gender: 'f' })).toBeNull();
      expect(await fixture().empty.randomFace({ gender: null })).toBeNull();
    });
  });
}
