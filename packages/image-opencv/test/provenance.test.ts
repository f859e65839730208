import { DIGITAL_SOURCE_TYPE, GENERATOR, insertXmp, PROVENANCE_DESCRIPTION, renderXmp, ValidationError } from '@avatargen/core';
import { makeGridPng, readXmpWithExiftool } from '@avatargen/core/testing';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createImageProcessor, type OpencvImageProcessor } from '../src/index.js';
import { decode } from './helpers.js';

let processor: OpencvImageProcessor;
beforeAll(() => {
  processor = createImageProcessor({ threads: 2 });
});
afterAll(() => processor.close());

const xmp = renderXmp({
  datasetId: 'task-<1>&"x"',
  personaId: 17,
  providers: [{ port: 'imageProvider', plugin: 'provider-openai', model: 'gpt-image-1' }],
});
const grid = makeGridPng({ cell: 40, gutter: 6, margin: 9 });

/** Every field of the mark, read back by exiftool from the encoded bytes. */
async function expectMark(bytes: Uint8Array, extension: string) {
  const tags = await readXmpWithExiftool(bytes, extension);
  expect(tags).toMatchObject({
    DigitalSourceType: DIGITAL_SOURCE_TYPE,
    Description: PROVENANCE_DESCRIPTION,
    CreatorTool: GENERATOR,
    DatasetId: 'task-<1>&"x"',
    PersonaId: 17,
    Providers: [{ Port: 'imageProvider', Plugin: 'provider-openai', Model: 'gpt-image-1' }],
  });
}

describe('provenance XMP written at the encode', () => {
  it('marks PNG cells of an unstyled grid, and JPEG cells after the style step', async () => {
    const plain = await processor.processGrid(grid, { cropWhiteBorders: true, styleSeed: null, xmp });
    expect(plain.map((c) => c.contentType)).toEqual(Array(4).fill('image/png'));
    for (const cell of plain) await expectMark(cell.data, 'png');
    const styled = await processor.processGrid(grid, { cropWhiteBorders: true, styleSeed: 'seed', xmp });
    expect(styled.map((c) => c.contentType)).toEqual(Array(4).fill('image/jpeg'));
    for (const cell of styled) await expectMark(cell.data, 'jpg');
  });

  it('marks separate pictures, styled or not', async () => {
    const picture = await sharp(grid).extract({ left: 0, top: 0, width: 60, height: 60 }).png().toBuffer();
    await expectMark((await processor.processPicture(picture, { cropWhiteBorders: true, styleSeed: 'p', xmp })).data, 'jpg');
    await expectMark((await processor.processPicture(picture, { cropWhiteBorders: false, styleSeed: null, xmp })).data, 'png');
  });

  it('marks WebP thumbnails', async () => {
    await expectMark(await processor.thumbnail(grid, 32, { xmp }), 'webp');
  });

  it('writes no XMP without the option, and the same pixels with it', async () => {
    const without = await processor.processGrid(grid, { cropWhiteBorders: true, styleSeed: 'seed' });
    const withMark = await processor.processGrid(grid, { cropWhiteBorders: true, styleSeed: 'seed', xmp });
    for (const [i, cell] of without.entries()) {
      expect((await readXmpWithExiftool(cell.data, 'jpg')).DigitalSourceType).toBeUndefined();
      expect(await decode(cell.data)).toEqual(await decode(withMark[i]?.data ?? new Uint8Array()));
    }
    expect((await readXmpWithExiftool(await processor.thumbnail(grid, 32), 'webp')).DigitalSourceType).toBeUndefined();
  });

  it('refuses an xmp that is not a string of XML', async () => {
    await expect(
      processor.processPicture(grid, { cropWhiteBorders: false, styleSeed: null, xmp: 42 as unknown as string }),
    ).rejects.toThrow(ValidationError);
    await expect(processor.thumbnail(grid, 32, { xmp: 'plain text' })).rejects.toThrow(/XMP packet/);
  });
});

describe('insertXmp: the mark put into a provider picture without encoding it again', () => {
  const pixels = Buffer.alloc(23 * 17 * 3).map((_, i) => (i * 37) % 251);
  const picture = sharp(pixels, { raw: { width: 23, height: 17, channels: 3 } });
  const cases: Array<[string, string, () => Promise<Buffer>]> = [
    ['png', 'image/png', () => picture.clone().png().toBuffer()],
    ['jpg', 'image/jpeg', () => picture.clone().jpeg({ quality: 70 }).toBuffer()],
    ['webp', 'image/webp', () => picture.clone().webp({ quality: 70 }).toBuffer()],
    ['webp', 'image/webp', () => picture.clone().webp({ lossless: true }).toBuffer()],
    ['webp', 'image/webp', () => picture.clone().ensureAlpha(0.5).webp({ lossless: true }).toBuffer()],
    ['webp', 'image/webp', () => picture.clone().ensureAlpha(0.5).webp({ quality: 70 }).toBuffer()],
  ];
  it.each(cases)(
    '%s (%s): exiftool reads the mark, the pixels are the same, a second mark replaces the first',
    async (extension, contentType, make) => {
      const original = await make();
      const marked = insertXmp(original, contentType, xmp);
      await expectMark(marked, extension);
      const raw = async (bytes: Buffer) => (await sharp(bytes).raw().toBuffer({ resolveWithObject: true })).data;
      expect((await raw(marked)).equals(await raw(original))).toBe(true);
      expect((await sharp(marked).metadata()).hasAlpha).toBe((await sharp(original).metadata()).hasAlpha);
      const other = renderXmp({ datasetId: 'second', personaId: 2, providers: [] });
      const again = insertXmp(marked, contentType, other);
      expect((await readXmpWithExiftool(again, extension)).DatasetId).toBe('second');
      expect(again.toString('latin1').split('<x:xmpmeta').length - 1).toBe(1);
    },
  );

  it('refuses a format it cannot mark', () => {
    expect(() => insertXmp(Buffer.from('GIF89a....'), 'image/gif', xmp)).toThrow(/Cannot write XMP into image\/gif/);
  });
});
