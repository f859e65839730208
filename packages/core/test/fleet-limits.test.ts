import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetLimiter, LIMIT_HEADROOM, openDatabase, type Orm, runMigrations, SettingsService, ValidationError } from '../src/index.js';
import { createTestDatabase, type TestDatabase } from '../src/testing.js';

/**
 * Fleet-wide provider limits held in PostgreSQL (issue 22). Two limiters on two connections pools
 * stand for two worker processes: they share one budget, calls in flight are exact across them,
 * and a pause one of them records holds the other too.
 */
let db: TestDatabase;
let orms: Orm[] = [];
let settings: SettingsService;
const log = pino({ level: 'silent' });

beforeAll(async () => {
  db = await createTestDatabase();
  orms = [await openDatabase({ url: db.url }), await openDatabase({ url: db.url })];
  await runMigrations(orms[0] as Orm, db.url);
  settings = new SettingsService(orms[0] as Orm);
});
afterAll(async () => {
  for (const orm of orms) await orm.close();
  await db.drop();
});

const fleet = () => orms.map((orm) => new FleetLimiter(orm, new SettingsService(orm), log));
const rows = async () => (orms[0] as Orm).em.fork().execute('select key, in_flight from provider_budgets order by key');

describe('fleet limits', () => {
  it('settings take rules, one per provider and model, each with a limit', async () => {
    await expect(settings.update({ provider_limits: [{ provider: 'openai' }] })).rejects.toThrow(ValidationError);
    await expect(
      settings.update({
        provider_limits: [
          { provider: 'openai', images_per_minute: 5 },
          { provider: 'openai', images_per_minute: 6 },
        ],
      }),
    ).rejects.toThrow(ValidationError);
    await expect(settings.update({ provider_limits: [{ provider: 'openai', images_per_minute: 0 }] })).rejects.toThrow(ValidationError);
    await expect(settings.update({ provider_limits: [{ provider: 'openai', rpm: 5 }] })).rejects.toThrow(ValidationError);
    expect((await settings.get()).provider_limits).toEqual([]);
  });

  it('costs nothing without a rule for the provider', async () => {
    const [a] = fleet();
    const permit = await (a as FleetLimiter).acquire({ provider: 'openai', model: 'gpt-image-1', images: 1 });
    await permit.release();
    expect(await rows()).toEqual([]);
  });

  it('spreads the calls of two workers evenly over the minute, in one budget', async () => {
    await settings.update({ provider_limits: [{ provider: 'openai', model: 'gpt-image-1', images_per_minute: 600 }] });
    const limiters = fleet();
    const started: number[] = [];
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: 24 }, async (_, i) => {
        const permit = await (limiters[i % 2] as FleetLimiter).acquire({ provider: 'openai', model: 'gpt-image-1', images: 1 });
        started.push(Date.now() - t0);
        await permit.release();
      }),
    );
    started.sort((x, y) => x - y);
    const spacing = 60_000 / (600 * LIMIT_HEADROOM); // ~103 ms
    // 24 calls at 10 a second take about 2.3 s in all, whoever makes them
    expect(started.at(-1) as number).toBeGreaterThan(spacing * 22);
    // and never more than the limit's share in any second (a burst would put many in the first)
    for (const start of started) expect(started.filter((s) => s >= start && s < start + 1000).length).toBeLessThanOrEqual(11);
    // another model of the provider has no rule: it does not wait
    const other = Date.now();
    await (await (limiters[0] as FleetLimiter).acquire({ provider: 'openai', model: 'gpt-4.1-mini' })).release();
    expect(Date.now() - other).toBeLessThan(spacing * 5);
  });

  it('holds calls in flight to the limit across workers, and a lease left by a dead worker comes back', async () => {
    await settings.update({ provider_limits: [{ provider: 'flowise', in_flight: 2 }] });
    const limiters = fleet();
    let inFlight = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const permit = await (limiters[i % 2] as FleetLimiter).acquire({ provider: 'flowise', model: '' });
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((r) => setTimeout(r, 60));
        inFlight--;
        await permit.release();
      }),
    );
    expect(most).toBe(2);
    expect((await rows()).find((r) => r.key === 'flowise/*:in_flight')?.in_flight).toBe(0);

    // A worker killed mid-call never releases: its lease runs out and the slot is taken back.
    const dead = await (limiters[0] as FleetLimiter).acquire({ provider: 'flowise', model: '' });
    await (limiters[0] as FleetLimiter).acquire({ provider: 'flowise', model: '' }); // never released either
    void dead;
    await (orms[0] as Orm).em.fork().execute(`update provider_leases set expires_at = now() - interval '1 second'`);
    const permit = await (limiters[1] as FleetLimiter).acquire({ provider: 'flowise', model: '' });
    await permit.release();
  }, 30_000);

  it('lets workers take jobs one after another, at the rate the limit serves their calls', async () => {
    await settings.update({ provider_limits: [{ provider: 'openai', model: 'gpt-image-1', images_per_minute: 600 }] });
    const limiters = fleet();
    const t0 = Date.now();
    const admitted: number[] = [];
    // six workers asking at once, jobs of 2 calls: one job every ~206 ms after a 400 ms burst
    await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        await (limiters[i % 2] as FleetLimiter).admit('openai', 'gpt-image-1', 2, 400);
        admitted.push(Date.now() - t0);
      }),
    );
    admitted.sort((x, y) => x - y);
    expect(admitted.at(-1) as number).toBeGreaterThan(600);
    expect(admitted[0] as number).toBeLessThan(300);
    // no rule for the provider: no wait
    const other = Date.now();
    await (limiters[0] as FleetLimiter).admit('flowise', '', 3, 0);
    expect(Date.now() - other).toBeLessThan(200);
  });

  it('a 429 heard by one worker pauses the fleet', async () => {
    await settings.update({ provider_limits: [{ provider: 'openai', requests_per_minute: 6000 }] });
    const [a, b] = fleet() as [FleetLimiter, FleetLimiter];
    await (await a.acquire({ provider: 'openai', model: 'gpt-image-1' })).release();
    await a.pause('openai', 'gpt-image-1', 800);
    const t0 = Date.now();
    await (await b.acquire({ provider: 'openai', model: 'gpt-image-1' })).release();
    expect(Date.now() - t0).toBeGreaterThan(600);
  });

  it('charges the tokens a call really used, after the estimate', async () => {
    await settings.update({ provider_limits: [{ provider: 'openai', model: 'gpt-4.1-mini', tokens_per_minute: 60_000 }] });
    const [a, b] = fleet() as [FleetLimiter, FleetLimiter];
    const first = await a.acquire({ provider: 'openai', model: 'gpt-4.1-mini', tokens: 100 });
    await first.used(3000); // 2900 tokens more than estimated: about 3 s of the budget
    await first.release();
    const t0 = Date.now();
    await (await b.acquire({ provider: 'openai', model: 'gpt-4.1-mini', tokens: 10 })).release();
    expect(Date.now() - t0).toBeGreaterThan(2000);
  });
});
