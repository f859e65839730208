import type { EntityManager } from '@mikro-orm/postgresql';
import { GenerationTask, Persona, PersonaImage } from '../db/entities.js';
import type { Orm } from '../db/orm.js';
import { NotFoundError } from '../errors.js';
import type { ObjectStorage } from '../ports.js';
import type { Scope } from './tasks.js';
import { type PersonaView, personaView } from './views.js';

export interface PersonaPage {
  personas: PersonaView[];
  page: number;
  perPage: number;
  total: number;
  pages: number;
}

export interface Demographics {
  ethnicity: Array<{ ethnicity: string; count: number }>;
  gender: { f: number; m: number };
  age: { min: number | null; avg: number | null; max: number | null };
  /** Personas per age band (under 18, 18-24, 25-34 ... 65+, unknown), bands with nobody left out. */
  ageBands: Array<{ band: string; count: number }>;
}

/** Reading a task's personas and their images (URLs derived from keys when read). */
export class PersonasService {
  constructor(
    private readonly orm: Orm,
    private readonly storage: ObjectStorage,
  ) {}

  private get em(): EntityManager {
    return this.orm.em.fork() as EntityManager;
  }

  private async checkTask(em: EntityManager, taskId: string, scope: Scope): Promise<void> {
    const task = await em.findOne(GenerationTask, { id: String(taskId) }, { fields: ['id', 'userId'] });
    if (!task || (scope.userId !== undefined && task.userId !== scope.userId)) throw new NotFoundError(`No task ${taskId}`);
  }

  async list(taskId: string, options: Scope & { page?: number; perPage?: number } = {}): Promise<PersonaPage> {
    const em = this.em;
    await this.checkTask(em, taskId, options);
    const perPage = Math.min(Math.max(Math.trunc(options.perPage ?? 20), 1), 500);
    const page = Math.max(Math.trunc(options.page ?? 1), 1);
    const [rows, total] = await em.findAndCount(
      Persona,
      { taskId },
      { orderBy: { batchNo: 'asc', batchIndex: 'asc' }, limit: perPage, offset: (page - 1) * perPage },
    );
    const images = rows.length
      ? await em.find(PersonaImage, { personaId: { $in: rows.map((r) => r.id) } }, { orderBy: { idx: 'asc' } })
      : [];
    return {
      personas: rows.map((row) =>
        personaView(
          row,
          images.filter((i) => i.personaId === row.id),
          this.storage,
        ),
      ),
      page,
      perPage,
      total,
      pages: Math.max(1, Math.ceil(total / perPage)),
    };
  }

  /** Every persona of a task in order, a page at a time (for exports of any size). */
  async *all(taskId: string, scope: Scope = {}, pageSize = 100): AsyncGenerator<PersonaView> {
    for (let page = 1; ; page++) {
      const result = await this.list(taskId, { ...scope, page, perPage: pageSize });
      yield* result.personas;
      if (page >= result.pages) return;
    }
  }

  async get(personaId: number, scope: Scope = {}): Promise<PersonaView> {
    const em = this.em;
    const row = await em.findOne(Persona, { id: Number(personaId) || 0 });
    if (!row) throw new NotFoundError(`No persona ${personaId}`);
    await this.checkTask(em, row.taskId, scope);
    const images = await em.find(PersonaImage, { personaId: row.id }, { orderBy: { idx: 'asc' } });
    return personaView(row, images, this.storage);
  }

  /** Ethnicity distribution, gender split and age min/avg/max of a task's personas. */
  async demographics(taskId: string, scope: Scope = {}): Promise<Demographics> {
    const em = this.em;
    await this.checkTask(em, taskId, scope);
    const ethnicity = await em.execute(
      `select coalesce(nullif(ethnicity, ''), 'Unspecified') as ethnicity, count(*)::int as count
       from personas where task_id = ? group by 1 order by 2 desc, 1`,
      [taskId],
    );
    const [summary] = await em.execute(
      `select count(*) filter (where gender = 'f')::int as f, count(*) filter (where gender = 'm')::int as m,
              min(age) as min, round(avg(age), 1)::float as avg, max(age) as max
       from personas where task_id = ?`,
      [taskId],
    );
    const ageBands = await em.execute(
      `select case when age is null then 'unknown' when age < 18 then 'under 18' when age < 25 then '18-24' when age < 35 then '25-34'
                   when age < 45 then '35-44' when age < 55 then '45-54' when age < 65 then '55-64' else '65+' end as band,
              count(*)::int as count, min(coalesce(age, 1000)) as sort
       from personas where task_id = ? group by 1 order by sort`,
      [taskId],
    );
    return {
      ageBands: ageBands.map((r) => ({ band: r.band, count: r.count })),
      ethnicity: ethnicity.map((r) => ({ ethnicity: r.ethnicity, count: r.count })),
      gender: { f: summary?.f ?? 0, m: summary?.m ?? 0 },
      age: { min: summary?.min ?? null, avg: summary?.avg ?? null, max: summary?.max ?? null },
    };
  }

  /** Whether the object key belongs to a task the scope may see (for media routes). */
  async canSeeKey(key: string, scope: Scope = {}): Promise<boolean> {
    const match = /^tasks\/([^/]+)\//.exec(key);
    if (!match) return false;
    const task = await this.em.findOne(GenerationTask, { storagePrefix: match[1] as string }, { fields: ['id', 'userId'] });
    return !!task && (scope.userId === undefined || task.userId === scope.userId);
  }
}
