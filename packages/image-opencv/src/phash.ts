/**
 * The difference hash (dHash) of a picture: the picture in grey, shrunk to 9x8, and one bit per
 * pair of horizontal neighbours, 1 when the left pixel is brighter than the right one. Row by
 * row, most significant bit first: 64 bits as 16 lowercase hex characters. Near-identical
 * pictures (re-encoded, resized, restyled) differ in few bits; the Hamming distance between two
 * hashes is the number of bits that differ (core's `hammingDistance`).
 */

export const HASH_WIDTH = 9;
export const HASH_HEIGHT = 8;
/**
 * The kernel of the shrink to 9x8, fixed so that a change of sharp's default never changes the
 * hashes already stored. libvips shrinks by whole factors with a box filter first and uses the
 * kernel for the rest.
 */
export const HASH_KERNEL = 'lanczos3' as const;

/** The hash of 9x8 grey pixels (one byte each, row-major). */
export function differenceHash(grey: Uint8Array): string {
  if (grey.length !== HASH_WIDTH * HASH_HEIGHT)
    throw new RangeError(`expected ${HASH_WIDTH * HASH_HEIGHT} grey pixels, got ${grey.length}`);
  let hex = '';
  for (let y = 0; y < HASH_HEIGHT; y++) {
    // one row is 8 bits: two hex digits
    let row = 0;
    for (let x = 0; x < HASH_WIDTH - 1; x++) {
      const at = y * HASH_WIDTH + x;
      row = (row << 1) | ((grey[at] as number) > (grey[at + 1] as number) ? 1 : 0);
    }
    hex += row.toString(16).padStart(2, '0');
  }
  return hex;
}
