import { baseImageWithFaces, type FaceFlag, ProviderError } from '@avatargen/core';
import { makeBorderedPng, samplePersona } from '@avatargen/core/testing';
import { describe, expect, it } from 'vitest';
import { ListFaceSource, providerFor, threeFaces, useOpenAIServer } from './helpers.js';

// The core owns the retry-with-another-face loop; these tests run it with this provider against
// the test server, so moderation blocks travel the real wire format end to end.
const persona = samplePersona();

const server = useOpenAIServer();

describe('base image with reference faces (baseImageWithFaces + provider-openai)', () => {
  it('moderation block on the first face, then success with a second face', async () => {
    const faces = threeFaces();
    const source = new ListFaceSource(faces);
    const made = makeBorderedPng({ width: 24, height: 24, border: 2 });
    server().enqueue(
      { kind: 'moderation-block', endpoint: 'edits', violations: ['sexual'] },
      { kind: 'image', endpoint: 'edits', image: made },
    );
    const flags: FaceFlag[] = [];
    const result = await baseImageWithFaces({
      imageProvider: providerFor(server()),
      faceSource: source,
      persona,
      seed: 's',
      genderLock: true,
      onFlag: (flag) => {
        flags.push(flag);
      },
    });

    expect(result.faceKey).toBe('female/face-2.png');
    expect(Buffer.from(result.image.data).equals(made)).toBe(true);
    expect(flags).toHaveLength(1);
    expect(flags[0]?.faceKey).toBe('female/face-1.png');
    expect(flags[0]?.reason).toMatch(/safety_violations=\[sexual\]/);
    expect(source.asked).toEqual(['f', 'f']);
    expect(server().requests.map((r) => r.endpoint)).toEqual(['edits', 'edits']);
    expect(server().requests[0]?.files[0]?.bytes.equals(faces[0]?.data as Buffer)).toBe(true);
    expect(server().requests[1]?.files[0]?.bytes.equals(faces[1]?.data as Buffer)).toBe(true);
    expect(server().requests.every((r) => r.problems.length === 0)).toBe(true);
  });

  it('three blocks in a row: three flags, then text-to-image', async () => {
    const source = new ListFaceSource(threeFaces());
    server().enqueue(
      { kind: 'moderation-block', endpoint: 'edits' },
      { kind: 'safety-message', endpoint: 'edits' },
      { kind: 'moderation-block', endpoint: 'edits', violations: ['violence'] },
    );
    const flags: FaceFlag[] = [];
    const result = await baseImageWithFaces({
      imageProvider: providerFor(server()),
      faceSource: source,
      persona,
      seed: 's',
      genderLock: false,
      onFlag: (flag) => {
        flags.push(flag);
      },
    });

    expect(result.faceKey).toBeNull();
    expect(flags.map((f) => f.faceKey)).toEqual(['female/face-1.png', 'female/face-2.png', 'female/face-3.png']);
    expect(flags[2]?.reason).toMatch(/violence/);
    expect(source.asked).toEqual([null, null, null]);
    expect(server().requests.map((r) => r.endpoint)).toEqual(['edits', 'edits', 'edits', 'generations']);
    // The fallback is a plain text-to-image call: no face prompt, no file.
    expect(String(server().requests[3]?.fields.prompt)).not.toMatch(/facial anatomy/);
    expect(server().pending()).toBe(0);
  });

  it('a failing face source falls back to text-to-image', async () => {
    const problems: string[] = [];
    const result = await baseImageWithFaces({
      imageProvider: providerFor(server()),
      faceSource: {
        randomFace: async () => {
          throw new Error('bucket unreachable');
        },
      },
      persona,
      seed: 's',
      genderLock: true,
      onFaceSourceProblem: (message) => problems.push(message),
    });
    expect(result.faceKey).toBeNull();
    expect(problems[0]).toMatch(/bucket unreachable/);
    expect(server().requests.map((r) => r.endpoint)).toEqual(['generations']);
  });

  it('an error that is not a moderation block is not flagged and reaches the caller', async () => {
    server().enqueue({ kind: 'server-error', endpoint: 'edits' });
    const flags: FaceFlag[] = [];
    const call = baseImageWithFaces({
      imageProvider: providerFor(server()),
      faceSource: new ListFaceSource(threeFaces()),
      persona,
      seed: 's',
      genderLock: true,
      onFlag: (flag) => {
        flags.push(flag);
      },
    });
    await expect(call).rejects.toBeInstanceOf(ProviderError);
    expect(flags).toEqual([]);
    expect(server().requests).toHaveLength(1);
  });
});
