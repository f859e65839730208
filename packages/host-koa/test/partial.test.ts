import type { TaskView } from '@avatargen/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from './support/client.js';
import { PASSWORD, type Site, startSite } from './support/harness.js';

/**
 * The `partial` status (a task that ended with something missing) on the pages and the API. The
 * task is put in that status with SQL: how the pipeline gets there is core's to test.
 */
let site: Site;
let browser: Client;
let api: Client;
let userId: number;

async function endedTask(status: string): Promise<TaskView> {
  const task = await site.gen.tasks.submit(
    { description: `A ${status} dataset`, language: 'en', count: 10, imagesPerPersona: 4 },
    { userId },
  );
  await site.gen.tasks.cancel(task.id);
  await site.gen.orm.em.fork().execute('update generation_tasks set status = ?, finished_at = now() where id = ?', [status, task.id]);
  await site.gen.pipeline.notifyTask(task.id);
  return site.gen.tasks.get(task.id);
}

beforeAll(async () => {
  site = await startSite({ worker: false });
  userId = (await site.gen.users.create({ email: 'partial@example.com', password: PASSWORD })).id;
  api = new Client(site.url, { authorization: `Bearer ${(await site.gen.users.createToken(userId, 'partial')).token}` });
  browser = new Client(site.url);
  expect((await browser.login('partial@example.com', PASSWORD)).status).toBe(303);
});
afterAll(() => site?.close());

describe('a partial task', () => {
  it('shows what is missing and a retry button on its dataset page; the retry queues it again', async () => {
    const task = await endedTask('partial');
    expect(task.status).toBe('partial');
    const page = await browser.get(`/datasets/${task.id}`);
    expect(page.status).toBe(200);
    expect(page.text).toContain('class="status status-partial"');
    expect(page.text).toContain(`action="/datasets/${task.id}/retry"`);
    expect(page.text).toContain('id="task-missing"');
    expect(page.text).toContain('0 stored of 10 requested');
    expect(page.text).toContain('0 stored of 40 expected');
    const retried = await browser.post(`/datasets/${task.id}/retry`);
    expect(retried.status).toBe(303);
    expect((await site.gen.tasks.get(task.id)).status).not.toBe('partial');
  });

  it('failed and cancelled tasks get the retry button too; a completed one does not', async () => {
    for (const status of ['failed', 'cancelled']) {
      const task = await endedTask(status);
      const page = await browser.get(`/datasets/${task.id}`);
      expect(page.text, status).toContain(`action="/datasets/${task.id}/retry"`);
      expect(page.text, status).toContain('id="task-missing"');
    }
    const completed = await endedTask('completed');
    const page = await browser.get(`/datasets/${completed.id}`);
    expect(page.text).not.toContain(`action="/datasets/${completed.id}/retry"`);
  });

  it('is counted on the dashboard, filtered in the history and the API', async () => {
    const task = await endedTask('partial');
    const dashboard = await browser.get('/dashboard');
    expect(dashboard.status).toBe(200);
    expect(dashboard.text).toMatch(/id="total-partial">\d+</);
    const history = await browser.get('/history?status=partial');
    expect(history.status).toBe(200);
    expect(history.text).toContain(task.id);
    expect(history.text).toContain('<option value="partial" selected>');
    const listed = (await api.get('/api/v1/tasks?status=partial')).json() as { tasks: TaskView[] };
    expect(listed.tasks.map((t) => t.id)).toContain(task.id);
  });

  it('is final for the page script, styled, and documented in the OpenAPI document', async () => {
    const js = await browser.get('/static/app.js');
    expect(js.text).toMatch(/FINAL = \[[^\]]*'partial'/);
    expect((await browser.get('/static/app.css')).text).toContain('.status-partial');
    const doc = (await api.get('/api/v1/openapi.json')).json() as {
      paths: Record<string, { post?: { summary: string } }>;
      components: { schemas: { Task: { properties: { status: { enum: string[] } } } } };
    };
    expect(doc.paths['/tasks/{id}/retry']?.post?.summary).toBe('Retry an ended task that lacks something');
    expect(doc.components.schemas.Task.properties.status.enum).toContain('partial');
  });
});
