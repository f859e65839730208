import {
  type AvatarGenPlugin,
  buildContainer,
  CancelledError,
  ConfigError,
  createLogger,
  type EncodedImage,
  InvalidImageError,
  loadConfig,
  ProviderError,
  secretVariables,
  ValidationError,
} from '@avatargen/core';
import { describeImageProviderContract, makeBorderedPng, samplePersona } from '@avatargen/core/testing';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import painterPluginDefault, {
  baseScene,
  crc32,
  createPainterImageProvider,
  encodePng,
  faceOf,
  PLUGIN_NAME,
  painterPlugin,
  paint,
  SOFTWARE,
} from '../src/index.js';

const TOKEN = 'pt_example_token_0123456789';
const persona = samplePersona();
const other = samplePersona({ firstName: 'Ingrid', lastName: 'Solberg', gender: 'f', age: 61, ethnicity: 'Norwegian' });

// The suite every ImageProvider must pass: a valid base image, four different separate pictures,
// CancelledError on an aborted signal.
describeImageProviderContract('painter (examples/image-provider-plugin)', {
  create: () => createPainterImageProvider({ token: TOKEN, size: 128 }),
});

const provider = createPainterImageProvider({ token: TOKEN, size: 192 });
const bytes = (image: EncodedImage) => Buffer.from(image.data);

async function decode(image: EncodedImage) {
  const { data, info } = await sharp(image.data).raw().toBuffer({ resolveWithObject: true });
  return { pixels: data, width: info.width, height: info.height, channels: info.channels };
}

async function picturesOf(seed: string, count = 4, p = persona) {
  const base = await provider.baseImage({ persona: p, seed });
  const answer = await provider.pictures({ persona: p, base, prompt: 'at a cafe, morning light', count, seed });
  if (answer.kind !== 'images') throw new Error('expected separate images');
  return { base, images: answer.images };
}

describe('PNG encoder', () => {
  it('computes the standard CRC-32', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(Buffer.from('1234'), Buffer.from('56789'))).toBe(0xcbf43926);
  });

  it('writes PNGs that sharp (libpng) decodes to the same pixels', async () => {
    const image = paint(faceOf(persona), baseScene(faceOf(persona), 'x'), 130, 'stripes');
    const png = encodePng(image, { Software: SOFTWARE });
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.includes(Buffer.from(`Software\0${SOFTWARE}`, 'latin1'))).toBe(true);
    const decoded = await decode({ data: png, contentType: 'image/png' });
    expect(decoded).toMatchObject({ width: 130, height: 130, channels: 3 });
    expect(Buffer.from(decoded.pixels).equals(Buffer.from(image.pixels))).toBe(true);
  });
});

