/**
 * A tiny WebAssembly assembler: just enough to emit the style kernel (kernel.ts) as SIMD code
 * without a compiler toolchain. The module is built from these bytes at run time (a few hundred
 * bytes, well under a millisecond), so nothing binary is committed and the source stays readable.
 */

export type Code = number[];

export const uleb = (value: number): Code => {
  const out: Code = [];
  let n = value >>> 0;
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return out;
};

export const sleb = (value: number): Code => {
  const out: Code = [];
  let n = value | 0;
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
};

export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;

const simd = (op: number): Code => [0xfd, ...uleb(op)];
const memarg = (align: number, offset: number): Code => [align, ...uleb(offset)];

/** The instructions the kernel uses (names as in the WebAssembly text format). */
export const op = {
  get: (i: number): Code => [0x20, ...uleb(i)],
  set: (i: number): Code => [0x21, ...uleb(i)],
  i32: (v: number): Code => [0x41, ...sleb(v)],
  f32: (v: number): Code => {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setFloat32(0, v, true);
    return [0x43, ...bytes];
  },
  i32Add: [0x6a],
  i32Sub: [0x6b],
  i32Mul: [0x6c],
  i32Eqz: [0x45],
  f32Load: (offset = 0): Code => [0x2a, ...memarg(2, offset)],
  f32Store: (offset = 0): Code => [0x38, ...memarg(2, offset)],
  /** block { loop { br_if exit when `exitWhen` is true; body; br loop } } */
  whileNot: (exitWhen: Code, body: Code): Code => [0x02, 0x40, 0x03, 0x40, ...exitWhen, 0x0d, 1, ...body, 0x0c, 0, 0x0b, 0x0b],
  ifElse: (condition: Code, then: Code, otherwise: Code): Code => [...condition, 0x04, 0x40, ...then, 0x05, ...otherwise, 0x0b],
  v128Load: (offset = 0): Code => [...simd(0), ...memarg(0, offset)],
  /** Four int16 values, sign-extended to i32x4. */
  v128Load16x4s: (offset = 0): Code => [...simd(3), ...memarg(0, offset)],
  v128Store: (offset = 0): Code => [...simd(11), ...memarg(0, offset)],
  v128Const: (bytes: number[]): Code => [...simd(12), ...bytes],
  swizzle: simd(14),
  f32x4Splat: simd(19),
  u8NarrowI16: simd(102),
  f32x4Nearest: simd(106),
  i16NarrowI32: simd(133),
  f32x4Add: simd(228),
  f32x4Sub: simd(229),
  f32x4Mul: simd(230),
  i32x4TruncSatF32x4: simd(248),
  f32x4ConvertI32x4s: simd(250),
  f32x4ConvertI32x4u: simd(251),
};

export interface FunctionSpec {
  name: string;
  params: number[];
  /** Extra locals, as [count, type] runs. */
  locals: Array<[number, number]>;
  body: Code;
}

const section = (id: number, body: Code): Code => [id, ...uleb(body.length), ...body];
const vector = (items: Code[]): Code => [...uleb(items.length), ...items.flat()];
const name = (text: string): Code => vector([...Buffer.from(text, 'utf8')].map((b) => [b]));

/** A module that imports its memory as env.memory and exports the functions (no results). */
export function assemble(functions: FunctionSpec[]): Uint8Array {
  const types = functions.map((f) => [0x60, ...vector(f.params.map((p) => [p])), 0]);
  const bodies = functions.map((f) => {
    const code = [...vector(f.locals.map(([count, type]) => [...uleb(count), type])), ...f.body, 0x0b];
    return [...uleb(code.length), ...code];
  });
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...section(1, vector(types)),
    ...section(2, vector([[...name('env'), ...name('memory'), 0x02, 0x00, 0x01]])),
    ...section(3, vector(functions.map((_, i) => uleb(i)))),
    ...section(7, vector(functions.map((f, i) => [...name(f.name), 0x00, ...uleb(i)]))),
    ...section(10, vector(bodies)),
  ]);
}
