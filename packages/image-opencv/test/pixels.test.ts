import { describe, expect, it } from 'vitest';
import { DEFAULT_WHITE_BORDERS, gridCells, trimBox, whiteBorderBox } from '../src/pixels.js';
import { bordered, rawImage } from './helpers.js';

const whole = (image: { width: number; height: number }) => ({ x: 0, y: 0, width: image.width, height: image.height });

describe('gridCells', () => {
  it('covers every pixel exactly once, row-major, for sizes that do not divide evenly', () => {
    for (const [width, height, rows, cols] of [
      [101, 99, 2, 2],
      [100, 100, 3, 3],
      [7, 5, 3, 2],
      [1025, 1023, 2, 2],
    ] as const) {
      const cells = gridCells(width, height, rows, cols);
      expect(cells).toHaveLength(rows * cols);
      const seen = new Uint8Array(width * height);
      for (const cell of cells) {
        for (let y = cell.y; y < cell.y + cell.height; y++) for (let x = cell.x; x < cell.x + cell.width; x++) seen[y * width + x]! += 1;
      }
      expect(seen.every((count) => count === 1)).toBe(true);
      // row-major: x grows within a row of cells, then y
      expect(cells[1]?.x).toBeGreaterThan(cells[0]?.x ?? 0);
      expect(cells[cols]?.y).toBeGreaterThan(cells[0]?.y ?? 0);
      // cells differ by at most one pixel
      const widths = cells.map((c) => c.width);
      expect(Math.max(...widths) - Math.min(...widths)).toBeLessThanOrEqual(1);
    }
  });
});

describe('trimBox', () => {
  it('finds the exact box of non-white content', () => {
    const image = bordered(60, 40, { top: 3, right: 7, bottom: 1, left: 12 });
    expect(trimBox(image, whole(image))).toEqual({ x: 12, y: 3, width: 41, height: 36 });
  });

  it('treats near-white as content unless a tolerance says otherwise', () => {
    const image = bordered(50, 30, { top: 4, right: 4, bottom: 4, left: 4 }, 250);
    // some border pixels are below 255: at tolerance 0 they are content
    expect(trimBox(image, whole(image), 0).width).toBeGreaterThan(42);
    expect(trimBox(image, whole(image), 5)).toEqual({ x: 4, y: 4, width: 42, height: 22 });
  });

  it('works inside a cell of a larger image and leaves an all-white cell alone', () => {
    const image = rawImage(40, 20, (x, y) => (x >= 25 && x < 30 && y >= 5 && y < 9 ? [0, 0, 0] : [255, 255, 255]));
    expect(trimBox(image, { x: 20, y: 0, width: 20, height: 20 })).toEqual({ x: 25, y: 5, width: 5, height: 4 });
    expect(trimBox(image, { x: 0, y: 0, width: 20, height: 20 })).toEqual({ x: 0, y: 0, width: 20, height: 20 });
  });
});

describe('whiteBorderBox', () => {
  const settings = DEFAULT_WHITE_BORDERS;

  it('crops near-white borders (every channel >= threshold) to the exact box', () => {
    const image = bordered(120, 100, { top: 7, right: 0, bottom: 3, left: 11 }, 225, 7);
    expect(whiteBorderBox(image, whole(image), settings)).toEqual({ x: 11, y: 7, width: 109, height: 90 });
  });

  it('counts a line as white when at least whiteRatio of its pixels are white', () => {
    // top rows: 4 dark pixels in 100 (96% white) -> white; row 5: 6 dark pixels (94%) -> not white
    const image = rawImage(100, 60, (x, y) => {
      if (y < 5) return x < 4 ? [0, 0, 0] : [255, 255, 255];
      if (y === 5) return x < 6 ? [0, 0, 0] : [255, 255, 255];
      return [100, 120, 140];
    });
    expect(whiteBorderBox(image, whole(image), settings)).toEqual({ x: 0, y: 5, width: 100, height: 55 });
    expect(whiteBorderBox(image, whole(image), { ...settings, whiteRatio: 0.9 }).y).toBe(6);
  });

  it('scans at most scanDepth lines and crops only runs of at least minBorder', () => {
    const deep = bordered(80, 200, { top: 70, right: 0, bottom: 2, left: 0 });
    expect(whiteBorderBox(deep, whole(deep), settings)).toEqual({ x: 0, y: 50, width: 80, height: 148 });
    expect(whiteBorderBox(deep, whole(deep), { ...settings, minBorder: 3 })).toEqual({ x: 0, y: 50, width: 80, height: 150 });
    expect(whiteBorderBox(deep, whole(deep), { ...settings, scanDepth: 80 })).toEqual({ x: 0, y: 70, width: 80, height: 128 });
  });

  it('judges columns over the rows that remain after the row crop', () => {
    // a 30 px white top band would make every column 30% white; columns are judged below it
    const image = bordered(100, 100, { top: 30, right: 0, bottom: 0, left: 4 });
    expect(whiteBorderBox(image, whole(image), settings)).toEqual({ x: 4, y: 30, width: 96, height: 70 });
  });

  it('never crops to nothing', () => {
    const white = rawImage(40, 30, () => [255, 255, 255]);
    expect(whiteBorderBox(white, whole(white), settings)).toEqual(whole(white));
    const thin = bordered(40, 30, { top: 14, right: 0, bottom: 16, left: 0 });
    expect(whiteBorderBox(thin, whole(thin), settings)).toEqual(whole(thin));
  });
});
