import { describe, expect, it } from 'vitest';
import { createTestDatabase } from '../src/testing.js';
import { startHarness } from './support/harness.js';

describe('startup', () => {
  it('several processes starting at once on an empty database migrate and set up the queue without deadlock', async () => {
    const db = await createTestDatabase();
    try {
      const harnesses = await Promise.all([1, 2, 3, 4].map(() => startHarness({ db, worker: false })));
      const [row] = await harnesses[0]!.gen.orm.em.fork().execute('select count(*)::int as n from mikro_orm_migrations');
      expect(row?.n).toBe(1);
      const queues = await harnesses[0]!.gen.orm.em.fork().execute(`select name from pgboss.queue where name like 'avatargen-%' order by name`);
      expect(queues.map((q) => q.name)).toEqual(['avatargen-persona-batch', 'avatargen-persona-images']);
      await Promise.all(harnesses.map((h) => h.close()));
    } finally {
      await db.drop();
    }
  });
});
