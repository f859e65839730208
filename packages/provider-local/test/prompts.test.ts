import { CancelledError } from '@avatargen/core';
import { samplePersona } from '@avatargen/core/testing';
import { describe, expect, it } from 'vitest';
import { createLocalPromptProvider } from '../src/index.js';
import { FRAMINGS, LIGHTS, SETTINGS } from '../src/prompts.js';

const provider = createLocalPromptProvider();
const persona = samplePersona();

async function series(seed: string, count: number, p = persona): Promise<string[]> {
  const prompts: string[] = [];
  for (let i = 0; i < count; i++) prompts.push(await provider.nextPrompt({ persona: p, previousPrompts: prompts, seed }));
  return prompts;
}

describe('local prompts', () => {
  it('describe a setting, a framing, an activity and a light, naming the persona', async () => {
    for (const prompt of await series('task-1', 5)) {
      expect(prompt).toContain('Maria, a 34-year-old Hispanic woman');
      expect(FRAMINGS.some((f) => prompt.startsWith(f))).toBe(true);
      expect(LIGHTS.some((l) => prompt.includes(l))).toBe(true);
      expect(prompt).not.toMatch(/\{|\}|undefined/);
      expect(prompt.length).toBeLessThan(400);
    }
  });

  it('say what the offline picture is: an illustrated avatar, never a photo', async () => {
    const photographer = samplePersona({ jobTitle: 'Photographer', workplace: 'Lee Studio' });
    for (const prompt of [...(await series('task-kind', 12)), ...(await series('task-kind', 12, photographer))]) {
      expect(prompt).toContain('Illustrated avatar');
      expect(prompt).toMatch(/digital illustration/);
      expect(prompt).not.toMatch(/\bphoto\b|candid|realistic|taken on a phone/i);
    }
  });

  it('never repeat a previous prompt and cover different settings across a persona’s shots', async () => {
    const prompts = await series('task-2', 30);
    expect(new Set(prompts).size).toBe(30);
    const firstFive = prompts.slice(0, 5);
    const settings = firstFive.map((p) => SETTINGS.find((s) => p.includes(s.text))?.key ?? 'workplace');
    expect(new Set(settings).size).toBeGreaterThanOrEqual(4);
    // also when the previous prompts differ only in case or surrounding spaces
    const next = await provider.nextPrompt({ persona, previousPrompts: [], seed: 'task-3' });
    const after = await provider.nextPrompt({ persona, previousPrompts: [`  ${next.toUpperCase()} `], seed: 'task-3' });
    expect(after.toLowerCase()).not.toBe(next.toLowerCase());
  });

  it('are deterministic per seed and persona, and differ between seeds and people', async () => {
    expect(await series('task-4', 4)).toEqual(await series('task-4', 4));
    expect(await series('task-5', 4)).not.toEqual(await series('task-4', 4));
    const him = samplePersona({ firstName: 'Omar', gender: 'm', age: 52 });
    const his = await series('task-4', 4, him);
    expect(his.every((p) => p.includes('Omar, a 52-year-old Hispanic man'))).toBe(true);
    expect(his.join(' ')).not.toMatch(/\bher\b/);
  });

  it('rejects with CancelledError when aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(provider.nextPrompt({ persona, previousPrompts: [], seed: 's', signal: controller.signal })).rejects.toBeInstanceOf(
      CancelledError,
    );
  });
});
