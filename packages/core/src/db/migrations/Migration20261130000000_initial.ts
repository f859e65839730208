import { Migration } from '@mikro-orm/migrations';

/** The first schema: users, sessions, API tokens, settings, tasks, batches, personas, images, flags. */
export class Migration20261130000000_initial extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table "users" (
      "id" serial primary key,
      "email" varchar(255) not null constraint "users_email_unique" unique,
      "password_hash" varchar(255) not null,
      "is_admin" boolean not null default false,
      "active" boolean not null default true,
      "last_login_at" timestamptz null,
      "created_at" timestamptz not null default now());`);

    this.addSql(`create table "sessions" (
      "id" varchar(255) not null constraint "sessions_pkey" primary key,
      "user_id" int null references "users" ("id") on delete cascade,
      "data" jsonb not null,
      "expires_at" timestamptz not null,
      "created_at" timestamptz not null default now(),
      "updated_at" timestamptz not null default now());`);
    this.addSql('create index "sessions_user_id_index" on "sessions" ("user_id");');
    this.addSql('create index "sessions_expires_at_index" on "sessions" ("expires_at");');

    this.addSql(`create table "api_tokens" (
      "id" serial primary key,
      "user_id" int not null references "users" ("id") on delete cascade,
      "name" varchar(255) not null,
      "token_hash" varchar(255) not null constraint "api_tokens_token_hash_unique" unique,
      "created_at" timestamptz not null default now(),
      "last_used_at" timestamptz null,
      "revoked_at" timestamptz null);`);
    this.addSql('create index "api_tokens_user_id_index" on "api_tokens" ("user_id");');

    this.addSql(`create table "settings" (
      "key" varchar(255) not null constraint "settings_pkey" primary key,
      "value" jsonb not null,
      "updated_at" timestamptz not null default now());`);

    this.addSql(`create table "generation_tasks" (
      "id" varchar(255) not null constraint "generation_tasks_pkey" primary key,
      "user_id" int null references "users" ("id") on delete set null,
      "description" text not null,
      "language_code" varchar(255) not null,
      "language_name" varchar(255) not null,
      "count" int not null,
      "images_per_persona" int not null,
      "status" varchar(255) not null,
      "settings" jsonb not null,
      "storage_prefix" varchar(255) not null,
      "run" int not null default 0,
      "error_log" jsonb not null default '[]',
      "created_at" timestamptz not null default now(),
      "updated_at" timestamptz not null default now(),
      "started_at" timestamptz null,
      "finished_at" timestamptz null);`);
    this.addSql('create index "generation_tasks_user_id_index" on "generation_tasks" ("user_id");');
    this.addSql('create index "generation_tasks_status_index" on "generation_tasks" ("status");');
    this.addSql('create index "generation_tasks_created_at_index" on "generation_tasks" ("created_at");');

    this.addSql(`create table "persona_batches" (
      "task_id" varchar(255) not null references "generation_tasks" ("id") on delete cascade,
      "batch_no" int not null,
      "size" int not null,
      "status" varchar(255) not null,
      "received" int not null default 0,
      "rejected" int not null default 0,
      "error" text null,
      "updated_at" timestamptz not null default now(),
      constraint "persona_batches_pkey" primary key ("task_id", "batch_no"));`);

    this.addSql(`create table "personas" (
      "id" serial primary key,
      "task_id" varchar(255) not null references "generation_tasks" ("id") on delete cascade,
      "batch_no" int not null,
      "batch_index" int not null,
      "first_name" varchar(255) not null,
      "last_name" varchar(255) not null,
      "gender" varchar(255) not null,
      "ethnicity" varchar(255) not null,
      "age" int null,
      "bio_facebook" text not null,
      "bio_instagram" text not null,
      "bio_x" text not null,
      "bio_tiktok" text not null,
      "job_title" varchar(255) not null,
      "workplace" varchar(255) not null,
      "edu_establishment" varchar(255) not null,
      "edu_study" varchar(255) not null,
      "current_city" varchar(255) not null,
      "current_state" varchar(255) not null,
      "prev_city" varchar(255) not null,
      "prev_state" varchar(255) not null,
      "about" text not null,
      "base_image_key" varchar(255) null,
      "base_face_key" varchar(255) null,
      "prompts" jsonb not null default '[]',
      "images_status" varchar(255) not null,
      "images_error" text null,
      "created_at" timestamptz not null default now(),
      constraint "personas_task_id_batch_no_batch_index_unique" unique ("task_id", "batch_no", "batch_index"));`);
    this.addSql('create index "personas_task_id_index" on "personas" ("task_id");');

    this.addSql(`create table "persona_images" (
      "persona_id" int not null references "personas" ("id") on delete cascade,
      "idx" int not null,
      "task_id" varchar(255) not null references "generation_tasks" ("id") on delete cascade,
      "grid_no" int not null,
      "key" varchar(255) not null,
      "content_type" varchar(255) not null,
      "width" int not null,
      "height" int not null,
      "style" jsonb null,
      "created_at" timestamptz not null default now(),
      constraint "persona_images_pkey" primary key ("persona_id", "idx"));`);
    this.addSql('create index "persona_images_task_id_index" on "persona_images" ("task_id");');

    this.addSql(`create table "image_flags" (
      "id" serial primary key,
      "kind" varchar(255) not null,
      "face_key" varchar(255) null,
      "task_id" varchar(255) null references "generation_tasks" ("id") on delete set null,
      "persona_id" int null references "personas" ("id") on delete set null,
      "reason" text not null,
      "created_at" timestamptz not null default now());`);
    this.addSql('create index "image_flags_face_key_index" on "image_flags" ("face_key");');
  }

  override async down(): Promise<void> {
    for (const table of [
      'image_flags',
      'persona_images',
      'personas',
      'persona_batches',
      'generation_tasks',
      'settings',
      'api_tokens',
      'sessions',
      'users',
    ]) {
      this.addSql(`drop table if exists "${table}" cascade;`);
    }
  }
}
