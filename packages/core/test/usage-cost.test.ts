import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { definePlugin, estimateCost, settingsSchema, type TaskView } from '../src/index.js';
import { createHash } from 'node:crypto';
import { errors } from './support/fakes.js';
import { readAll, unzip } from './support/zip.js';
import { type Harness, REQUEST, startHarness, waitForStatus } from './support/harness.js';

describe('cost arithmetic', () => {
  const prices = [
    { provider: 'openai', model: 'gpt-4.1-mini', unit: 'input_token' as const, price: 0.4 },
    { provider: 'openai', model: 'gpt-4.1-mini', unit: 'output_token' as const, price: 1.6 },
    { provider: 'openai', model: 'gpt-image-1', unit: 'image' as const, price: 0.04 },
  ];

  it('sums tokens × price per million and images × price per image', () => {
    const cost = estimateCost(
      [
        { provider: 'openai', model: 'gpt-4.1-mini', inputTokens: 250_000, outputTokens: 125_000, images: 0 },
        { provider: 'openai', model: 'gpt-image-1', inputTokens: 0, outputTokens: 0, images: 37 },
      ],
      prices,
      'EUR',
    );
    // 0.25 × 0.4 + 0.125 × 1.6 + 37 × 0.04
    expect(cost).toEqual({ currency: 'EUR', amount: 0.1 + 0.2 + 1.48, complete: true });
  });

  it('is incomplete when a model with usage has no price, and complete with no usage at all', () => {
    const usage = [
      { provider: 'openai', model: 'gpt-image-1', inputTokens: 0, outputTokens: 0, images: 2 },
      { provider: 'flowise', model: 'unknown', inputTokens: 10, outputTokens: 0, images: 0 },
    ];
    expect(estimateCost(usage, prices, 'USD')).toEqual({ currency: 'USD', amount: 0.08, complete: false });
    expect(estimateCost(usage, [], 'USD')).toEqual({ currency: 'USD', amount: 0, complete: false });
    expect(estimateCost([], [], 'USD')).toEqual({ currency: 'USD', amount: 0, complete: true });
  });

  it('reads the settings price table from lines, and names what is wrong', () => {
    const parsed = settingsSchema.parse({ prices: '# text\nopenai gpt-image-1 image 0.04\n\nlocal dicebear image 0', currency: 'eur' });
    expect(parsed.prices).toEqual([
      { provider: 'openai', model: 'gpt-image-1', unit: 'image', price: 0.04 },
      { provider: 'local', model: 'dicebear', unit: 'image', price: 0 },
    ]);
    expect(parsed.currency).toBe('EUR');
    expect(settingsSchema.parse({}).prices).toEqual([]);
    const message = (input: Record<string, unknown>) => {
      const result = settingsSchema.safeParse(input);
      expect(result.success).toBe(false);
      return result.error?.issues.map((i) => `${String(i.path[0])}: ${i.message}`).join(' | ');
    };
    expect(message({ prices: 'openai gpt-image-1 0.04' })).toMatch(/^prices: Line 1: write "provider model unit price"/);
    expect(message({ prices: 'openai gpt-image-1 picture 0.04' })).toMatch(/^prices: The unit is one of input_token, output_token, image/);
    expect(message({ prices: 'openai gpt-image-1 image -1' })).toMatch(/^prices: The price is a number/);
    expect(message({ prices: 'a b image 1\na b image 2' })).toMatch(/priced twice/);
    expect(message({ currency: 'euro' })).toMatch(/^currency: Enter a three-letter currency code/);
  });
});

