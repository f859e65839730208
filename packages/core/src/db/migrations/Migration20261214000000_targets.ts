import { Migration } from '@mikro-orm/migrations';

/** Demographic targets, the quota misses per batch, a persona's country and the stored quality report (issue 19). */
export class Migration20261214000000_targets extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "generation_tasks" add column "targets" jsonb null, add column "quality_report" jsonb null;`);
    this.addSql(`alter table "persona_batches" add column "off_target" int not null default 0;`);
    this.addSql(`alter table "personas" add column "current_country" varchar(255) not null default '';`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "personas" drop column if exists "current_country";`);
    this.addSql(`alter table "persona_batches" drop column if exists "off_target";`);
    this.addSql(`alter table "generation_tasks" drop column if exists "quality_report", drop column if exists "targets";`);
  }
}
