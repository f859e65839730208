import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchSizes, definePlugin, ProviderError, z } from '../src/index.js';
import { errors } from './support/fakes.js';
import { type Harness, REQUEST, startHarness, waitForStatus } from './support/harness.js';

function countFiles(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;
}

describe('pipeline: a whole task', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ config: { MULTITHREAD_FLOWISE: 3 }, fakes: { personaLatencyMs: 30, gridLatencyMs: 5 } });
  });
  afterAll(() => h.close());

  it('cuts the count into batches of at most 10', () => {
    expect(batchSizes(37)).toEqual([10, 10, 10, 7]);
    expect(batchSizes(10)).toEqual([10]);
    expect(batchSizes(300)).toHaveLength(30);
  });

  it('runs personas then images to completion, with every persona and image stored once', async () => {
    const task = await h.gen.tasks.submit({ ...REQUEST, count: 37, imagesPerPersona: 8 });
    expect(task.status).not.toBe('failed');
    const done = await waitForStatus(h.gen, task.id, ['completed', 'failed']);
    expect(done.status).toBe('completed');
    expect(done.progress).toMatchObject({ personasStored: 37, imagesStored: 37 * 8, percent: 100 });
    expect(done.errorLog).toEqual([]);
    // 4 batches, 37 bases, 2 prompts and 2 grids each
    expect(h.fakes.calls.persona).toBe(4);
    expect(h.fakes.calls.base).toBe(37);
    expect(h.fakes.calls.prompt).toBe(74);
    expect(h.fakes.calls.grid).toBe(74);
    // at most MULTITHREAD_FLOWISE persona calls in flight
    expect(h.fakes.calls.maxInFlightPersona).toBeLessThanOrEqual(3);
    expect(h.fakes.calls.maxInFlightPersona).toBeGreaterThan(1);
    expect(h.fakes.calls.maxInFlightImage).toBeLessThanOrEqual(h.gen.config.IMAGE_CONCURRENCY);
    // base + 8 images per persona on disk
    expect(countFiles(h.storageRoot)).toBe(37 * 9);
    const page = await h.gen.personas.list(task.id, { page: 2, perPage: 20 });
    expect(page.total).toBe(37);
    expect(page.personas).toHaveLength(17);
    const persona = page.personas[0];
    expect(persona?.images.map((i) => i.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(persona?.prompts).toHaveLength(2);
    // keys are fixed per task, persona and image index: a run made again overwrites, never adds
    expect(persona?.images.map((i) => i.key)).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((i) => `tasks/${task.id}/${persona?.id}/${i}.png`));
    expect(persona?.baseImage?.url).toContain('/media/tasks/');
  });
});

describe('pipeline: failures', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      fakes: {
        // batch 1 of every task always fails with a retryable error, batch 2 fails once then works
        failPersona: (seed, attempt) =>
          seed.endsWith(':1') ? errors.server() : seed.endsWith(':2') && attempt === 1 ? errors.server() : null,
        // batch 0 answers 8 of 10 and nothing usable when asked again for the rest
        shapeBatch: (seed, personas) =>
          seed.endsWith(':0')
            ? [...personas.slice(0, 8), { firstName: '', lastName: 'X', gender: 'f' }]
            : /:0:rest/.test(seed)
              ? []
              : personas,
        failGrid: (seed) => (seed.includes(':fail') ? errors.auth() : null),
      },
    });
  });
  afterAll(() => h.close());

  it('keeps going with partial success, ends partial (not completed) and logs what was lost', async () => {
    const task = await h.gen.tasks.submit({ ...REQUEST, count: 30, imagesPerPersona: 4 });
    const done = await waitForStatus(h.gen, task.id, ['completed', 'partial', 'failed']);
    expect(done.status).toBe('partial');
    expect(done.progress.personasStored).toBe(18); // 8 of batch 0, none of batch 1, 10 of batch 2
    const messages = done.errorLog.map((e) => e.message).join('\n');
    expect(messages).toContain('Batch 1: 8 of 10 personas (1 rejected: firstName is empty)');
    expect(messages).toContain('Batch 2 failed: ');
    expect(messages).toContain('upstream 503');
    expect(messages).toContain('Ended with something missing: 18 of 30 personas, 72 of 120 images.');
  });

  it('keeps secrets out of the error log, even when a plugin puts one in a message', async () => {
    const secret = 'sk-test-secret-0123456789';
    // a plugin that declares its key secret: core redacts it wherever it shows up
    const keyed = definePlugin({
      name: 'keyed',
      config: z.object({ FAKE_API_KEY: z.string() }),
      secrets: ['FAKE_API_KEY'],
      register() {},
    });
    const leaky = await startHarness({
      config: { FAKE_API_KEY: secret },
      plugins: [keyed],
      fakes: { failPersona: () => ProviderError.auth('test', `rejected key ${secret}`) },
    });
    try {
      const task = await leaky.gen.tasks.submit(REQUEST);
      const done = await waitForStatus(leaky.gen, task.id, ['failed']);
      const text = JSON.stringify(done.errorLog);
      expect(text).toContain('rejected key [redacted]');
      expect(text).not.toContain(secret);
      expect(leaky.gen.redact(`page text ${secret}`)).toBe('page text [redacted]');
    } finally {
      await leaky.close();
    }
  });

  it('fails the task when every batch fails', async () => {
    const failing = await startHarness({ fakes: { failPersona: () => errors.auth() } });
    try {
      const task = await failing.gen.tasks.submit(REQUEST);
      const done = await waitForStatus(failing.gen, task.id, ['completed', 'failed']);
      expect(done.status).toBe('failed');
      expect(done.errorLog.at(-1)?.message).toContain('Every persona batch failed');
      // auth errors are not retried
      expect(failing.fakes.calls.persona).toBe(1);
    } finally {
      await failing.close();
    }
  });
});

