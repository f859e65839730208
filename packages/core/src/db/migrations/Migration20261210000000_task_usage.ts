import { Migration } from '@mikro-orm/migrations';

/**
 * Token usage per task, per provider and model, summed with one upsert per model call (issue 17).
 * Per model, so that a later price table can turn it into costs.
 */
export class Migration20261210000000_task_usage extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "task_usage" (
      "task_id" varchar(255) not null references "generation_tasks" ("id") on delete cascade,
      "provider" varchar(255) not null,
      "model" varchar(255) not null,
      "calls" int not null default 0,
      "input_tokens" bigint not null default 0,
      "output_tokens" bigint not null default 0,
      "updated_at" timestamptz not null default now(),
      constraint "task_usage_pkey" primary key ("task_id", "provider", "model"));`);
  }

  override async down(): Promise<void> {
    this.addSql('drop table if exists "task_usage";');
  }
}
