import type { Orm } from '../db/orm.js';
import { Setting } from '../db/entities.js';
import { type Settings, settingsSchema, SETTING_KEYS, type SettingKey } from '../domain/settings.js';
import { ValidationError } from '../errors.js';

/** The typed key/value settings: stored values over the defaults. */
export class SettingsService {
  constructor(private readonly orm: Orm) {}

  async get(): Promise<Settings> {
    const rows = await this.orm.em.fork().find(Setting, {});
    const stored: Record<string, unknown> = {};
    for (const row of rows) {
      if ((SETTING_KEYS as string[]).includes(row.key)) stored[row.key] = row.value;
    }
    // A stored value that no longer validates (e.g. after a limit changed) falls back to its default.
    const parsed = settingsSchema.safeParse(stored);
    if (parsed.success) return parsed.data;
    for (const issue of parsed.error.issues) delete stored[String(issue.path[0])];
    return settingsSchema.parse(stored);
  }

  /**
   * Validates and stores the given settings (unknown keys are refused). Throws ValidationError
   * with a message per field; nothing is stored when any field is invalid.
   */
  async update(changes: Partial<Record<SettingKey, unknown>>): Promise<Settings> {
    const unknown = Object.keys(changes).filter((k) => !(SETTING_KEYS as string[]).includes(k));
    if (unknown.length > 0) {
      throw new ValidationError(Object.fromEntries(unknown.map((k) => [k, 'Unknown setting.'])));
    }
    const current = await this.get();
    const parsed = settingsSchema.safeParse({ ...current, ...changes });
    if (!parsed.success) {
      const fields: Record<string, string> = {};
      for (const issue of parsed.error.issues) fields[String(issue.path[0])] ??= issue.message;
      throw new ValidationError(fields);
    }
    const em = this.orm.em.fork();
    await em.transactional(async (tem) => {
      for (const key of Object.keys(changes) as SettingKey[]) {
        await tem.upsert(Setting, { key, value: parsed.data[key] as unknown, updatedAt: new Date() });
      }
    });
    return parsed.data;
  }
}
