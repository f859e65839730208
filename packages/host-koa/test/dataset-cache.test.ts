import { isFinal, NotFoundError, type TaskView } from '@avatargen/core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DatasetCache } from '../src/dataset-cache.js';
import { PASSWORD, type Site, startSite } from './support/harness.js';

// The real task and persona services on PostgreSQL; spies only count (and, in one test, delay)
// the reads that reach them.
let site: Site;
let owner: number;
let intruder: number;
beforeAll(async () => {
  site = await startSite({ worker: false });
  owner = (await site.gen.users.create({ email: 'owner@example.com', password: PASSWORD })).id;
  intruder = (await site.gen.users.create({ email: 'intruder@example.com', password: PASSWORD })).id;
});
afterAll(() => site?.close());

async function task(description: string, finished: boolean): Promise<TaskView> {
  const submitted = await site.gen.tasks.submit({ description, language: 'en', count: 10, imagesPerPersona: 4 }, { userId: owner });
  return finished ? site.gen.tasks.cancel(submitted.id, { userId: owner }) : submitted;
}

describe('DatasetCache', () => {
  it('serves requests that miss together, from different users, with one read; the other user gets a 404', async () => {
    const { id } = await task('Shared read', true);
    const cache = new DatasetCache(site.gen);
    const reads = vi.spyOn(site.gen.tasks, 'get');
    try {
      const answers = await Promise.allSettled([
        cache.detail(id, 1, { userId: intruder }),
        cache.detail(id, 1, { userId: owner }),
        cache.detail(id, 1, {}), // an administrator
        cache.detail(id, 1, { userId: owner }),
      ]);
      expect(reads).toHaveBeenCalledTimes(1);
      expect(answers[0]).toMatchObject({ status: 'rejected', reason: expect.any(NotFoundError) });
      for (const answer of answers.slice(1))
        expect(answer).toMatchObject({ status: 'fulfilled', value: { task: { id, description: 'Shared read' } } });
      expect(cache.size).toBe(1);
      await expect(cache.detail(id, 1, { userId: intruder })).rejects.toBeInstanceOf(NotFoundError);
      expect(reads).toHaveBeenCalledTimes(1);
      await expect(cache.detail('00000000-0000-4000-8000-000000000000', 1, { userId: owner })).rejects.toBeInstanceOf(NotFoundError);
    } finally {
      reads.mockRestore();
    }
  });

  it('answers for an unfinished task but does not keep it', async () => {
    const { id } = await task('Still running', false);
    const cache = new DatasetCache(site.gen);
    const reads = vi.spyOn(site.gen.tasks, 'get');
    try {
      expect(isFinal((await cache.detail(id, 1, { userId: owner })).task.status)).toBe(false);
      expect(cache.size).toBe(0);
      await cache.detail(id, 1, { userId: owner });
      expect(reads).toHaveBeenCalledTimes(2);
    } finally {
      reads.mockRestore();
    }
  });

  it('does not keep a read its task changed during, and drops what it kept on a change', async () => {
    const { id } = await task('Changed while read', true);
    const cache = new DatasetCache(site.gen);
    const read = site.gen.tasks.get.bind(site.gen.tasks);
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    // the read gets the row at once but answers only after the change below
    const reads = vi.spyOn(site.gen.tasks, 'get').mockImplementationOnce(async (taskId, scope) => {
      const row = await read(taskId, scope);
      await gate;
      return row;
    });
    try {
      const slow = cache.detail(id, 1, { userId: owner });
      await new Promise((r) => setTimeout(r, 50));
      site.gen.pipeline.events.emit('task', id);
      release();
      expect((await slow).task.id).toBe(id);
      expect(cache.size).toBe(0);
      await cache.detail(id, 1, { userId: owner });
      expect(reads).toHaveBeenCalledTimes(2);
      expect(cache.size).toBe(1);
      await cache.detail(id, 1, { userId: owner });
      expect(reads).toHaveBeenCalledTimes(2);
      site.gen.pipeline.events.emit('task', id);
      expect(cache.size).toBe(0);
    } finally {
      reads.mockRestore();
    }
  });
});
