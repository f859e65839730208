import { buildContainer, createLogger, loadConfig } from '@avatargen/core';
import {
  describeImagePromptProviderContract,
  describeImageProviderContract,
  describePersonaProviderContract,
} from '@avatargen/core/testing';
import { describe, expect, it } from 'vitest';
import { createLocalProviders, localPlugin } from '../src/index.js';

describePersonaProviderContract('provider-local', { create: () => createLocalProviders().personas });
describeImagePromptProviderContract('provider-local', { create: () => createLocalProviders().prompts });
describeImageProviderContract('provider-local', { create: () => createLocalProviders({ imageSize: 64 }).images });

describe('localPlugin', () => {
  it('fills the persona, prompt and image ports', async () => {
    const config = loadConfig({ LOG_LEVEL: 'silent' });
    const built = await buildContainer([localPlugin({ imageSize: 64 })], { config, logger: createLogger(config) }, [
      'personaProvider',
      'imagePromptProvider',
      'imageProvider',
    ]);
    expect(localPlugin().provides).toEqual(['personaProvider', 'imagePromptProvider', 'imageProvider']);
    const persona = built.resolvePort('personaProvider');
    const batch = await persona.generate({
      count: 2,
      description: 'anyone',
      language: { code: 'en', name: 'English' },
      bioInstructions: { facebook: '', instagram: '', x: '', tiktok: '' },
      seed: 'plugin',
    });
    expect(batch.personas).toHaveLength(2);
    const first = batch.personas[0];
    if (!first) throw new Error('no persona');
    const prompt = await built.resolvePort('imagePromptProvider').nextPrompt({ persona: first, previousPrompts: [], seed: 'p' });
    expect(prompt.length).toBeGreaterThan(20);
    const image = await built.resolvePort('imageProvider').baseImage({ persona: first, seed: 'p' });
    expect(image.contentType).toBe('image/png');
  });
});
