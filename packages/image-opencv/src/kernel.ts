import type { RawImage, Rect } from './pixels.js';
import { assemble, type Code, F32, I32, op, V128 } from './wasm.js';

/**
 * The style pass: blur or unsharp mask on luma, preset and contrast, grain, vignette, round and
 * clamp. It runs as WebAssembly SIMD (four pixels per step), and as plain JavaScript for images
 * too large for the kernel's memory. Both do the very same float32 operations in the same order
 * (the JavaScript rounds every step with Math.fround), so both give the same bytes; a test
 * holds them to it.
 */

/** The numbers the pass needs, all float32 (see `coefficients` in style.ts). */
export interface KernelCoefficients {
  /** m0..m8 (3x3 colour matrix, row-major), a0..a2 (offsets). */
  colour: Float32Array;
  lambda: number;
  center: number;
  side: number;
  grainScale: number;
  filtered: boolean;
  /** Vignette: v = vy(y) - vx[x]. */
  vx: Float32Array;
  vy: (y: number) => number;
  /** Grain table and the table index where row 0 starts (row y starts y * width later). */
  grain: Int16Array;
  grainStart: number;
}

export const LUMA_WEIGHTS = [Math.fround(0.299), Math.fround(0.587), Math.fround(0.114)] as const;
export const GRAIN_BITS = 20;
export const GRAIN_MASK = (1 << GRAIN_BITS) - 1;
/** Rows of up to this many pixels never wrap inside the (extended) grain table. */
const MAX_KERNEL_WIDTH = 16384;
/** Larger images go the JavaScript way rather than keep a huge WebAssembly memory alive. */
const MAX_KERNEL_PIXELS = 2048 * 2048;

// memory layout (bytes)
const K = 0; // 19 float32 coefficients
const ROW_BYTES = (MAX_KERNEL_WIDTH + 16) * 4;
const VX = 128;
const LUMA = VX + ROW_BYTES + 16; // one float32 of padding before (the replicated left edge)
const RINGS = LUMA + ROW_BYTES + 16;
const NOISE = 1 << 19;
const NOISE_LENGTH = (1 << GRAIN_BITS) + MAX_KERNEL_WIDTH;
const DATA = Math.ceil((NOISE + NOISE_LENGTH * 2) / 65536) * 65536;

// --- the WebAssembly kernel -------------------------------------------------------------

const Z = 0x80; // swizzle index that yields 0
/** Bytes c, c+3, c+6, c+9 of 4 RGB pixels, each zero-extended into an i32 lane. */
const channel = (c: number) => [c, Z, Z, Z, c + 3, Z, Z, Z, c + 6, Z, Z, Z, c + 9, Z, Z, Z];
/** RRRRGGGGBBBB0000 back to RGBRGBRGBRGB. */
const INTERLEAVE = [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, Z, Z, Z, Z];
const { get, set } = op;

/** R, G, B of 4 pixels at the i32 address in local `src` into v128 locals r, g, b (as f32x4). */
const loadPixels = (src: number, px: number, r: number, g: number, b: number): Code => [
  ...get(src),
  ...op.v128Load(),
  ...set(px),
  ...get(px),
  ...op.v128Const(channel(0)),
  ...op.swizzle,
  ...op.f32x4ConvertI32x4u,
  ...set(r),
  ...get(px),
  ...op.v128Const(channel(1)),
  ...op.swizzle,
  ...op.f32x4ConvertI32x4u,
  ...set(g),
  ...get(px),
  ...op.v128Const(channel(2)),
  ...op.swizzle,
  ...op.f32x4ConvertI32x4u,
  ...set(b),
];
/** ((a*r + b*g) + c*bl) on the stack. */
const dot = (a: number, b: number, c: number, r: number, g: number, bl: number): Code => [
  ...get(a),
  ...get(r),
  ...op.f32x4Mul,
  ...get(b),
  ...get(g),
  ...op.f32x4Mul,
  ...op.f32x4Add,
  ...get(c),
  ...get(bl),
  ...op.f32x4Mul,
  ...op.f32x4Add,
];
const bump = (local: number, by: number): Code => [...get(local), ...op.i32(by), ...op.i32Add, ...set(local)];
const splatK = (index: number, local: number): Code => [...op.i32(0), ...op.f32Load(K + index * 4), ...op.f32x4Splat, ...set(local)];

