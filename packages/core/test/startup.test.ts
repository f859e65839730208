import { describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../src/db/migrations/index.js';
import { createTestDatabase } from '../src/testing.js';
import { startHarness } from './support/harness.js';

describe('startup', () => {
  it('several processes starting at once on an empty database migrate and set up the queue without deadlock', async () => {
    const db = await createTestDatabase();
    try {
      const harnesses = await Promise.all([1, 2, 3, 4].map(() => startHarness({ db, worker: false })));
      // every migration applied once, by one of them
      const [row] = await harnesses[0]!.gen.orm.em
        .fork()
        .execute('select count(*)::int as n, count(distinct name)::int as names from mikro_orm_migrations');
      expect(row).toEqual({ n: MIGRATIONS.length, names: MIGRATIONS.length });
      const queues = await harnesses[0]!.gen.orm.em
        .fork()
        .execute(`select name from pgboss.queue where name like 'avatargen-%' order by name`);
      expect(queues.map((q) => q.name)).toEqual(['avatargen-dead', 'avatargen-persona-batch', 'avatargen-persona-images']);
      await Promise.all(harnesses.map((h) => h.close()));
    } finally {
      await db.drop();
    }
  });
});
