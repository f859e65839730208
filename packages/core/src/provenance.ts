import { createRequire } from 'node:module';
import type { Bytes, EncodedImage } from './ports.js';

/**
 * Provenance marks (EU AI Act art. 50): every stored picture says in XMP that it is AI-made
 * (IPTC DigitalSourceType), which generator and providers made it, and for which dataset and
 * persona. See docs/provenance.md.
 */

/** IPTC NewsCodes: "Created using a model trained on sampled content" (what Google, Meta and Adobe read). */
export const DIGITAL_SOURCE_TYPE = 'http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia';
export const IPTC_EXT_NS = 'http://iptc.org/std/Iptc4xmpExt/2008-02-29/';
/** Our own namespace for the dataset, persona and providers (prefix `avatargen`). */
export const AVATARGEN_XMP_NS = 'urn:avatargen:xmp:provenance:1.0/';
export const PROVENANCE_DESCRIPTION = 'Synthetic person: an AI-generated image of a person who does not exist.';

// package.json sits one folder up from src/ and from dist/ alike
const { version } = createRequire(import.meta.url)('../package.json') as { version: string };
/** This project and its version, as written in the marks: `avatargen 0.1.0`. */
export const GENERATOR = `avatargen ${version}`;

/** Which plugin filled a port, and the model it used when the provider says (`describe()`). */
export interface ProvenanceProvider {
  port: string;
  plugin: string;
  model?: string;
}

export interface Provenance {
  /** The dataset: the generation task's id. */
  datasetId: string;
  personaId: string | number;
  /** Default GENERATOR. */
  generator?: string;
  providers: readonly ProvenanceProvider[];
}

const escapeXml = (text: string): string =>
  // control characters other than tab and newline are not allowed in XML 1.0 at all
  text
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '')
    .replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c] as string);

/** The XMP packet (RDF/XML) of a picture's provenance, ready for sharp's withXmp or insertXmp. */
export function renderXmp(p: Provenance): string {
  const providers = p.providers
    .map(
      (x) =>
        `<rdf:li rdf:parseType="Resource"><avatargen:Port>${escapeXml(x.port)}</avatargen:Port><avatargen:Plugin>${escapeXml(x.plugin)}</avatargen:Plugin>${
          x.model ? `<avatargen:Model>${escapeXml(x.model)}</avatargen:Model>` : ''
        }</rdf:li>`,
    )
    .join('');
  return [
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>',
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">',
    '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">',
    `<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="${IPTC_EXT_NS}" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:avatargen="${AVATARGEN_XMP_NS}">`,
    `<Iptc4xmpExt:DigitalSourceType>${DIGITAL_SOURCE_TYPE}</Iptc4xmpExt:DigitalSourceType>`,
    `<dc:description><rdf:Alt><rdf:li xml:lang="x-default">${escapeXml(PROVENANCE_DESCRIPTION)}</rdf:li></rdf:Alt></dc:description>`,
    `<xmp:CreatorTool>${escapeXml(p.generator ?? GENERATOR)}</xmp:CreatorTool>`,
    `<avatargen:DatasetId>${escapeXml(String(p.datasetId))}</avatargen:DatasetId>`,
    `<avatargen:PersonaId>${escapeXml(String(p.personaId))}</avatargen:PersonaId>`,
    `<avatargen:Providers><rdf:Seq>${providers}</rdf:Seq></avatargen:Providers>`,
    '</rdf:Description>',
    '</rdf:RDF>',
    '</x:xmpmeta>',
    '<?xpacket end="r"?>',
  ].join('');
}

/** What readXmp finds in a packet. */
export interface ProvenanceMark {
  /** DigitalSourceType is trainedAlgorithmicMedia. */
  marked: boolean;
  digitalSourceType: string | null;
  generator: string | null;
  datasetId: string | null;
  personaId: string | null;
}

const unescapeXml = (text: string) =>
  text.replace(/&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);/gi, (_, e: string) =>
    e[0] === '#'
      ? String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? Number.parseInt(e.slice(2), 16) : Number(e.slice(1)))
      : (({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[e.toLowerCase()] as string),
  );

/** A simple property by its prefixed name, written as an element or as an attribute. */
function property(xmp: string, name: string): string | null {
  const element = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xmp);
  if (element) return unescapeXml(element[1] as string).trim();
  const attribute = new RegExp(`\\s${name}="([^"]*)"`).exec(xmp);
  return attribute ? unescapeXml(attribute[1] as string).trim() : null;
}