/** lumaRow(src, tmp, dst, groups, w): the luma of a row, then its horizontal 3-tap filter. */
function lumaRow(): Code {
  const [src, tmp, dst, groups, w] = [0, 1, 2, 3, 4];
  const [i, s, p, px, r, g, b, lr, lg, lb, cS, sS] = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
  return [
    ...splatK(16, lr),
    ...splatK(17, lg),
    ...splatK(18, lb),
    ...splatK(13, cS),
    ...splatK(14, sS),
    ...get(src),
    ...set(s),
    ...get(tmp),
    ...set(p),
    ...get(groups),
    ...set(i),
    ...op.whileNot(
      [...get(i), ...op.i32Eqz],
      [
        ...loadPixels(s, px, r, g, b),
        ...get(p),
        ...dot(lr, lg, lb, r, g, b),
        ...op.v128Store(),
        ...bump(s, 12),
        ...bump(p, 16),
        ...bump(i, -1),
      ],
    ),
    // replicate the edges: L[-1] = L[0], L[w] = L[w - 1]
    ...get(tmp),
    ...op.i32(4),
    ...op.i32Sub,
    ...get(tmp),
    ...op.f32Load(),
    ...op.f32Store(),
    ...get(tmp),
    ...get(w),
    ...op.i32(4),
    ...op.i32Mul,
    ...op.i32Add,
    ...get(tmp),
    ...get(w),
    ...op.i32(4),
    ...op.i32Mul,
    ...op.i32Add,
    ...op.i32(4),
    ...op.i32Sub,
    ...op.f32Load(),
    ...op.f32Store(),
    // H[x] = center * L[x] + side * (L[x-1] + L[x+1])
    ...get(tmp),
    ...set(p),
    ...get(dst),
    ...set(s),
    ...get(groups),
    ...set(i),
    ...op.whileNot(
      [...get(i), ...op.i32Eqz],
      [
        ...get(s),
        ...get(cS),
        ...get(p),
        ...op.v128Load(),
        ...op.f32x4Mul,
        ...get(sS),
        ...get(p),
        ...op.i32(4),
        ...op.i32Sub,
        ...op.v128Load(),
        ...get(p),
        ...op.v128Load(4),
        ...op.f32x4Add,
        ...op.f32x4Mul,
        ...op.f32x4Add,
        ...op.v128Store(),
        ...bump(p, 16),
        ...bump(s, 16),
        ...bump(i, -1),
      ],
    ),
  ];
}

/** styleRow(src, out, up, cu, dn, noise, vx, groups, vy, filtered): one output row. */
function styleRow(): Code {
  const [src, out, up, cu, dn, noise, vx, groups, vy, filtered] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const [px, r, g, b, n, v, d, vyS] = [10, 11, 12, 13, 14, 15, 16, 17];
  const k = (index: number) => 18 + index; // splats of the 19 coefficients
  const colourOf = (c: number): Code => [
    ...dot(k(c * 3), k(c * 3 + 1), k(c * 3 + 2), r, g, b),
    ...get(k(9 + c)),
    ...op.f32x4Add,
    ...get(n),
    ...op.f32x4Add,
    ...get(v),
    ...op.f32x4Mul,
    ...op.f32x4Nearest,
    ...op.i32x4TruncSatF32x4,
  ];
  const pixelLoop = (withFilter: boolean): Code =>
    op.whileNot(
      [...get(groups), ...op.i32Eqz],
      [
        ...loadPixels(src, px, r, g, b),
        ...(withFilter
          ? [
              // d = lambda * ((center * cu + side * (up + dn)) - luma)
              ...get(k(12)),
              ...get(k(13)),
              ...get(cu),
              ...op.v128Load(),
              ...op.f32x4Mul,
              ...get(k(14)),
              ...get(up),
              ...op.v128Load(),
              ...get(dn),
              ...op.v128Load(),
              ...op.f32x4Add,
              ...op.f32x4Mul,
              ...op.f32x4Add,
              ...dot(k(16), k(17), k(18), r, g, b),
              ...op.f32x4Sub,
              ...op.f32x4Mul,
              ...set(d),
              ...get(r),
              ...get(d),
              ...op.f32x4Add,
              ...set(r),
              ...get(g),
              ...get(d),
              ...op.f32x4Add,
              ...set(g),
              ...get(b),
              ...get(d),
              ...op.f32x4Add,
              ...set(b),
              ...bump(up, 16),
              ...bump(cu, 16),
              ...bump(dn, 16),
            ]
          : []),
        ...get(noise),
        ...op.v128Load16x4s(),
        ...op.f32x4ConvertI32x4s,
        ...get(k(15)),
        ...op.f32x4Mul,
        ...set(n),
        ...get(vyS),
        ...get(vx),
        ...op.v128Load(),
        ...op.f32x4Sub,
        ...set(v),
        ...get(out),
        ...colourOf(0),
        ...colourOf(1),
        ...op.i16NarrowI32,
        ...colourOf(2),
        ...op.v128Const(new Array(16).fill(0)),
        ...op.i16NarrowI32,
        ...op.u8NarrowI16,
        ...op.v128Const(INTERLEAVE),
        ...op.swizzle,
        ...op.v128Store(),
        ...bump(src, 12),
        ...bump(out, 12),
        ...bump(noise, 8),
        ...bump(vx, 16),
        ...bump(groups, -1),
      ],
    );
  const prologue: Code = [];
  for (let i = 0; i < 19; i++) prologue.push(...splatK(i, k(i)));
  prologue.push(...get(vy), ...op.f32x4Splat, ...set(vyS));
  return [...prologue, ...op.ifElse(get(filtered), pixelLoop(true), pixelLoop(false))];
}

