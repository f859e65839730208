import type { Orm } from '../db/orm.js';

export interface AttemptCounter {
  /** Attempts counted in the window (the column keeps its first name, "failures"). */
  attempts: number;
  resetAt: number;
}

/**
 * Login-attempt counters in PostgreSQL, so that throttling holds across every web process of a
 * site (in memory, an attacker spreading guesses over N processes would get N times the
 * attempts). A counter is a key, a number of attempts and the end of its window; times come from
 * the caller's clock (milliseconds) so that every process counts the same way.
 */
export class LoginAttempts {
  constructor(private readonly orm: Orm) {}

  /** Counts one attempt on each key (a window that has ended starts again) and returns the counters. */
  async count(keys: readonly string[], now: number, windowMs: number): Promise<Map<string, AttemptCounter>> {
    if (keys.length === 0) return new Map();
    const at = new Date(now);
    const until = new Date(now + windowMs);
    const rows: Array<{ key: string; failures: number; reset_at: Date }> = await this.orm.em.fork().execute(
      `insert into "login_attempts" ("key", "failures", "reset_at") values ${keys.map(() => '(?, 1, ?)').join(', ')}
       on conflict ("key") do update set
         "failures" = case when "login_attempts"."reset_at" <= ? then 1 else "login_attempts"."failures" + 1 end,
         "reset_at" = case when "login_attempts"."reset_at" <= ? then excluded."reset_at" else "login_attempts"."reset_at" end
       returning "key", "failures", "reset_at"`,
      [...keys.flatMap((key) => [key, until]), at, at],
    );
    return new Map(rows.map((row) => [row.key, { attempts: row.failures, resetAt: new Date(row.reset_at).getTime() }]));
  }

  /** Takes one counted attempt back (it was counted before the password check and succeeded). */
  async release(key: string): Promise<void> {
    await this.orm.em.fork().execute('update "login_attempts" set "failures" = "failures" - 1 where "key" = ? and "failures" > 0', [key]);
  }

  async clear(key: string): Promise<void> {
    await this.orm.em.fork().execute('delete from "login_attempts" where "key" = ?', [key]);
  }

  /** Drops the counters whose window ended before `now`. */
  async deleteExpired(now: number): Promise<number> {
    const result = await this.orm.em.fork().execute('delete from "login_attempts" where "reset_at" <= ?', [new Date(now)], 'run');
    return (result as { affectedRows?: number }).affectedRows ?? 0;
  }
}
