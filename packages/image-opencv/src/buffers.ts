/**
 * Buffers that carry input bytes to a worker and come back with its reply, to be used again.
 *
 * A fresh buffer is memory the process has not touched yet, and touching it costs a page fault
 * per 4 KiB: on the VMs we deploy to that is ~12 us a page, ~5 ms for one 1.7 MB grid, on the
 * main thread that all calls share. A buffer that went round once is already mapped.
 */
export class TransferBuffers {
  /** Idle buffers by size class (a power of two). */
  #idle = new Map<number, ArrayBuffer[]>();
  #idleBytes = 0;

  constructor(
    /** Most bytes kept idle; a buffer that would go past it is left to the garbage collector. */
    readonly maxIdleBytes: number,
    /** Inputs larger than this get a buffer of their own, never kept. */
    readonly maxBufferBytes: number,
  ) {}

  /** A copy of `bytes` in a buffer that may be moved to another thread. */
  copy(bytes: Uint8Array): Uint8Array {
    const size = sizeClass(bytes.byteLength);
    const buffer = size <= this.maxBufferBytes ? (this.#take(size) ?? new ArrayBuffer(size)) : new ArrayBuffer(bytes.byteLength);
    const view = new Uint8Array(buffer, 0, bytes.byteLength);
    view.set(bytes);
    return view;
  }

  /** Takes back a buffer that a worker returned; ignores what does not fit the pool. */
  give(buffer: ArrayBuffer | undefined): void {
    if (!(buffer instanceof ArrayBuffer) || buffer.byteLength === 0) return;
    const size = buffer.byteLength;
    if (size !== sizeClass(size) || size > this.maxBufferBytes || this.#idleBytes + size > this.maxIdleBytes) return;
    const list = this.#idle.get(size) ?? [];
    list.push(buffer);
    this.#idle.set(size, list);
    this.#idleBytes += size;
  }

  get idleBytes(): number {
    return this.#idleBytes;
  }

  #take(size: number): ArrayBuffer | undefined {
    const buffer = this.#idle.get(size)?.pop();
    if (buffer) this.#idleBytes -= size;
    return buffer;
  }
}

/** The next power of two, at least 64 KiB: inputs of similar sizes share buffers. */
export function sizeClass(bytes: number): number {
  return Math.max(65_536, 2 ** Math.ceil(Math.log2(Math.max(1, bytes))));
}
