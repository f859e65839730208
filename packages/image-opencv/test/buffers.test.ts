import { describe, expect, it } from 'vitest';
import { sizeClass, TransferBuffers } from '../src/buffers.js';

describe('TransferBuffers', () => {
  it('copies into a buffer of the size class and uses a returned buffer again', () => {
    const buffers = new TransferBuffers(8 << 20, 4 << 20);
    const first = buffers.copy(new Uint8Array([1, 2, 3]));
    expect([...first]).toEqual([1, 2, 3]);
    expect(first.buffer.byteLength).toBe(65_536);
    const carrier = first.buffer as ArrayBuffer;
    buffers.give(carrier);
    expect(buffers.idleBytes).toBe(65_536);
    const second = buffers.copy(new Uint8Array([9, 8]));
    expect(second.buffer).toBe(carrier);
    // the view covers only the new input, never the old bytes behind it
    expect([...second]).toEqual([9, 8]);
    expect(buffers.idleBytes).toBe(0);
  });

  it('rounds sizes up to powers of two from 64 KiB', () => {
    expect(sizeClass(0)).toBe(65_536);
    expect(sizeClass(65_537)).toBe(131_072);
    expect(sizeClass(1_693_446)).toBe(2_097_152);
    expect(sizeClass(2_097_152)).toBe(2_097_152);
  });

  it('keeps no more than its idle limit and never keeps oversized or foreign buffers', () => {
    const buffers = new TransferBuffers(256 * 1024, 128 * 1024);
    const big = buffers.copy(new Uint8Array(200 * 1024));
    expect(big.buffer.byteLength).toBe(200 * 1024);
    buffers.give(big.buffer as ArrayBuffer);
    buffers.give(new ArrayBuffer(1000));
    buffers.give(undefined);
    expect(buffers.idleBytes).toBe(0);
    for (let i = 0; i < 3; i++) buffers.give(new ArrayBuffer(128 * 1024));
    expect(buffers.idleBytes).toBe(256 * 1024);
  });
});
