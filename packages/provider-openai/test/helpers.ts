import { encodePng, type Rgb } from '@avatargen/core/testing';
import type { FaceSource, Gender, ReferenceFace } from '@avatargen/core';
import { type OpenAIServer, startOpenAIServer } from '../../../tests/support/openai-server.js';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { createOpenAIImageProvider, type OpenAIImageProviderOptions } from '../src/index.js';

export { startOpenAIServer, type OpenAIServer };

/** A test server for the whole file, started before its tests, reset before each, closed after. */
export function useOpenAIServer(): () => OpenAIServer {
  let server: OpenAIServer | undefined;
  beforeAll(async () => {
    server = await startOpenAIServer();
  });
  afterAll(async () => {
    await server?.close();
  });
  beforeEach(() => server?.reset());
  return () => {
    if (!server) throw new Error('the OpenAI test server is not started yet');
    return server;
  };
}

/** A provider pointed at the test server, with a short timeout so hang tests stay fast. */
export function providerFor(server: OpenAIServer, options: Partial<OpenAIImageProviderOptions> = {}) {
  return createOpenAIImageProvider({ apiKey: server.apiKey, baseURL: server.baseURL, timeoutMs: 5_000, ...options });
}

/** A small, distinct PNG per colour: faces whose bytes differ. */
export function facePng(colour: Rgb, size = 16): Buffer {
  return encodePng(size, size, (x, y) => [colour[0], (colour[1] + x * 4) % 256, (colour[2] + y * 4) % 256]);
}

/** A FaceSource over a fixed list of faces, handed out in turn; records what it was asked. */
export class ListFaceSource implements FaceSource {
  readonly asked: Array<Gender | null> = [];
  private next = 0;
  constructor(readonly faces: ReferenceFace[]) {}
  async randomFace(options: { gender: Gender | null }): Promise<ReferenceFace | null> {
    this.asked.push(options.gender);
    if (this.faces.length === 0) return null;
    const face = this.faces[this.next % this.faces.length] as ReferenceFace;
    this.next++;
    return face;
  }
}

export function threeFaces(): ReferenceFace[] {
  return [
    { key: 'female/face-1.png', contentType: 'image/png', data: facePng([200, 10, 10]) },
    { key: 'female/face-2.png', contentType: 'image/png', data: facePng([10, 200, 10]) },
    { key: 'female/face-3.png', contentType: 'image/png', data: facePng([10, 10, 200]) },
  ];
}
