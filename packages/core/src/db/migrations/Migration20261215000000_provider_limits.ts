import { Migration } from '@mikro-orm/migrations';

/** Fleet-wide provider limits (issue 22): one budget row per rule and dimension, and the leases of calls in flight. */
export class Migration20261215000000_provider_limits extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "provider_budgets" (
      "key" text not null primary key,
      "tat" timestamptz not null default '-infinity',
      "paused_until" timestamptz not null default '-infinity',
      "in_flight" int not null default 0
    );`);
    this.addSql(`create table "provider_leases" (
      "id" uuid not null primary key,
      "key" text not null,
      "expires_at" timestamptz not null
    );`);
    this.addSql(`create index "provider_leases_key_index" on "provider_leases" ("key");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "provider_leases";`);
    this.addSql(`drop table if exists "provider_budgets";`);
  }
}
