import { Migration } from '@mikro-orm/migrations';

/**
 * The queue job of each unit of work (a persona batch, a persona's images): the pipeline asks
 * pg-boss for that job by id (getJobById) to know whether the unit still has one queued or running,
 * instead of reading pg-boss's tables.
 */
export class Migration20261212000000_unit_jobs extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "persona_batches" add column "job_id" uuid null;`);
    this.addSql(`alter table "personas" add column "job_id" uuid null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "personas" drop column if exists "job_id";`);
    this.addSql(`alter table "persona_batches" drop column if exists "job_id";`);
  }
}
