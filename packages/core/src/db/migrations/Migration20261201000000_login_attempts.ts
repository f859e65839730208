import { Migration } from '@mikro-orm/migrations';

/** Failed-login counters shared by every web process of a site (login throttling). */
export class Migration20261201000000_login_attempts extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "login_attempts" (
      "key" varchar(512) not null constraint "login_attempts_pkey" primary key,
      "failures" int not null,
      "reset_at" timestamptz not null);`);
    this.addSql('create index "login_attempts_reset_at_index" on "login_attempts" ("reset_at");');
  }

  override async down(): Promise<void> {
    this.addSql('drop table if exists "login_attempts";');
  }
}