describe('usage per task, against the database', () => {
  let h: Harness;
  let done: TaskView;
  let firstGrid = true;
  let firstBase = true;
  beforeAll(async () => {
    h = await startHarness({
      fakes: {
        // the first answer holds one persona that cannot be used; the one asked again for is fine
        shapeBatch: (seed, personas) =>
          seed.endsWith(':0') ? [...personas.slice(0, 9), { firstName: '', lastName: 'X', gender: 'f' }] : personas,
        // the first base selfie fails once (a retry), the first picture request is blocked (a moderation block)
        failBase: () => {
          if (!firstBase) return null;
          firstBase = false;
          return errors.server();
        },
        failGrid: () => {
          if (!firstGrid) return null;
          firstGrid = false;
          return errors.moderation();
        },
      },
      plugins: [
        definePlugin({
          name: 'reports-usage',
          register(c) {
            c.decorate('personaProvider', (inner) => ({
              async generate(request) {
                request.onUsage?.({ provider: 'test-llm', model: 'm-1', inputTokens: 1000, outputTokens: 500 });
                return inner.generate(request);
              },
            }));
            c.decorate('imageProvider', (inner) => ({
              async baseImage(request) {
                const image = await inner.baseImage(request);
                request.onUsage?.({ provider: 'test-img', model: 'img-1', inputTokens: 0, outputTokens: 0, images: 1 });
                return image;
              },
              async pictures(request) {
                const pictures = await inner.pictures(request);
                request.onUsage?.({ provider: 'test-img', model: 'img-1', inputTokens: 0, outputTokens: 0, images: request.count });
                return pictures;
              },
            }));
          },
        }),
      ],
    });
    await h.gen.settings.update({
      prices: 'test-img img-1 image 0.04\ntest-llm m-1 input_token 2\ntest-llm m-1 output_token 8',
      currency: 'eur',
    });
    const task = await h.gen.tasks.submit({ ...REQUEST, count: 10, imagesPerPersona: 4 });
    done = await waitForStatus(h.gen, task.id, ['completed', 'partial', 'failed']);
  });
  afterAll(() => h.close());

  it('counts calls, images requested and made, rejected personas, retries and moderation blocks', async () => {
    const em = h.gen.orm.em.fork();
    const [db] = (await em.execute(
      `select (select coalesce(sum(rejected), 0)::int from persona_batches where task_id = ?) as rejected,
              (select count(*)::int from personas where task_id = ?) as personas,
              (select count(*)::int from personas where task_id = ? and base_image_key is not null) as bases,
              (select count(*)::int from persona_images where task_id = ?) as images,
              (select coalesce(sum(calls), 0)::int from task_usage where task_id = ?) as calls`,
      [done.id, done.id, done.id, done.id, done.id],
    )) as Array<{ rejected: number; personas: number; bases: number; images: number; calls: number }>;
    if (!db) throw new Error('no row');
    expect(done.status).toBe('partial');
    expect(db).toEqual({ rejected: 1, personas: 10, bases: 10, images: 36, calls: 2 + 19 });
    expect(done.usage).toMatchObject({
      calls: db.calls,
      rejectedPersonas: db.rejected,
      // 11 base requests (one retried) + 10 picture requests of 4
      imagesRequested: 11 + 40,
      imagesMade: db.bases + db.images,
      retries: 1,
      moderationBlocks: 1,
    });
    expect(done.usage.byModel).toEqual([
      { provider: 'test-img', model: 'img-1', calls: 19, inputTokens: 0, outputTokens: 0, images: 46 },
      { provider: 'test-llm', model: 'm-1', calls: 2, inputTokens: 2000, outputTokens: 1000, images: 0 },
    ]);
    expect(done.plugins).toMatchObject({
      personaProvider: 'test-services',
      imageProvider: 'test-services',
      objectStorage: 'test-services',
    });
  });

  it('prices the usage with the settings price table', async () => {
    // 46 images × 0.04 + 2000 × 2 / 1e6 + 1000 × 8 / 1e6
    expect(done.cost).toEqual({ currency: 'EUR', amount: 1.852, complete: true });
    await h.gen.settings.update({ prices: 'test-img img-1 image 0.05' });
    const again = await h.gen.tasks.get(done.id);
    expect(again.cost).toEqual({ currency: 'EUR', amount: 2.3, complete: false });
  });

  it('the dataset card holds the figures the database has, in the ZIP, the JSON export and from card()', async () => {
    const em = h.gen.orm.em.fork();
    const [db] = (await em.execute(
      `select (select count(*)::int from personas where task_id = ?) as personas,
              (select count(*)::int from persona_images where task_id = ?) as images,
              (select coalesce(sum(rejected), 0)::int from persona_batches where task_id = ?) as rejected,
              (select count(*) filter (where gender = 'f')::int from personas where task_id = ?) as f,
              (select count(*) filter (where age between 25 and 34)::int from personas where task_id = ?) as age25,
              (select retries from task_counters where task_id = ?) as retries,
              (select moderation_blocks from task_counters where task_id = ?) as blocks`,
      [done.id, done.id, done.id, done.id, done.id, done.id, done.id],
    )) as Array<{ personas: number; images: number; rejected: number; f: number; age25: number; retries: number; blocks: number }>;
    if (!db) throw new Error('no row');
    const card = await h.gen.exports.card(done.id);
    expect(card.counts).toEqual({
      personas: db.personas,
      images: db.images,
      rejectedPersonas: db.rejected,
      retries: db.retries,
      moderationBlocks: db.blocks,
      imagesRequested: 51,
      providerCalls: 21,
    });
    expect(db).toMatchObject({ personas: 10, images: 36, rejected: 1, retries: 1, blocks: 1 });
    expect(card.request).toEqual({
      description: REQUEST.description,
      language: { code: 'en', name: 'English' },
      count: 10,
      imagesPerPersona: 4,
    });
    expect(card.demographics.gender.f).toBe(db.f);
    expect(card.demographics.ageBands.find((b) => b.band === '25-34')?.count ?? 0).toBe(db.age25);
    expect(card.demographics.ageBands.reduce((sum, b) => sum + b.count, 0)).toBe(db.personas);
    expect(card.plugins?.imageProvider).toBe('test-services');
    expect(card.models.map((m) => `${m.provider}/${m.model}`)).toEqual(['test-img/img-1', 'test-llm/m-1']);
    expect(card.generation).not.toHaveProperty('currency'); // the site's prices stay out of the card
    expect(card.startedAt).not.toBeNull();
    expect(card.finishedAt).not.toBeNull();
    expect(card.statement).toMatch(/fictional.*AI-generated/s);

    const json = await h.gen.exports.json(done.id);
    expect(JSON.parse(JSON.stringify(json.dataset))).toEqual(JSON.parse(JSON.stringify(card)));

    const files = await unzip(await readAll(await h.gen.exports.zip(done.id)));
    const markdown = files.get('DATASET.md')?.toString('utf8') ?? '';
    expect(JSON.parse(files.get('dataset.json')?.toString('utf8') ?? 'null')).toEqual(JSON.parse(JSON.stringify(card)));
    expect(markdown).toContain(`- Personas: ${db.personas}`);
    expect(markdown).toContain(`- Rejected personas: ${db.rejected}`);
    expect(markdown).toContain(`- Retries: ${db.retries}`);
    expect(markdown).toContain(`- Moderation blocks: ${db.blocks}`);
    expect(markdown).toContain('- imageProvider: test-services');
    expect(markdown).toContain('Every person in this dataset is fictional');
    const manifest = JSON.parse(files.get('manifest.json')?.toString('utf8') ?? '{}') as {
      files: Array<{ path: string; size: number; sha256: string }>;
    };
    for (const name of ['DATASET.md', 'dataset.json']) {
      const data = files.get(name) as Buffer;
      expect(manifest.files.find((f) => f.path === name)).toEqual({
        path: name,
        size: data.length,
        sha256: createHash('sha256').update(data).digest('hex'),
      });
    }
  });
});
