import { DEFAULT_BIO_PROMPTS, type PersonaData, type Platform } from '@avatargen/core';
import { describe, expect, it } from 'vitest';
import { BIO_LIMITS, createLocalPersonaProvider, readBioInstructions } from '../src/index.js';

const provider = createLocalPersonaProvider();
const EMOJI = /\p{Extended_Pictographic}/u;

async function bios(platform: Platform, instruction: string, code = 'en', count = 40): Promise<string[]> {
  const { personas } = await provider.generate({
    count,
    description: 'people who like music',
    language: { code, name: code },
    bioInstructions: { ...DEFAULT_BIO_PROMPTS, [platform]: instruction },
    seed: 'bio-rules',
  });
  return personas.map((p: PersonaData) => p.bios[platform]);
}

describe('reading bio instructions', () => {
  const table: Array<[string, Partial<ReturnType<typeof readBioInstructions>>]> = [
    ['Short and sunny', { length: 'short', cheerful: true, emoji: 'keep' }],
    ['max 150 characters', { maxChars: 150 }],
    ['at most 40 characters, use emojis', { maxChars: 40, emoji: 'always' }],
    ['under 60 chars', { maxChars: 59 }],
    ['höchstens 100 Zeichen, keine Emojis', { maxChars: 100, emoji: 'none' }],
    ['até 90 caracteres, sem emojis', { maxChars: 90, emoji: 'none' }],
    ['no more than 12 words', { maxWords: 12 }],
    ['no hashtags', { hashtags: 'none' }],
    ['add a couple of hashtags', { hashtags: 'always' }],
    ['use hashtags and emoji', { hashtags: 'always' }],
    ['professional tone', { formal: true, emoji: 'none' }],
    ['professional, with emoji', { formal: true, emoji: 'always' }],
    ['all lowercase', { lowercase: true }],
    ['very short', { length: 'veryShort' }],
    ['short lines, a few emoji allowed', { length: 'normal', emoji: 'keep' }],
    ['write like Shakespeare', { length: 'normal', emoji: 'keep', hashtags: 'keep', cheerful: false, formal: false, lowercase: false }],
    [DEFAULT_BIO_PROMPTS.x, { maxChars: 160, hashtags: 'none' }],
    [DEFAULT_BIO_PROMPTS.tiktok, { maxChars: 80, length: 'veryShort', emoji: 'keep' }],
  ];
  it.each(table)('%s → %j', (instruction, expected) => {
    expect(readBioInstructions(instruction)).toMatchObject(expected);
  });
});

describe('bio instructions take effect offline', () => {
  it('"max 40 characters" keeps every X bio within 40', async () => {
    const list = await bios('x', 'max 40 characters');
    for (const bio of list) expect([...bio].length, bio).toBeLessThanOrEqual(40);
    const plain = await bios('x', DEFAULT_BIO_PROMPTS.x);
    expect(plain.some((bio) => [...bio].length > 40)).toBe(true);
  });

  it('"Short and sunny" gives short Instagram bios with a cheerful line', async () => {
    for (const bio of await bios('instagram', 'Short and sunny')) {
      expect([...bio].length, bio).toBeLessThanOrEqual(Math.round(BIO_LIMITS.instagram * 0.6));
      expect(bio).toContain('sunny side');
    }
    for (const bio of await bios('instagram', 'Kurz und fröhlich', 'de')) expect(bio).toContain('gut gelaunt');
  });

  it('"no emoji" removes them, "use emojis" adds one', async () => {
    for (const bio of await bios('instagram', 'no emoji')) expect(bio).not.toMatch(EMOJI);
    for (const bio of await bios('facebook', 'Friendly, use emojis')) expect(bio).toMatch(EMOJI);
    expect((await bios('instagram', DEFAULT_BIO_PROMPTS.instagram)).some((bio) => EMOJI.test(bio))).toBe(true);
    expect((await bios('facebook', DEFAULT_BIO_PROMPTS.facebook)).every((bio) => !EMOJI.test(bio))).toBe(true);
  });

  it('"use hashtags" adds hashtags from the hobbies, "no hashtags" leaves none', async () => {
    for (const bio of await bios('tiktok', 'use hashtags')) expect(bio).toMatch(/#\p{L}+/u);
    for (const bio of await bios('x', 'no hashtags')) expect(bio).not.toMatch(/#/);
  });

  it('"max 8 words" and "all lowercase"', async () => {
    for (const bio of await bios('facebook', 'max 8 words')) expect(bio.split(/\s+/).length, bio).toBeLessThanOrEqual(8);
    for (const bio of await bios('x', 'all lowercase')) expect(bio).toBe(bio.toLowerCase());
  });

  it('ignores what it does not understand: the same bios as with no instruction', async () => {
    expect(await bios('facebook', 'write like Shakespeare')).toEqual(await bios('facebook', ''));
  });
});
