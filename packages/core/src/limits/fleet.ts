import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Orm } from '../db/orm.js';
import type { ProviderLimitRule } from '../domain/settings.js';
import { CancelledError, describeError } from '../errors.js';
import type { SettingsService } from '../services/settings.js';

/**
 * Provider limits shared by every worker of a site (issue 22): requests, images and tokens per
 * minute, and calls in flight, held in PostgreSQL so six workers on three hosts spend one budget
 * instead of six.
 *
 * Rates use GCRA ("virtual scheduling"): a budget row keeps the theoretical arrival time `tat` of
 * the next call; a call moves it on by its cost (60 s / limit per request, image or token) in one
 * upsert and waits until its own turn. Calls are so spread evenly over the minute instead of
 * bursting at a window's start, which is what a provider's sliding per-minute limit needs; a small
 * headroom (LIMIT_HEADROOM) keeps the network's jitter from tipping one call over the limit.
 * Calls in flight are a counter on the same table, taken with a conditional update (a row lock
 * makes it exact across processes) and recorded as a lease with an expiry, so a worker killed
 * mid-call gives its slot back when the lease runs out.
 *
 * A 429 with retry-after pauses the budget (paused_until) for the whole fleet. Without a rule for
 * a provider a call costs nothing here: the rules are read from the settings at most every
 * RULES_TTL_MS.
 */

/** What a call spends: one request, and images or (estimated) tokens. */
export interface LimitedCall {
  /** The plugin's short name: `openai` for @avatargen/provider-openai. */
  provider: string;
  /** The model the provider reports (describe()), or '' when it reports none. */
  model: string;
  images?: number;
  /** Tokens the call is expected to use (corrected with `Permit.used` when known). */
  tokens?: number;
}

export interface Permit {
  /** Tokens the call really used, when the provider says: the difference is charged or given back. */
  used(tokens: number): Promise<void>;
  release(): Promise<void>;
}

/** Fraction of a limit the fleet spends: the rest absorbs clock and network jitter. */
export const LIMIT_HEADROOM = 0.97;
const RULES_TTL_MS = 5_000;
/** A lease outlives any call (provider timeouts are at most 10 minutes); a killed worker's slot comes back after it. */
const LEASE_MS = 11 * 60_000;
const SLOT_POLL_MS = [50, 100, 200, 400, 800] as const;

const NO_PERMIT: Permit = { used: async () => undefined, release: async () => undefined };

/** `@avatargen/provider-openai` -> `openai`: the name rules use. */
export function providerName(plugin: string): string {
  return plugin.replace(/^@avatargen\/provider-/, '');
}

const ruleKey = (rule: ProviderLimitRule) => `${rule.provider}/${rule.model ?? '*'}`;

interface Dimension {
  key: string;
  /** Milliseconds of budget one unit costs: 60 s / (limit * headroom). */
  unitMs: number;
  units: number;
}

export class FleetLimiter {
  /** The rules, read from the settings at most every RULES_TTL_MS (one promise shared by concurrent callers). */
  private rules: { at: number; value: Promise<ProviderLimitRule[]> } | undefined;
  /** Tokens a call used lately, per rule: the next call's estimate. */
  private readonly tokenEstimates = new Map<string, number>();

  constructor(
    private readonly orm: Orm,
    private readonly settings: SettingsService,
    private readonly log: Logger,
  ) {}

  private async loadRules(): Promise<ProviderLimitRule[]> {
    const rules = (await this.settings.get()).provider_limits ?? [];
    if (rules.length > 0) {
      // Every budget row exists before a call updates it (a missing row would read as full).
      const keys = rules.flatMap((r) => ['requests', 'images', 'tokens', 'in_flight'].map((d) => `${ruleKey(r)}:${d}`));
      await this.orm.em
        .fork()
        .execute(`insert into provider_budgets (key) select jsonb_array_elements_text(?::jsonb) on conflict (key) do nothing`, [
          JSON.stringify(keys),
        ]);
    }
    return rules;
  }

  /** The rules that apply to a call: its provider's, for its model or for every model. */
  async rulesFor(provider: string, model: string): Promise<ProviderLimitRule[]> {
    if (!this.rules || Date.now() - this.rules.at > RULES_TTL_MS) {
      const value = this.loadRules();
      this.rules = { at: Date.now(), value };
      value.catch(() => {
        if (this.rules?.value === value) this.rules = undefined; // a failed read is not kept
      });
    }
    const rules = await this.rules.value;
    return rules.filter((r) => r.provider === provider && (r.model === undefined || r.model === '' || r.model === model));
  }