/** The part of the WebAssembly API used here (Node's types do not declare it without the DOM lib). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Memory: new (descriptor: { initial: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

interface Kernel {
  memory: WasmMemory;
  lumaRow: (src: number, tmp: number, dst: number, groups: number, w: number) => void;
  styleRow: (
    src: number,
    out: number,
    up: number,
    cu: number,
    dn: number,
    noise: number,
    vx: number,
    groups: number,
    vy: number,
    filtered: number,
  ) => void;
  grain: Int16Array | undefined;
}

let kernel: Kernel | undefined;

/** Compiles the kernel once per thread (synchronously: it is a few hundred bytes). */
function getKernel(): Kernel {
  if (kernel) return kernel;
  const bytes = assemble([
    {
      name: 'lumaRow',
      params: [I32, I32, I32, I32, I32],
      locals: [
        [3, I32],
        [9, V128],
      ],
      body: lumaRow(),
    },
    {
      name: 'styleRow',
      params: [I32, I32, I32, I32, I32, I32, I32, I32, F32, I32],
      locals: [[8 + 19, V128]],
      body: styleRow(),
    },
  ]);
  const memory = new wasm.Memory({ initial: DATA / 65536 + 1 });
  const instance = new wasm.Instance(new wasm.Module(bytes), { env: { memory } });
  const exports = instance.exports as unknown as Pick<Kernel, 'lumaRow' | 'styleRow'>;
  kernel = { memory, lumaRow: exports.lumaRow, styleRow: exports.styleRow, grain: undefined };
  return kernel;
}

/** Whether the WebAssembly kernel takes this rectangle (else the JavaScript pass does). */
export function kernelFits(rect: Rect): boolean {
  return rect.width <= MAX_KERNEL_WIDTH && rect.width * rect.height <= MAX_KERNEL_PIXELS;
}

/**
 * Runs the pass with WebAssembly. The result is a view into the kernel's memory: use it (encode
 * it) before the next call on this thread.
 */
export function runKernel(source: RawImage, rect: Rect, c: KernelCoefficients): Uint8Array {
  const kn = getKernel();
  const { x: x0, y: y0, width: w, height: h } = rect;
  const rowBytes = w * 3;
  const size = rowBytes * h;
  const src = DATA;
  const out = DATA + Math.ceil((size + 64) / 16) * 16;
  const needed = out + size + 64;
  if (kn.memory.buffer.byteLength < needed) kn.memory.grow(Math.ceil((needed - kn.memory.buffer.byteLength) / 65536));
  const heap = new Uint8Array(kn.memory.buffer);
  if (kn.grain !== c.grain) {
    // the table, then its start again, so that no row wraps around inside the table
    const table = new Int16Array(kn.memory.buffer, NOISE, NOISE_LENGTH);
    table.set(c.grain);
    table.set(c.grain.subarray(0, MAX_KERNEL_WIDTH), c.grain.length);
    kn.grain = c.grain;
  }
  const f32 = new Float32Array(kn.memory.buffer);
  f32.set(c.colour, K / 4);
  f32.set([c.lambda, c.center, c.side, c.grainScale, ...LUMA_WEIGHTS], K / 4 + 12);
  f32.set(c.vx, VX / 4);
  f32.fill(0, VX / 4 + w, VX / 4 + w + 4);
  const stride = source.width * 3;
  for (let y = 0; y < h; y++) {
    const start = (y0 + y) * stride + x0 * 3;
    heap.set(source.data.subarray(start, start + rowBytes), src + y * rowBytes);
  }
  heap.fill(0, src + size, src + size + 16);

  const groups = Math.ceil(w / 4);
  const rows = [RINGS, RINGS + ROW_BYTES + 16, RINGS + 2 * (ROW_BYTES + 16)];
  const rowAt = (y: number) => src + y * rowBytes;
  let [above, current, below] = rows as [number, number, number];
  if (c.filtered) {
    kn.lumaRow(rowAt(0), LUMA, above, groups, w);
    kn.lumaRow(rowAt(0), LUMA, current, groups, w);
    kn.lumaRow(rowAt(Math.min(1, h - 1)), LUMA, below, groups, w);
  }
  for (let y = 0; y < h; y++) {
    const noise = NOISE + 2 * ((c.grainStart + y * w) & GRAIN_MASK);
    kn.styleRow(rowAt(y), out + y * rowBytes, above, current, below, noise, VX, groups, c.vy(y), c.filtered ? 1 : 0);
    if (c.filtered && y + 1 < h) {
      [above, current, below] = [current, below, above];
      kn.lumaRow(rowAt(Math.min(y + 2, h - 1)), LUMA, below, groups, w);
    }
  }
  return heap.subarray(out, out + size);
}