/** Reads the fields that verify needs from an XMP packet (ours, or one in the same vocabulary). */
export function readXmp(xmp: string): ProvenanceMark {
  const digitalSourceType = property(xmp, 'Iptc4xmpExt:DigitalSourceType');
  return {
    marked: digitalSourceType === DIGITAL_SOURCE_TYPE,
    digitalSourceType,
    generator: property(xmp, 'xmp:CreatorTool'),
    datasetId: property(xmp, 'avatargen:DatasetId'),
    personaId: property(xmp, 'avatargen:PersonaId'),
  };
}

/**
 * THE place for a signed C2PA manifest, later: called on every base selfie and processed cell
 * right before it is stored, after its XMP is in. Today it returns the image unchanged (no
 * signing key, and c2pa-node cannot be installed here). A signer would embed a manifest with
 * the `c2pa.actions` "created" action and this same DigitalSourceType, signed with the site's
 * certificate; it must keep the XMP. See docs/provenance.md.
 */
export async function signProvenance(image: EncodedImage, _provenance: Provenance): Promise<EncodedImage> {
  return image;
}

// --- container-level XMP, for pictures that arrive encoded (the provider's base selfie) ---

const XMP_KEYWORD = 'XML:com.adobe.xmp';
const JPEG_XMP_HEADER = 'http://ns.adobe.com/xap/1.0/\0';

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

