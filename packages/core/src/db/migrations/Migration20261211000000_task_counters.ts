import { Migration } from '@mikro-orm/migrations';

/**
 * Usage and cost per task (issue 18, item 3): images made per provider and model (what an image
 * price multiplies), and per task the counts the dataset card shows: image requests, images made,
 * provider retries, moderation blocks, and which plugin filled each port when the task was submitted.
 */
export class Migration20261211000000_task_counters extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "task_usage" add column "images" int not null default 0;`);
    this.addSql(`create table "task_counters" (
      "task_id" varchar(255) not null primary key references "generation_tasks" ("id") on delete cascade,
      "images_requested" int not null default 0,
      "images_made" int not null default 0,
      "retries" int not null default 0,
      "moderation_blocks" int not null default 0,
      "plugins" jsonb null);`);
  }

  override async down(): Promise<void> {
    this.addSql('drop table if exists "task_counters";');
    this.addSql('alter table "task_usage" drop column if exists "images";');
  }
}