// --- the same pass in JavaScript ------------------------------------------------------------

const f = Math.fround;

/** Luma of a row and its horizontal filter, exactly as lumaRow does it. */
function lumaRowJs(src: Uint8Array, base: number, w: number, center: number, side: number, luma: Float32Array, dst: Float32Array): void {
  const [lr, lg, lb] = LUMA_WEIGHTS;
  for (let x = 0, s = base; x < w; x++, s += 3) {
    luma[x + 1] = f(f(f(lr * (src[s] as number)) + f(lg * (src[s + 1] as number))) + f(lb * (src[s + 2] as number)));
  }
  luma[0] = luma[1] as number;
  luma[w + 1] = luma[w] as number;
  for (let x = 0; x < w; x++) {
    dst[x] = f(f(center * (luma[x + 1] as number)) + f(side * f((luma[x] as number) + (luma[x + 2] as number))));
  }
}

/** The pass in JavaScript, for images the kernel does not take; same bytes as runKernel. */
export function runJs(source: RawImage, rect: Rect, c: KernelCoefficients, target?: Uint8Array): Uint8Array {
  const { data: src, width: srcWidth } = source;
  const { x: x0, y: y0, width: w, height: h } = rect;
  const stride = srcWidth * 3;
  const rowBytes = w * 3;
  const size = rowBytes * h;
  const out = target && target.byteLength >= size ? target.subarray(0, size) : new Uint8Array(size);
  const clamped = new Uint8ClampedArray(out.buffer, out.byteOffset, size);
  const k = c.colour;
  const [m0, m1, m2, m3, m4, m5, m6, m7, m8] = [k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8]] as number[] as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const [a0, a1, a2] = [k[9], k[10], k[11]] as number[] as [number, number, number];
  const [lr, lg, lb] = LUMA_WEIGHTS;
  const { lambda, center, side, grainScale, vx, grain } = c;
  const luma = new Float32Array(w + 2);
  let above = new Float32Array(w);
  let current = new Float32Array(w);
  let below = new Float32Array(w);
  const rowStart = (y: number) => (y0 + y) * stride + x0 * 3;
  if (c.filtered) {
    lumaRowJs(src, rowStart(0), w, center, side, luma, above);
    current.set(above);
    lumaRowJs(src, rowStart(Math.min(1, h - 1)), w, center, side, luma, below);
  }
  for (let y = 0; y < h; y++) {
    const vy = c.vy(y);
    const base = rowStart(y);
    const noiseStart = c.grainStart + y * w;
    for (let x = 0, s = base, o = y * rowBytes; x < w; x++, s += 3, o += 3) {
      let r = src[s] as number;
      let g = src[s + 1] as number;
      let b = src[s + 2] as number;
      if (c.filtered) {
        const blurred = f(f(center * (current[x] as number)) + f(side * f((above[x] as number) + (below[x] as number))));
        const y0 = f(f(f(lr * r) + f(lg * g)) + f(lb * b));
        const d = f(lambda * f(blurred - y0));
        r = f(r + d);
        g = f(g + d);
        b = f(b + d);
      }
      const n = f((grain[(noiseStart + x) & GRAIN_MASK] as number) * grainScale);
      const v = f(vy - (vx[x] as number));
      clamped[o] = f(f(f(f(f(f(m0 * r) + f(m1 * g)) + f(m2 * b)) + a0) + n) * v);
      clamped[o + 1] = f(f(f(f(f(f(m3 * r) + f(m4 * g)) + f(m5 * b)) + a1) + n) * v);
      clamped[o + 2] = f(f(f(f(f(f(m6 * r) + f(m7 * g)) + f(m8 * b)) + a2) + n) * v);
    }
    if (c.filtered && y + 1 < h) {
      const spare = above;
      above = current;
      current = below;
      below = spare;
      lumaRowJs(src, rowStart(Math.min(y + 2, h - 1)), w, center, side, luma, below);
    }
  }
  return out;
}