let crcTable: Uint32Array | undefined;
function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (const byte of bytes) c = (crcTable[(c ^ byte) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngWithXmp(src: Buffer, xmp: string): Buffer {
  const parts: Buffer[] = [src.subarray(0, 8)];
  let at = 8;
  let inserted = false;
  while (at + 12 <= src.length) {
    const length = src.readUInt32BE(at);
    const type = src.toString('latin1', at + 4, at + 8);
    const end = at + 12 + length;
    if (end > src.length) throw new Error('truncated PNG chunk');
    const chunk = src.subarray(at, end);
    // an XMP packet already there (the provider's) is replaced, not doubled
    const isXmp = type === 'iTXt' && src.toString('latin1', at + 8, at + 8 + XMP_KEYWORD.length + 1) === `${XMP_KEYWORD}\0`;
    if (!isXmp) parts.push(chunk);
    if (type === 'IHDR' && !inserted) {
      // iTXt: keyword, NUL, compression flag 0, method 0, empty language, NUL, empty translated keyword, NUL, text
      const data = Buffer.concat([Buffer.from(`${XMP_KEYWORD}\0\0\0\0\0`, 'latin1'), Buffer.from(xmp, 'utf8')]);
      const typeAndData = Buffer.concat([Buffer.from('iTXt', 'latin1'), data]);
      parts.push(u32(data.length), typeAndData, u32(crc32(typeAndData)));
      inserted = true;
    }
    at = end;
    if (type === 'IEND') break;
  }
  if (!inserted) throw new Error('PNG without IHDR');
  return Buffer.concat(parts);
}

function jpegWithXmp(src: Buffer, xmp: string): Buffer {
  if (src[0] !== 0xff || src[1] !== 0xd8) throw new Error('not a JPEG');
  const payload = Buffer.concat([Buffer.from(JPEG_XMP_HEADER, 'latin1'), Buffer.from(xmp, 'utf8')]);
  if (payload.length + 2 > 0xffff) throw new Error('XMP packet too large for one JPEG segment');
  const segment = Buffer.concat([
    Buffer.from([0xff, 0xe1]),
    Buffer.from([(payload.length + 2) >> 8, (payload.length + 2) & 0xff]),
    payload,
  ]);
  const parts: Buffer[] = [src.subarray(0, 2)];
  let at = 2;
  let inserted = false;
  // header segments up to the first that is not APPn: ours goes after APP0/APP1 (JFIF, Exif)
  while (at + 4 <= src.length && src[at] === 0xff) {
    const marker = src[at + 1] as number;
    if (marker < 0xe0 || marker > 0xef) break;
    const end = at + 2 + src.readUInt16BE(at + 2);
    const isXmp = marker === 0xe1 && src.toString('latin1', at + 4, at + 4 + JPEG_XMP_HEADER.length) === JPEG_XMP_HEADER;
    if (!inserted && marker > 0xe1) {
      parts.push(segment);
      inserted = true;
    }
    if (!isXmp) parts.push(src.subarray(at, end));
    at = end;
  }
  if (!inserted) parts.push(segment);
  parts.push(src.subarray(at));
  return Buffer.concat(parts);
}

function webpWithXmp(src: Buffer, xmp: string): Buffer {
  if (src.toString('latin1', 0, 4) !== 'RIFF' || src.toString('latin1', 8, 12) !== 'WEBP') throw new Error('not a WebP');
  const chunks: Array<{ type: string; data: Buffer }> = [];
  for (let at = 12; at + 8 <= src.length; ) {
    const type = src.toString('latin1', at, at + 4);
    const size = src.readUInt32LE(at + 4);
    chunks.push({ type, data: src.subarray(at + 8, at + 8 + size) });
    at += 8 + size + (size & 1);
  }
  let vp8x = chunks.find((c) => c.type === 'VP8X');
  if (!vp8x) {
    // a simple WebP (one VP8 or VP8L chunk) gets the extended header that XMP needs
    const image = chunks[0];
    if (!image) throw new Error('empty WebP');
    let width: number;
    let height: number;
    let alpha = false;
    if (image.type === 'VP8 ') {
      width = image.data.readUInt16LE(6) & 0x3fff;
      height = image.data.readUInt16LE(8) & 0x3fff;
    } else if (image.type === 'VP8L') {
      const bits = image.data.readUInt32LE(1);
      width = (bits & 0x3fff) + 1;
      height = ((bits >>> 14) & 0x3fff) + 1;
      alpha = ((bits >>> 28) & 1) === 1;
    } else throw new Error(`unexpected WebP chunk ${image.type}`);
    const data = Buffer.alloc(10);
    data[0] = alpha ? 0x10 : 0;
    data.writeUIntLE(width - 1, 4, 3);
    data.writeUIntLE(height - 1, 7, 3);
    vp8x = { type: 'VP8X', data };
    chunks.unshift(vp8x);
  }
  vp8x.data = Buffer.from(vp8x.data);
  vp8x.data[0] = (vp8x.data[0] as number) | 0x04; // XMP flag
  const kept = chunks.filter((c) => c.type !== 'XMP ');
  kept.push({ type: 'XMP ', data: Buffer.from(xmp, 'utf8') });
  const body = Buffer.concat(
    kept.flatMap((c) => {
      const size = Buffer.alloc(4);
      size.writeUInt32LE(c.data.length);
      return [Buffer.from(c.type, 'latin1'), size, c.data, ...(c.data.length & 1 ? [Buffer.alloc(1)] : [])];
    }),
  );
  const header = Buffer.alloc(12);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(body.length + 4, 4);
  header.write('WEBP', 8, 'latin1');
  return Buffer.concat([header, body]);
}

/**
 * The same picture with an XMP packet put into its container (PNG iTXt, JPEG APP1, WebP XMP
 * chunk), replacing one that was there. The pixels are not decoded or encoded again, so a
 * provider's JPEG or WebP loses nothing. Other formats are refused.
 */
export function insertXmp(image: Bytes, contentType: string, xmp: string): Buffer {
  const src = Buffer.isBuffer(image) ? image : Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  switch (contentType) {
    case 'image/png':
      return pngWithXmp(src, xmp);
    case 'image/jpeg':
      return jpegWithXmp(src, xmp);
    case 'image/webp':
      return webpWithXmp(src, xmp);
    default:
      throw new Error(`Cannot write XMP into ${contentType}`);
  }
}

/** The XMP packet in a PNG, JPEG or WebP file, read from its container; null when it has none. */
export function extractXmp(image: Bytes): string | null {
  const src = Buffer.isBuffer(image) ? image : Buffer.from(image.buffer, image.byteOffset, image.byteLength);
  const text = src.toString('latin1');
  const start = text.indexOf('<x:xmpmeta');
  const begin = start >= 0 ? start : text.indexOf('<rdf:RDF');
  if (begin < 0) return null;
  const close = text.indexOf('</x:xmpmeta>', begin);
  const end = close >= 0 ? close + '</x:xmpmeta>'.length : text.indexOf('</rdf:RDF>', begin) + '</rdf:RDF>'.length;
  if (end < begin) return null;
  return src.subarray(begin, end).toString('utf8');
}
