import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, type TestDatabase } from '@avatargen/core/testing';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type AvatargenProcess, freePort, runAvatargen } from '../support/avatargen.js';
import { type FlowiseServer, startFlowiseServer } from '../support/flowise-server.js';
import { type OpenAIServer, startOpenAIServer } from '../support/openai-server.js';
import { Client, collectEvents } from '../support/web-client.js';

/**
 * `avatargen start` with Flowise and OpenAI configured: the assembler picks provider-flowise and
 * provider-openai instead of provider-local, talks to both services (local servers speaking their
 * wire formats) and never prints their keys.
 */
const FLOWISE_KEY = 'flowise-secret-key-5f1d';
const OPENAI_KEY = 'sk-test-openai-secret-91c2';
const ADMIN_PASSWORD = 'configured admin passphrase';
let db: TestDatabase;
let dir: string;
let flowise: FlowiseServer;
let openai: OpenAIServer;
let app: AvatargenProcess | undefined;

beforeAll(async () => {
  db = await createTestDatabase('avatargen_e2e_cfg');
  dir = mkdtempSync(join(tmpdir(), 'avatargen-e2e-configured-'));
  // image-opencv's worker threads load tsx from the current folder when run from sources.
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(fileURLToPath(new URL('../../node_modules/tsx', import.meta.url)), join(dir, 'node_modules', 'tsx'));
  flowise = await startFlowiseServer({ apiKey: FLOWISE_KEY });
  openai = await startOpenAIServer({ apiKey: OPENAI_KEY });
});
afterAll(async () => {
  await app?.stop(10_000);
  await flowise?.close();
  await openai?.close();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

it('generates a 10 x 4 dataset through Flowise and OpenAI, and never prints their keys', async () => {
  const port = await freePort();
  app = runAvatargen(['start'], {
    cwd: dir,
    env: {
      APP_PORT: String(port),
      DATABASE_URL: db.url,
      DATA_DIR: join(dir, 'data'),
      ADMIN_EMAIL: 'ops@example.com',
      ADMIN_PASSWORD,
      FLOWISE_URL: flowise.url,
      FLOWISE_API_KEY: FLOWISE_KEY,
      FLOWISE_PERSONA_FLOW_ID: flowise.personaFlowId,
      FLOWISE_PROMPT_FLOW_ID: flowise.promptFlowId,
      OPENAI_API_KEY: OPENAI_KEY,
      OPENAI_BASE_URL: openai.baseURL,
      IMAGE_PROCESSOR_THREADS: '1',
      LOG_LEVEL: 'debug',
    },
  });
  const [, base] = await app.waitFor(/listening on (http:\/\/\S+)/);
  expect(app.output()).toContain('personas: provider-flowise · images: provider-openai · storage: storage-filesystem');
  expect(app.output()).toContain('password: the one in ADMIN_PASSWORD');

  const c = new Client(base as string);
  expect((await c.login('ops@example.com', ADMIN_PASSWORD)).status).toBe(303);
  await c.get('/dashboard');
  const created = await c.request('POST', '/api/v1/tasks', {
    json: { description: 'Tram drivers in Lisbon', language: 'pt', count: 10, imagesPerPersona: 4 },
  });
  expect(created.status).toBe(201);
  const id = (created.json() as { id: string }).id;
  // the task's progress stream says when it has ended ('done')
  const cookie = [...c.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  const stream = await fetch(new URL(`/api/v1/tasks/${id}/events`, base), { headers: { cookie } });
  expect(stream.status).toBe(200);
  const events = await collectEvents(stream, (e) => e.event === 'done' || e.event === 'gone', 120_000);
  expect(events.at(-1)?.event).toBe('done');
  const task = (await c.get(`/api/v1/tasks/${id}`)).json() as {
    status: string;
    progress: { personasStored: number; imagesStored: number };
    errorLog: unknown[];
  };
  expect(task.errorLog).toEqual([]);
  expect(task).toMatchObject({ status: 'completed', progress: { personasStored: 10, imagesStored: 40 } });
  expect(flowise.requests.filter((r) => r.flowId === flowise.personaFlowId)).toHaveLength(1);
  expect(flowise.requests.filter((r) => r.flowId === flowise.promptFlowId)).toHaveLength(10);
  expect(openai.requests.length).toBe(20); // a base selfie and one grid per persona

  expect(await app.stop()).toBe(0);
  const output = app.output();
  expect(output).not.toContain(FLOWISE_KEY);
  expect(output).not.toContain(OPENAI_KEY);
  expect(output).not.toContain(ADMIN_PASSWORD);
});
