import { Migration } from '@mikro-orm/migrations';

/** Perceptual hashes (64-bit dHash, 16 hex characters) of stored pictures, for the quality report (issue 19). */
export class Migration20261213000000_picture_hashes extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "persona_images" add column "phash" varchar(16) null;`);
    this.addSql(`alter table "personas" add column "base_phash" varchar(16) null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "personas" drop column if exists "base_phash";`);
    this.addSql(`alter table "persona_images" drop column if exists "phash";`);
  }
}
