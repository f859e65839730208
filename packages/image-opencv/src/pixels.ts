/**
 * Geometry on decoded pixels: grid cells, the trim box and the white-border box. Everything works
 * on one raw RGB buffer and returns rectangles, so a grid is decoded once and each cell is copied
 * (or styled) exactly once at the end.
 */

/** Tightly packed 8-bit RGB. */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface WhiteBorderSettings {
  threshold: number;
  scanDepth: number;
  minBorder: number;
  whiteRatio: number;
}

export const DEFAULT_WHITE_BORDERS: WhiteBorderSettings = { threshold: 220, scanDepth: 50, minBorder: 1, whiteRatio: 0.95 };

/**
 * Cells in row-major order. Edges sit at floor(i * size / n), so uneven sizes give cells that
 * differ by at most one pixel and every pixel row and column lands in exactly one cell.
 */
export function gridCells(width: number, height: number, rows: number, cols: number): Rect[] {
  const cells: Rect[] = [];
  for (let r = 0; r < rows; r++) {
    const top = Math.floor((r * height) / rows);
    const bottom = Math.floor(((r + 1) * height) / rows);
    for (let c = 0; c < cols; c++) {
      const left = Math.floor((c * width) / cols);
      const right = Math.floor(((c + 1) * width) / cols);
      cells.push({ x: left, y: top, width: right - left, height: bottom - top });
    }
  }
  return cells;
}

/**
 * Bounding box of the pixels that are not white inside `rect`. A pixel is white when every
 * channel is at least 255 - tolerance. An all-white rect is returned unchanged (never empty).
 */
export function trimBox(image: RawImage, rect: Rect, tolerance = 0): Rect {
  const { data, width } = image;
  const min = 255 - tolerance;
  const stride = width * 3;
  const rowHasContent = (y: number) => {
    const start = y * stride + rect.x * 3;
    const end = start + rect.width * 3;
    for (let i = start; i < end; i++) if ((data[i] as number) < min) return true;
    return false;
  };
  let top = rect.y;
  const lastRow = rect.y + rect.height - 1;
  while (top <= lastRow && !rowHasContent(top)) top++;
  if (top > lastRow) return rect;
  let bottom = lastRow;
  while (bottom > top && !rowHasContent(bottom)) bottom--;
  const columnHasContent = (x: number) => {
    for (let y = top, i = top * stride + x * 3; y <= bottom; y++, i += stride) {
      if ((data[i] as number) < min || (data[i + 1] as number) < min || (data[i + 2] as number) < min) return true;
    }
    return false;
  };
  let left = rect.x;
  while (!columnHasContent(left)) left++;
  let right = rect.x + rect.width - 1;
  while (right > left && !columnHasContent(right)) right--;
  return { x: left, y: top, width: right - left + 1, height: bottom - top + 1 };
}

/**
 * The old system's white-border crop. From each edge, up to `scanDepth` rows (then columns) are
 * scanned; a line is white when at least `whiteRatio` of its pixels have every channel >=
 * `threshold`; the run of white lines from the edge is cut when it is at least `minBorder` thick.
 * Rows are judged over the full width; columns over the rows left after the row crop, so a
 * thick top border does not count towards a column's whiteness. Never crops to nothing: when
 * the runs of two opposite edges would meet, that direction is left alone.
 */
export function whiteBorderBox(image: RawImage, rect: Rect, settings: WhiteBorderSettings): Rect {
  const { data, width } = image;
  const { threshold, scanDepth, minBorder, whiteRatio } = settings;
  const stride = width * 3;
  // a line of n pixels is white when its count of white pixels reaches this
  const needed = (n: number) => Math.max(0, Math.ceil(whiteRatio * n - 1e-9));
  const isWhite = (i: number) =>
    (data[i] as number) >= threshold && (data[i + 1] as number) >= threshold && (data[i + 2] as number) >= threshold;

  const rowWhite = (y: number, x0: number, n: number) => {
    const allowed = n - needed(n); // non-white pixels a white line may have
    let misses = 0;
    for (let x = 0, i = y * stride + x0 * 3; x < n; x++, i += 3) {
      if (!isWhite(i) && ++misses > allowed) return false;
    }
    return true;
  };
  const columnWhite = (x: number, y0: number, n: number) => {
    const allowed = n - needed(n);
    let misses = 0;
    for (let y = 0, i = y0 * stride + x * 3; y < n; y++, i += stride) {
      if (!isWhite(i) && ++misses > allowed) return false;
    }
    return true;
  };
  const run = (length: number, white: (step: number) => boolean) => {
    const depth = Math.min(scanDepth, length);
    let count = 0;
    while (count < depth && white(count)) count++;
    return count >= minBorder ? count : 0;
  };

  let top = run(rect.height, (i) => rowWhite(rect.y + i, rect.x, rect.width));
  let bottom = run(rect.height, (i) => rowWhite(rect.y + rect.height - 1 - i, rect.x, rect.width));
  if (top + bottom >= rect.height) top = bottom = 0;
  const y = rect.y + top;
  const height = rect.height - top - bottom;
  let left = run(rect.width, (i) => columnWhite(rect.x + i, y, height));
  let right = run(rect.width, (i) => columnWhite(rect.x + rect.width - 1 - i, y, height));
  if (left + right >= rect.width) left = right = 0;
  return { x: rect.x + left, y, width: rect.width - left - right, height };
}

/** Copies `rect` out of the image into a new tightly packed RGB buffer. */
export function extract(image: RawImage, rect: Rect): Uint8Array {
  if (rect.x === 0 && rect.y === 0 && rect.width === image.width && rect.height === image.height) return image.data;
  const stride = image.width * 3;
  const rowLength = rect.width * 3;
  const out = new Uint8Array(rowLength * rect.height);
  for (let y = 0; y < rect.height; y++) {
    const start = (rect.y + y) * stride + rect.x * 3;
    out.set(image.data.subarray(start, start + rowLength), y * rowLength);
  }
  return out;
}