describe('pipeline: a plugin that decorates a port', () => {
  it('asks again for the rest when a provider answers with fewer personas, and sums the token usage providers report', async () => {
    const asked: number[] = [];
    const h = await startHarness({
      plugins: [
        definePlugin({
          name: 'short-answers',
          register(c) {
            // At most 4 personas per answer, like a model that stops early; every call reports its tokens.
            c.decorate('personaProvider', (inner) => ({
              async generate(request) {
                asked.push(request.count);
                request.onUsage?.({ provider: 'test-llm', model: 'm-1', inputTokens: 100, outputTokens: 10 * request.count });
                const batch = await inner.generate(request);
                return { ...batch, personas: batch.personas.slice(0, 4) };
              },
            }));
            c.decorate('imagePromptProvider', (inner) => ({
              async nextPrompt(request) {
                request.onUsage?.({ provider: 'test-llm', model: 'm-2', inputTokens: 7, outputTokens: 3 });
                return inner.nextPrompt(request);
              },
            }));
          },
        }),
      ],
    });
    try {
      const task = await h.gen.tasks.submit({ ...REQUEST, count: 10, imagesPerPersona: 4 });
      const done = await waitForStatus(h.gen, task.id, ['completed', 'partial', 'failed']);
      expect(done.errorLog).toEqual([]);
      expect(done.status).toBe('completed');
      expect(asked).toEqual([10, 6, 2]);
      const { personas } = await h.gen.personas.list(task.id, { perPage: 10 });
      expect(new Set(personas.map((p) => p.firstName)).size).toBe(10);
      expect(personas.map((p) => p.batchIndex)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      // 3 persona calls (100 in, 10 per persona asked out), 10 prompt calls (one grid each)
      expect(done.usage).toMatchObject({
        calls: 13,
        inputTokens: 3 * 100 + 10 * 7,
        outputTokens: 10 * (10 + 6 + 2) + 10 * 3,
        byModel: [
          { provider: 'test-llm', model: 'm-1', calls: 3, inputTokens: 300, outputTokens: 180, images: 0 },
          { provider: 'test-llm', model: 'm-2', calls: 10, inputTokens: 70, outputTokens: 30, images: 0 },
        ],
      });
      expect((await h.gen.tasks.list()).tasks.find((t) => t.id === task.id)?.usage).toEqual(done.usage);
    } finally {
      await h.close();
    }
  });

  it('the pipeline uses the wrapper another plugin put around a port', async () => {
    let wrapped = 0;
    const h = await startHarness({
      plugins: [
        definePlugin({
          name: 'house-style',
          register(c) {
            c.decorate('imagePromptProvider', (inner) => ({
              async nextPrompt(request) {
                wrapped++;
                return `${await inner.nextPrompt(request)}, house style`;
              },
            }));
          },
        }),
      ],
    });
    try {
      const task = await h.gen.tasks.submit({ ...REQUEST, count: 10, imagesPerPersona: 8 });
      const done = await waitForStatus(h.gen, task.id, ['completed', 'partial', 'failed']);
      expect(done.errorLog).toEqual([]);
      expect(done.status).toBe('completed');
      const { personas } = await h.gen.personas.list(task.id, { perPage: 10 });
      const prompts = personas.flatMap((p) => p.prompts);
      expect(prompts).toHaveLength(20);
      expect(prompts.every((p) => p.endsWith(', house style'))).toBe(true);
      expect(wrapped).toBe(20);
    } finally {
      await h.close();
    }
  });
});