  /** Forgets the cached rules (after the settings changed in this process). */
  refresh(): void {
    this.rules = undefined;
  }

  /** Waits for the call's turn under every rule that applies; the permit gives its slot back. */
  async acquire(call: LimitedCall, signal?: AbortSignal): Promise<Permit> {
    const rules = await this.rulesFor(call.provider, call.model);
    if (rules.length === 0) return NO_PERMIT;
    const permits: Permit[] = [];
    try {
      for (const rule of rules) permits.push(await this.acquireRule(rule, call, signal));
    } catch (error) {
      await Promise.all(permits.map((p) => p.release()));
      throw error;
    }
    return {
      used: async (tokens) => {
        for (const p of permits) await p.used(tokens);
      },
      release: async () => {
        await Promise.all(permits.map((p) => p.release()));
      },
    };
  }

  private dimensions(rule: ProviderLimitRule, call: LimitedCall): Dimension[] {
    const key = ruleKey(rule);
    const unit = (perMinute: number) => 60_000 / (perMinute * LIMIT_HEADROOM);
    const out: Dimension[] = [];
    if (rule.requests_per_minute) out.push({ key: `${key}:requests`, unitMs: unit(rule.requests_per_minute), units: 1 });
    if (rule.images_per_minute && (call.images ?? 0) > 0)
      out.push({ key: `${key}:images`, unitMs: unit(rule.images_per_minute), units: call.images ?? 0 });
    if (rule.tokens_per_minute) {
      const tokens = call.tokens ?? this.tokenEstimates.get(key) ?? 1000;
      out.push({ key: `${key}:tokens`, unitMs: unit(rule.tokens_per_minute), units: tokens });
    }
    return out;
  }

