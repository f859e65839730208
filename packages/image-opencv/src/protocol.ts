import type { ProcessedImage, StyledImage, StyleParams } from '@avatargen/core';
import type { WhiteBorderSettings } from './pixels.js';

/** Messages between the pool (main thread) and its workers. Types only: no runtime code here. */

export interface WorkerSettings {
  /** Largest width * height that sharp will decode. */
  maxPixels: number;
  /** Optimised Huffman tables in JPEG output (smaller files, slower encoding). */
  jpegOptimizeCoding: boolean;
}

export type WorkerTask =
  | { op: 'splitGrid'; image: Uint8Array; rows: number; cols: number }
  | { op: 'trimWhitespace'; image: Uint8Array; tolerance: number }
  | { op: 'cropWhiteBorders'; image: Uint8Array; settings: WhiteBorderSettings }
  | { op: 'randomizeStyle'; image: Uint8Array; seed: string }
  | { op: 'applyStyle'; image: Uint8Array; params: StyleParams }
  | { op: 'thumbnail'; image: Uint8Array; width: number; xmp: string | null }
  | {
      op: 'processGrid';
      image: Uint8Array;
      rows: number;
      cols: number;
      borders: WhiteBorderSettings | null;
      styleSeed: string | null;
      /** XMP packet written at each cell's encode, or null. */
      xmp: string | null;
    }
  | { op: 'processPicture'; image: Uint8Array; borders: WhiteBorderSettings | null; styleSeed: string | null; xmp: string | null }
  | { op: 'perceptualHash'; image: Uint8Array };

export interface WorkerResults {
  splitGrid: Uint8Array[];
  trimWhitespace: Uint8Array;
  cropWhiteBorders: Uint8Array;
  randomizeStyle: StyledImage;
  applyStyle: StyledImage;
  thumbnail: Uint8Array;
  processGrid: ProcessedImage[];
  processPicture: ProcessedImage;
  /** 16 hex characters: the 64-bit difference hash. */
  perceptualHash: string;
}

/** Errors cross the thread boundary as data and are rebuilt as typed errors on the main thread. */
export type WorkerFailureKind = 'invalid-image' | 'validation' | 'error';

export type WorkerReply<T> = { ok: true; value: T } | { ok: false; kind: WorkerFailureKind; message: string; field?: string };
