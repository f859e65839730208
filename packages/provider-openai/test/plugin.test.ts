import { buildContainer, ConfigError, createLogger, loadConfig } from '@avatargen/core';
import { samplePersona } from '@avatargen/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenAIImageProvider, type OpenAIConfig, openaiPlugin, optionsFromConfig } from '../src/index.js';
import { type ChatServer, startChatServer } from '../../../tests/support/chat-server.js';
import { type OpenAIServer, startOpenAIServer } from './helpers.js';

let server: OpenAIServer;
beforeAll(async () => {
  server = await startOpenAIServer({ model: 'gpt-image-1' });
});
afterAll(async () => {
  await server.close();
});

const logger = createLogger({ LOG_LEVEL: 'silent' });

describe('openaiPlugin', () => {
  it('reads OPENAI_* and BASE_PROMPT_APPEND from the validated config and provides imageProvider', async () => {
    const config = loadConfig(
      {
        OPENAI_API_KEY: server.apiKey,
        OPENAI_BASE_URL: server.baseURL,
        OPENAI_IMAGE_MODEL: 'gpt-image-1',
        OPENAI_MODERATION: 'low',
        OPENAI_CONCURRENCY: '3',
        OPENAI_TIMEOUT_SECONDS: '45',
        BASE_PROMPT_APPEND: 'Shot on an old phone.',
      },
      [openaiPlugin()],
    );
    expect(optionsFromConfig(config as typeof config & OpenAIConfig)).toMatchObject({
      concurrency: 3,
      timeoutMs: 45_000,
      moderation: 'low',
    });
    const { resolvePort } = await buildContainer([openaiPlugin()], { config, logger }, ['imageProvider']);
    const provider = resolvePort('imageProvider');
    expect(provider).toBeInstanceOf(OpenAIImageProvider);
    expect((provider as OpenAIImageProvider).timeoutMs).toBe(45_000);

    await provider.baseImage({ persona: samplePersona(), seed: 's' });
    const request = server.requests.at(-1);
    expect(request?.problems).toEqual([]);
    expect(request?.fields).toMatchObject({ model: 'gpt-image-1', moderation: 'low' });
    expect(String(request?.fields.prompt).endsWith('\nShot on an old phone.')).toBe(true);
  });

  it('uses the defaults: gpt-image-1.5, moderation auto, 4 in flight, 600 s', () => {
    const options = optionsFromConfig(loadConfig({ OPENAI_API_KEY: 'sk-x' }, [openaiPlugin()]) as unknown as OpenAIConfig);
    expect(options).toMatchObject({
      model: 'gpt-image-1.5',
      moderation: 'auto',
      inputFidelity: 'high',
      concurrency: 4,
      timeoutMs: 600_000,
    });
    expect(options.baseURL).toBeUndefined();
    const provider = new OpenAIImageProvider(options);
    expect([provider.model, provider.moderation, provider.timeoutMs]).toEqual(['gpt-image-1.5', 'auto', 600_000]);
  });

  it('reads OPENAI_INPUT_FIDELITY (high, low, off) and refuses anything else, naming the variable', () => {
    const read = (value: string) =>
      optionsFromConfig(loadConfig({ OPENAI_API_KEY: 'sk-x', OPENAI_INPUT_FIDELITY: value }, [openaiPlugin()]) as unknown as OpenAIConfig);
    expect(['high', 'low', 'off'].map((v) => read(v).inputFidelity)).toEqual(['high', 'low', 'off']);
    expect(() => read('max')).toThrow(/OPENAI_INPUT_FIDELITY/);
  });

  it('refuses to register without OPENAI_API_KEY, naming the variable', async () => {
    const config = loadConfig({});
    await expect(buildContainer([openaiPlugin()], { config, env: {}, logger }, ['imageProvider'])).rejects.toThrow(ConfigError);
    await expect(buildContainer([openaiPlugin()], { config, env: {}, logger }, ['imageProvider'])).rejects.toThrow(
      'OPENAI_API_KEY is required (plugin @avatargen/provider-openai)',
    );
  });

  it('with text: true also fills personas and prompts from the chat model; chat URL and key default to the image ones', async () => {
    const chat = await startChatServer({ apiKey: server.apiKey });
    try {
      const env = { OPENAI_API_KEY: server.apiKey, OPENAI_BASE_URL: chat.baseURL, OPENAI_CHAT_TEMPERATURE: '0.4' };
      const plugin = openaiPlugin({ text: true });
      expect(plugin.provides).toEqual(['imageProvider', 'personaProvider', 'imagePromptProvider']);
      const built = await buildContainer([plugin], { config: loadConfig(env, [plugin]), env, logger }, ['personaProvider']);
      const batch = await built.resolvePort('personaProvider').generate({
        count: 2,
        description: 'Bakers',
        language: { code: 'en', name: 'English' },
        bioInstructions: { facebook: '', instagram: '', x: '', tiktok: '' },
        seed: 's',
      });
      expect(batch.personas).toHaveLength(2);
      expect(chat.requests[0]?.body).toMatchObject({ model: 'gpt-4.1-mini', temperature: 0.4 });
      expect(chat.requests[0]?.authorization).toBe(`Bearer ${server.apiKey}`);
    } finally {
      await chat.close();
    }
  });

  it('text only needs no image key: chat from its own server (Ollama), no Authorization sent', async () => {
    const ollama: ChatServer = await startChatServer({ apiKey: null, dialect: 'ollama', model: 'llama3.2' });
    try {
      const env = { OPENAI_CHAT_BASE_URL: ollama.baseURL, OPENAI_CHAT_MODEL: 'llama3.2' };
      const plugin = openaiPlugin({ images: false, text: true });
      expect(plugin.provides).toEqual(['personaProvider', 'imagePromptProvider']);
      const built = await buildContainer([plugin], { config: loadConfig(env, [plugin]), env, logger }, ['imagePromptProvider']);
      expect(built.hasPort('imageProvider')).toBe(false);
      const prompt = await built
        .resolvePort('imagePromptProvider')
        .nextPrompt({ persona: samplePersona(), previousPrompts: [], seed: 's' });
      expect(prompt.length).toBeGreaterThan(0);
      expect(ollama.requests.at(-1)?.authorization).toBeUndefined();
      // a bad chat variable names itself and the plugin
      const bad = { ...env, OPENAI_CHAT_OUTPUT: 'xml' };
      await expect(buildContainer([plugin], { config: loadConfig({}), env: bad, logger }, [])).rejects.toThrow(
        /OPENAI_CHAT_OUTPUT .*\(plugin @avatargen\/provider-openai\)/,
      );
    } finally {
      await ollama.close();
    }
    expect(() => openaiPlugin({ images: false })).toThrow(/would fill no port/);
  });
});