describe('painter image provider', () => {
  it('is deterministic: the same seed and persona give the same bytes', async () => {
    const a = await picturesOf('task-1:persona-1');
    const b = await picturesOf('task-1:persona-1');
    expect(bytes(a.base).equals(bytes(b.base))).toBe(true);
    expect(a.images.map(bytes)).toEqual(b.images.map(bytes));
  });

  it('paints another picture for another seed or another persona', async () => {
    const a = await picturesOf('seed-a');
    const b = await picturesOf('seed-b');
    const c = await picturesOf('seed-a', 4, other);
    expect(bytes(a.base).equals(bytes(b.base))).toBe(false);
    expect(bytes(a.base).equals(bytes(c.base))).toBe(false);
    for (let i = 0; i < 4; i++) {
      expect(bytes(a.images[i] as EncodedImage).equals(bytes(b.images[i] as EncodedImage))).toBe(false);
      expect(bytes(a.images[i] as EncodedImage).equals(bytes(c.images[i] as EncodedImage))).toBe(false);
    }
  });

  it('paints valid PNGs of the configured size with no white pixel, which sharp decodes', async () => {
    const { base, images } = await picturesOf('sizes');
    for (const image of [base, ...images]) {
      expect(image.contentType).toBe('image/png');
      const { pixels, width, height, channels } = await decode(image);
      expect({ width, height, channels }).toEqual({ width: 192, height: 192, channels: 3 });
      // nothing an image processor would trim or crop as a white border
      let white = 0;
      for (let o = 0; o < pixels.length; o += 3) {
        if ((pixels[o] as number) >= 220 && (pixels[o + 1] as number) >= 220 && (pixels[o + 2] as number) >= 220) white++;
      }
      expect(white).toBe(0);
    }
  });

  it('shows the same person in every picture: the persona skin colour, on different backgrounds', async () => {
    const { images } = await picturesOf('same-person');
    const skin = faceOf(persona).skin;
    const corners = new Set<string>();
    for (const image of images) {
      const { pixels } = await decode(image);
      let skinPixels = 0;
      for (let o = 0; o < pixels.length; o += 3) {
        if (pixels[o] === skin[0] && pixels[o + 1] === skin[1] && pixels[o + 2] === skin[2]) skinPixels++;
      }
      expect(skinPixels).toBeGreaterThan(500);
      corners.add(`${pixels[0]},${pixels[1]},${pixels[2]}`);
    }
    expect(corners.size).toBe(4);
  });

  it('paints stripes when asked', async () => {
    const flat = await createPainterImageProvider({ token: TOKEN, size: 128, style: 'flat' }).baseImage({ persona, seed: 's' });
    const stripes = await createPainterImageProvider({ token: TOKEN, size: 128, style: 'stripes' }).baseImage({ persona, seed: 's' });
    const top = async (image: EncodedImage) => {
      const { pixels } = await decode(image);
      return new Set(Array.from({ length: 128 }, (_, x) => `${pixels[x * 3]},${pixels[x * 3 + 1]},${pixels[x * 3 + 2]}`)).size;
    };
    expect(await top(flat)).toBe(1);
    expect(await top(stripes)).toBe(2);
  });

  it('honours count', async () => {
    const base = await provider.baseImage({ persona, seed: 'count' });
    for (const count of [1, 4, 7]) {
      const answer = await provider.pictures({ persona, base, prompt: 'p', count, seed: 'count' });
      expect(answer.kind === 'images' && answer.images.length).toBe(count);
    }
    for (const count of [0, 17, 2.5]) {
      await expect(provider.pictures({ persona, base, prompt: 'p', count, seed: 'count' })).rejects.toBeInstanceOf(ValidationError);
    }
  });

  it('refuses a base that is not the image it claims to be', async () => {
    const base = { data: makeBorderedPng(), contentType: 'image/jpeg' };
    await expect(provider.pictures({ persona, base, prompt: 'p', count: 4, seed: 's' })).rejects.toBeInstanceOf(InvalidImageError);
  });

  it('stops with CancelledError when the signal fires during a call', async () => {
    const slow = createPainterImageProvider({ token: TOKEN, size: 128, delayMs: 200 });
    const base = { data: makeBorderedPng(), contentType: 'image/png' };
    const controller = new AbortController();
    const started = Date.now();
    const call = slow.pictures({ persona, base, prompt: 'p', count: 4, seed: 's', signal: controller.signal });
    setTimeout(() => controller.abort(), 250);
    await expect(call).rejects.toBeInstanceOf(CancelledError);
    expect(Date.now() - started).toBeLessThan(600); // not the 800 ms of four pictures
    const again = new AbortController();
    const baseCall = slow.baseImage({ persona, seed: 's', signal: again.signal });
    again.abort();
    await expect(baseCall).rejects.toBeInstanceOf(CancelledError);
  });

  it('answers a bad token as the service would: an auth error, not retried, without the token', async () => {
    const refused = createPainterImageProvider({ token: 'pt_short' });
    const error = await refused.baseImage({ persona, seed: 's' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({ kind: 'auth', retryable: false });
    expect((error as Error).message).not.toContain('pt_short');
  });

  it('refuses bad options with a ConfigError naming them', () => {
    expect(() => createPainterImageProvider({ token: TOKEN, size: 64 })).toThrow(/size must be a whole number from 128 to 1024/);
    expect(() => createPainterImageProvider({ token: TOKEN, delayMs: -1 })).toThrow(ConfigError);
  });
});

describe('painter plugin', () => {
  const env = (extra: Record<string, string>) => ({ LOG_LEVEL: 'info', ...extra });

  // As a host does: core's and the plugin's variables validated together, so the logger knows the
  // plugin's secrets; buildContainer reads the variables' status from the raw environment.
  async function load(plugin: AvatarGenPlugin, vars: Record<string, string>) {
    const config = loadConfig(env(vars), [plugin]);
    const lines: string[] = [];
    const logger = createLogger(config, { write: (line: string) => void lines.push(line) }, secretVariables([plugin]));
    const container = await buildContainer([plugin], { config, logger, env: env(vars) }, ['imageProvider']);
    return { container, lines, config };
  }

  it('is the default export, a factory; named after its package; fills imageProvider only', () => {
    expect(painterPluginDefault).toBe(painterPlugin);
    const plugin = painterPlugin();
    expect(plugin.name).toBe(PLUGIN_NAME);
    expect(plugin.provides).toEqual(['imageProvider']);
    expect(plugin.secrets).toEqual(['PAINTER_API_TOKEN']);
    expect(Object.keys(plugin.config?.shape ?? {})).toEqual(['PAINTER_API_TOKEN', 'PAINTER_SIZE', 'PAINTER_STYLE']);
  });

  it('registers with its variables, logs style and size, never the token', async () => {
    const { container, lines } = await load(painterPlugin(), { PAINTER_API_TOKEN: TOKEN, PAINTER_SIZE: '256', PAINTER_STYLE: 'stripes' });
    expect(container.plugins.map((p) => [p.name, p.fills])).toEqual([[PLUGIN_NAME, ['imageProvider']]]);
    const image = await container.resolvePort('imageProvider').baseImage({ persona, seed: 's' });
    expect((await sharp(image.data).metadata()).width).toBe(256);
    const info = lines.map((line) => JSON.parse(line) as { msg: string; plugin?: string; style?: string; size?: number });
    expect(info).toContainEqual(expect.objectContaining({ plugin: PLUGIN_NAME, style: 'stripes', size: 256 }));
    expect(lines.join('\n')).not.toContain(TOKEN);
  });

  it('fills in the defaults: 384 px, flat', async () => {
    const { container } = await load(painterPlugin(), { PAINTER_API_TOKEN: TOKEN });
    const report = container.plugins[0]?.variables.map((v) => [v.name, v.status, v.secret, v.value]);
    expect(report).toEqual([
      ['PAINTER_API_TOKEN', 'set', true, undefined],
      ['PAINTER_SIZE', 'defaulted', false, 384],
      ['PAINTER_STYLE', 'defaulted', false, 'flat'],
    ]);
    const image = await container.resolvePort('imageProvider').baseImage({ persona, seed: 's' });
    expect((await sharp(image.data).metadata()).width).toBe(384);
  });

  it.each([
    ['a missing token', {}, /PAINTER_API_TOKEN is required \(plugin @acme\/avatargen-painter\)/],
    [
      'a token of the wrong shape',
      { PAINTER_API_TOKEN: 'sk-not-a-painter-token' },
      /PAINTER_API_TOKEN must be a Painter API token.*\(plugin @acme\/avatargen-painter\)/,
    ],
    [
      'a size out of range',
      { PAINTER_API_TOKEN: TOKEN, PAINTER_SIZE: '2000' },
      /PAINTER_SIZE must be a whole number from 128 to 1024 \(plugin @acme\/avatargen-painter\)/,
    ],
    [
      'an unknown style',
      { PAINTER_API_TOKEN: TOKEN, PAINTER_STYLE: 'cubist' },
      /PAINTER_STYLE must be one of flat, stripes \(plugin @acme\/avatargen-painter\)/,
    ],
  ])('refuses %s with an error naming the variable and the plugin, never the value', async (_what, vars, message) => {
    const error = (() => {
      try {
        loadConfig(env(vars), [painterPlugin()]);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(message);
    if ('PAINTER_API_TOKEN' in vars) expect((error as Error).message).not.toContain(vars.PAINTER_API_TOKEN);
    // buildContainer checks them too, before any plugin registers
    const config = loadConfig({ LOG_LEVEL: 'silent' });
    await expect(buildContainer([painterPlugin()], { config, logger: createLogger(config), env: env(vars) }, [])).rejects.toThrow(message);
  });
});
