import { describe, expect, it } from 'vitest';
import { buildContainer, createLogger, definePlugin, loadConfig, MissingPortError } from '../src/index.js';
import { copyProcessor, fakeServices } from './support/fakes.js';

const base = { config: loadConfig({}), logger: createLogger({ LOG_LEVEL: 'silent' }) };

describe('plugin container', () => {
  it('names a missing port and the packages that fill it', async () => {
    const fakes = fakeServices();
    const partial = definePlugin({
      name: 'partial',
      register(c) {
        c.provide('personaProvider', fakes.personaProvider);
        c.provide('imagePromptProvider', fakes.imagePromptProvider);
      },
    });
    const error = await buildContainer([partial], base).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MissingPortError);
    expect((error as MissingPortError).ports).toEqual(['imageProvider', 'imageProcessor', 'objectStorage']);
    expect((error as Error).message).toContain('imageProvider (filled by @avatargen/provider-openai or @avatargen/provider-local)');
    expect((error as Error).message).toContain('imageProcessor (filled by @avatargen/image-opencv)');
  });

  it('lets later registrations override earlier ones, and closes in reverse order', async () => {
    const fakes = fakeServices();
    const closed: string[] = [];
    const first = definePlugin({
      name: 'first',
      register(c) {
        c.provide('personaProvider', fakes.personaProvider);
        c.provide('imagePromptProvider', fakes.imagePromptProvider);
        c.provide('imageProvider', fakes.imageProvider);
        c.provide('imageProcessor', copyProcessor);
        c.provide('objectStorage', () => ({ marker: 'first' }) as never);
        c.onClose(() => {
          closed.push('first');
        });
      },
    });
    const replacement = { marker: 'second' };
    const second = definePlugin({
      name: 'second',
      register(c) {
        c.provide('objectStorage', replacement as never);
        c.onClose(() => {
          closed.push('second');
        });
      },
    });
    const container = await buildContainer([first, second], base);
    expect(container.resolvePort('objectStorage')).toBe(replacement);
    expect(container.resolvePort('personaProvider')).toBe(fakes.personaProvider);
    expect(container.hasPort('faceSource')).toBe(false);
    const { runClosers } = await import('../src/plugin.js');
    await runClosers(container.closers);
    expect(closed).toEqual(['second', 'first']);
  });

  it('refuses a plugin without a name or register function', () => {
    expect(() => definePlugin({ name: '', register() {} })).toThrow(/needs a name/);
    expect(() => definePlugin({ name: 'x' } as never)).toThrow(/register must be a function/);
  });
});
