import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, type TestDatabase } from '@avatargen/core/testing';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type AvatargenProcess, runAvatargen } from '../support/avatargen.js';
import { type ChatServer, startChatServer } from '../support/chat-server.js';
import { type OpenAIServer, startOpenAIServer } from '../support/openai-server.js';
import { query } from '../support/task-rows.js';
import { datasetZipSummary } from '../support/zip.js';

/**
 * Issue 17: personas and prompts from an OpenAI-compatible chat model, no Flowise. A real
 * `avatargen generate` process with only OpenAI variables: text from the chat stand-in (its own
 * server and key, as with Ollama or a gateway), pictures from the OpenAI Images stand-in. The
 * persona stage meets a cut answer (asked again with a smaller batch), a short answer (the
 * pipeline asks again for the rest) and a 429 with retry-after; the task still completes, and
 * the tokens the chat server reported are summed on the task.
 */
const CHAT_KEY = 'sk-test-chat-e2e-7d21';
const OPENAI_KEY = 'sk-test-images-e2e-93af';
let db: TestDatabase;
let dir: string;
let chat: ChatServer;
let images: OpenAIServer;
let app: AvatargenProcess | undefined;

beforeAll(async () => {
  db = await createTestDatabase('avatargen_e2e_chat');
  dir = mkdtempSync(join(tmpdir(), 'avatargen-e2e-chat-'));
  // image-opencv's worker threads load tsx from the current folder when run from sources.
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(fileURLToPath(new URL('../../node_modules/tsx', import.meta.url)), join(dir, 'node_modules', 'tsx'));
  chat = await startChatServer({ apiKey: CHAT_KEY, model: 'gpt-4.1-mini' });
  images = await startOpenAIServer({ apiKey: OPENAI_KEY });
});
afterAll(async () => {
  await app?.stop(10_000);
  await chat?.close();
  await images?.close();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

/** `avatargen generate` with only OpenAI variables: the chat stand-in for text, the Images stand-in for pictures. */
const generate = (args: string[]): AvatargenProcess =>
  runAvatargen(['generate', ...args], {
    cwd: dir,
    env: {
      DATABASE_URL: db.url,
      DATA_DIR: join(dir, 'data'),
      OPENAI_API_KEY: OPENAI_KEY,
      OPENAI_BASE_URL: images.baseURL,
      OPENAI_CHAT_BASE_URL: chat.baseURL,
      OPENAI_CHAT_API_KEY: CHAT_KEY,
      IMAGE_PROCESSOR_THREADS: '1',
      JOB_RETRY_DELAY_MS: '50',
      LOG_LEVEL: 'warn',
    },
  });

it('avatargen generate makes a whole dataset with a chat model for text and OpenAI images for pictures', async () => {
  // persona call 1 is cut at the token limit, call 2 (half the batch) answers 2 of 5, call 3 (the rest) is rate limited once
  chat.enqueue({ kind: 'length' }, { kind: 'normal', count: 2 }, { kind: 'rate-limit', retryAfter: '1' });
  const out = join(dir, 'dataset.zip');
  app = generate(['-d', 'Tram drivers in Lisbon', '-l', 'pt', '-n', '10', '-i', '8', '-o', out]);
  const code = await app.exited;
  const output = app.output();
  expect(code, output.slice(-3000)).toBe(0);
  expect(output).not.toContain(CHAT_KEY);
  expect(output).not.toContain(OPENAI_KEY);

  // every request was well formed, with the chat key on the chat server and the image key on the other
  expect(chat.requests.flatMap((r) => r.problems)).toEqual([]);
  expect(images.requests.flatMap((r) => r.problems)).toEqual([]);
  expect(chat.requests.every((r) => r.authorization === `Bearer ${CHAT_KEY}`)).toBe(true);
  const personaCalls = chat.requests.filter((r) => r.asked === 'personas');
  expect(personaCalls.map((r) => [r.count, r.answer])).toEqual([
    [10, 'length'],
    [5, 'normal'],
    [8, 'rate-limit'],
    [8, 'normal'],
  ]);
  expect(personaCalls.every((r) => (r.body.response_format as { type: string }).type === 'json_schema')).toBe(true);
  // two prompts per persona (8 images = 2 grids), each asked with the persona's job and current city
  const promptCalls = chat.requests.filter((r) => r.asked === 'prompt');
  expect(promptCalls).toHaveLength(20);
  expect(promptCalls.every((r) => JSON.stringify(r.body.messages).includes('job_title'))).toBe(true);

  const zip = await datasetZipSummary(out);
  // 10 base selfies and 8 pictures each
  expect(zip).toEqual({ images: 10 + 80, missing: [], status: 'completed' });

  // the tokens of every chat answer, summed on the task (the 429 had none); the image calls are
  // counted apart, under the image model, with the pictures they made
  const rows = await query<{ model: string; calls: number; input: number; output: number; images: number }>(
    db.url,
    'select model, sum(calls)::int as calls, sum(input_tokens)::int as input, sum(output_tokens)::int as output, sum(images)::int as images from task_usage group by model order by model',
  );
  const text = rows.filter((r) => r.images === 0);
  expect(text).toEqual([
    {
      model: expect.any(String),
      calls: chat.usageTotals().calls,
      input: chat.usageTotals().inputTokens,
      output: chat.usageTotals().outputTokens,
      images: 0,
    },
  ]);
  expect(chat.usageTotals().calls).toBe(3 + 20);
  const imageRows = rows.filter((r) => r.images > 0);
  expect(imageRows.map((r) => r.images)).toEqual([10 + 20]); // 10 base selfies and 20 grids of 4
});

it('a chat model that ignores the quotas it is given: every persona is checked, asked again twice, kept and counted off target', async () => {
  chat.reset();
  const out = join(dir, 'targeted.zip');
  app = generate(['-d', 'Retired teachers', '-l', 'en', '-n', '10', '-i', '4', '--ages', '95-99', '-o', out]);
  const code = await app.exited;
  expect(code, app.output().slice(-3000)).toBe(0);
  // each call named every persona's quota; the model ignored them, so core asked again twice
  const personaCalls = chat.requests.filter((r) => r.asked === 'personas');
  expect(personaCalls).toHaveLength(3);
  for (const call of personaCalls) expect(call.quotas).toEqual(Array.from({ length: 10 }, () => 'aged 95-99'));
  const [task] = await query<{ id: string; status: string; report: { offTargetPersonas: number; targets: unknown } }>(
    db.url,
    `select id, status, quality_report as report from generation_tasks where description = 'Retired teachers'`,
  );
  // nothing is missing, so the task completes; the report kept at its end says how far it is from the target
  expect(task?.status).toBe('completed');
  expect(task?.report.offTargetPersonas).toBe(30);
  expect(task?.report.targets).toEqual({
    personas: 10,
    dimensions: [{ dimension: 'ages', rows: [{ label: '95-99', requested: 10, achieved: 0 }], other: 10 }],
  });
  const zip = await datasetZipSummary(out);
  expect(zip).toEqual({ images: 10 + 40, missing: [], status: 'completed' });
});