  private async acquireRule(rule: ProviderLimitRule, call: LimitedCall, signal?: AbortSignal): Promise<Permit> {
    const dims = this.dimensions(rule, call);
    const slotKey = rule.in_flight ? `${ruleKey(rule)}:in_flight` : null;
    const lease = slotKey ? randomUUID() : null;
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted) throw new CancelledError();
      const [row] = await this.orm.em.fork().execute(
        // One statement: the slot (when the rule has one), its lease, and every rate's reservation,
        // the rates only when the slot was taken.
        `with slot as (
           update provider_budgets set in_flight = in_flight + 1
           where key = ? and in_flight < ? returning key
         ), lease as (
           insert into provider_leases (id, key, expires_at) select ?::uuid, key, now() + ? * interval '1 millisecond' from slot
         ), rate as (
           insert into provider_budgets (key, tat)
           select d.key, now() + d.cost * interval '1 millisecond' from jsonb_to_recordset(?::jsonb) as d(key text, cost float8)
           where ? or exists (select 1 from slot)
           on conflict (key) do update
             set tat = greatest(provider_budgets.tat, now(), provider_budgets.paused_until) + (excluded.tat - now())
           returning key, extract(epoch from (tat - now())) * 1000 as ahead_ms
         )
         select (select count(*) from slot)::int as slotted, (select coalesce(jsonb_object_agg(key, ahead_ms), '{}') from rate) as ahead`,
        [
          slotKey ?? '',
          rule.in_flight ?? 0,
          lease ?? randomUUID(),
          LEASE_MS,
          JSON.stringify(dims.map((d) => ({ key: d.key, cost: d.unitMs * d.units }))),
          slotKey === null,
        ],
      );
      if (slotKey && !row?.slotted) {
        // Every slot is taken: wait a little and ask again; now and then, take back slots of dead workers.
        if (attempt % 10 === 9) await this.reclaim(slotKey);
        await sleep(jitter(SLOT_POLL_MS[Math.min(attempt, SLOT_POLL_MS.length - 1)] as number), undefined, { signal }).catch(() => {
          throw new CancelledError();
        });
        continue;
      }
      // A call starts at its turn: the end of its reservation less its own cost.
      const ahead = (row?.ahead ?? {}) as Record<string, number>;
      const waitMs = Math.max(0, ...dims.map((d) => (ahead[d.key] ?? 0) - d.unitMs * d.units));
      if (waitMs > 0) {
        await sleep(waitMs, undefined, { signal }).catch(async () => {
          if (slotKey && lease) await this.release(slotKey, lease);
          throw new CancelledError();
        });
      }
      const tokensDim = dims.find((d) => d.key.endsWith(':tokens'));
      let released = false;
      return {
        used: async (tokens) => {
          if (!tokensDim || !Number.isFinite(tokens) || tokens <= 0) return;
          const estimates = this.tokenEstimates;
          estimates.set(ruleKey(rule), Math.round((estimates.get(ruleKey(rule)) ?? tokens) * 0.7 + tokens * 0.3));
          const extraMs = (tokens - tokensDim.units) * tokensDim.unitMs;
          if (Math.abs(extraMs) < 1) return;
          // The estimate was off: the rest is charged (or given back) to the fleet's budget.
          await this.orm.em
            .fork()
            .execute("update provider_budgets set tat = tat + ? * interval '1 millisecond' where key = ?", [extraMs, tokensDim.key])
            .catch((error: unknown) => this.log.warn({ key: tokensDim.key, error: describeError(error) }, 'token budget not corrected'));
        },
        release: async () => {
          if (released || !slotKey || !lease) return;
          released = true;
          await this.release(slotKey, lease);
        },
      };
    }
  }

  private async release(slotKey: string, lease: string): Promise<void> {
    await this.orm.em
      .fork()
      .execute(
        `with gone as (delete from provider_leases where id = ? returning key)
         update provider_budgets set in_flight = greatest(in_flight - 1, 0) where key in (select key from gone)`,
        [lease],
      )
      .catch((error: unknown) =>
        this.log.warn({ key: slotKey, error: describeError(error) }, 'provider slot not released (its lease expires)'),
      );
  }

  /** Slots held by leases that ran out (a worker killed mid-call) come back. */
  private async reclaim(slotKey: string): Promise<void> {
    await this.orm.em.fork().execute(
      `with expired as (delete from provider_leases where key = ? and expires_at < now() returning id)
       update provider_budgets set in_flight = greatest(in_flight - (select count(*) from expired), 0) where key = ?`,
      [slotKey, slotKey],
    );
  }

  /**
   * Admission before a worker takes its next job: jobs are let in no faster than the provider's
   * budget can serve their calls (`callsPerJob` calls each), with `burstMs` of them at once. Jobs
   * then wait in the queue, where tasks take turns (see the scheduler), rather than all at the
   * limiter, where a call waits behind every call booked before it and the jobs held by the
   * workers decide who goes next. One booking in the database, so workers on any host are let in
   * one after another, not all at once. No rule: no wait, no query. Says whether it booked a job
   * (false: no rule applies, and the worker may take as many jobs as it has room for).
   */
  async admit(provider: string, model: string, callsPerJob: number, burstMs: number, signal?: AbortSignal): Promise<boolean> {
    const rules = (await this.rulesFor(provider, model)).filter((r) => r.requests_per_minute || r.images_per_minute);
    if (rules.length === 0) return false;
    // The tightest rate a job's calls go through.
    const perMinute = Math.min(...rules.map((r) => Math.min(r.requests_per_minute ?? Infinity, r.images_per_minute ?? Infinity)));
    const rule = rules.find(
      (r) => Math.min(r.requests_per_minute ?? Infinity, r.images_per_minute ?? Infinity) === perMinute,
    ) as ProviderLimitRule;
    const cost = (60_000 / (perMinute * LIMIT_HEADROOM)) * Math.max(1, callsPerJob);
    const [row] = await this.orm.em.fork().execute(
      `insert into provider_budgets (key, tat) values (?, now() + ? * interval '1 millisecond')
       on conflict (key) do update set tat = greatest(provider_budgets.tat, now(), provider_budgets.paused_until) + (excluded.tat - now())
       returning extract(epoch from (tat - now())) * 1000 as ahead_ms`,
      [`${ruleKey(rule)}:admit`, cost],
    );
    const waitMs = Number(row?.ahead_ms ?? 0) - cost - burstMs;
    if (waitMs > 0) {
      await sleep(waitMs, undefined, { signal }).catch(() => {
        throw new CancelledError();
      });
    }
    return true;
  }

  /**
   * A provider said "too many requests, retry after N ms": the whole fleet waits, not only the
   * worker that heard it. Calls already given their turn go on and may hear it too; new ones wait.
   */
  async pause(provider: string, model: string, ms: number): Promise<void> {
    const rules = await this.rulesFor(provider, model);
    if (rules.length === 0 || !(ms > 0)) return;
    const keys = rules.flatMap((r) => ['requests', 'images', 'tokens'].map((d) => `${ruleKey(r)}:${d}`));
    await this.orm.em.fork().execute(
      `update provider_budgets set paused_until = greatest(paused_until, now() + ? * interval '1 millisecond')
         where key in (select jsonb_array_elements_text(?::jsonb))`,
      [Math.min(ms, 10 * 60_000), JSON.stringify(keys)],
    );
    this.log.info({ provider, model, pauseMs: ms }, 'provider limit reached: the fleet waits');
  }
}

const jitter = (ms: number) => Math.round(ms * (0.5 + Math.random() * 0.5));
