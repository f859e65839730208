import { describe, expect, it } from 'vitest';
import { buildContainer, createLogger, definePlugin, loadConfig, MissingPortError } from '../src/index.js';
import { copyProcessor, fakeServices } from './support/fakes.js';

const base = { config: loadConfig({}), logger: createLogger({ LOG_LEVEL: 'silent' }) };

describe('plugin container', () => {
  it('names the missing ports', async () => {
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
    expect((error as Error).message).toContain('Missing ports: imageProvider, imageProcessor, objectStorage. No plugin provides them');
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

  it("gives a factory the other plugins' ports, whatever order the plugins came in", async () => {
    const fakes = fakeServices();
    const seen: unknown[] = [];
    // The image provider is provided before the storage it uses: ports are read when first needed.
    const images = definePlugin({
      name: 'images-with-storage',
      register(c) {
        c.provide('imageProvider', ({ objectStorage }, context) => {
          seen.push(objectStorage, context.logger);
          return fakes.imageProvider;
        });
      },
    });
    const rest = definePlugin({
      name: 'rest',
      register(c) {
        c.provide('personaProvider', fakes.personaProvider);
        c.provide('imagePromptProvider', fakes.imagePromptProvider);
        c.provide('imageProcessor', copyProcessor);
        c.provide('objectStorage', { marker: 'storage' } as never);
      },
    });
    const container = await buildContainer([images, rest], base);
    expect(container.resolvePort('imageProvider')).toBe(fakes.imageProvider);
    expect(container.resolvePort('imageProvider')).toBe(fakes.imageProvider); // made once
    expect(seen).toHaveLength(2);
    expect(seen[0]).toEqual({ marker: 'storage' });
  });

  it('decorates a port: later wrappers wrap earlier ones; no provider before it is a clear error', async () => {
    const fakes = fakeServices();
    const calls: string[] = [];
    const wrapper = (label: string) =>
      definePlugin({
        name: label,
        register(c) {
          c.decorate('personaProvider', (inner, { objectStorage }) => ({
            async generate(request) {
              calls.push(`${label}:${(objectStorage as unknown as { marker: string }).marker}`);
              return inner.generate(request);
            },
          }));
        },
      });
    const all = definePlugin({
      name: 'all',
      register(c) {
        c.provide('personaProvider', fakes.personaProvider);
        c.provide('imagePromptProvider', fakes.imagePromptProvider);
        c.provide('imageProvider', fakes.imageProvider);
        c.provide('imageProcessor', copyProcessor);
        c.provide('objectStorage', { marker: 's' } as never);
      },
    });
    const container = await buildContainer([all, wrapper('cache'), wrapper('costs')], base);
    const result = await container
      .resolvePort('personaProvider')
      .generate({ count: 2, description: 'x', language: { code: 'en', name: 'English' }, bioInstructions: {} as never, seed: 's' });
    expect(result.personas).toHaveLength(2);
    expect(calls).toEqual(['costs:s', 'cache:s']); // the last decoration is the outermost
    expect(fakes.calls.persona).toBe(1);
    // who fills what, for `avatargen plugins` and the settings page
    expect(container.owners.personaProvider).toEqual({ plugin: 'all', decoratedBy: ['cache', 'costs'] });
    expect(container.plugins.map((p) => [p.name, p.fills, p.decorates])).toEqual([
      ['all', ['personaProvider', 'imagePromptProvider', 'imageProvider', 'imageProcessor', 'objectStorage'], []],
      ['cache', [], ['personaProvider']],
      ['costs', [], ['personaProvider']],
    ]);

    const error = await buildContainer([wrapper('early'), all], base).catch((e: unknown) => e);
    expect((error as Error).message).toBe(
      'Plugin early decorates personaProvider, but no plugin before it provides personaProvider: list the plugin that fills personaProvider first.',
    );
  });
});
