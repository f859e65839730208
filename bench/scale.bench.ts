/**
 * Scale benchmark (issue 22): a fleet of `avatargen worker` processes on this machine's loopback
 * (a PostgreSQL of its own, s3rver, provider-local text and the OpenAI image stand-in) against an
 * image limit scaled for a short run: 240 images per minute, enforced by the stand-in with 429 and
 * retry-after, and the same limit in the site's `provider_limits`. Three figures, one line:
 *
 *   BENCH scale.limit_use=<calls per minute / limit> scale.share_429=<429s / calls> scale.fair_ratio=<see below>
 *
 * - limit_use: image calls served per minute while the large task ran (its first call to the
 *   last call of the run, both tasks' calls), over the limit. Goal >= 0.9.
 * - share_429: image calls answered 429, over all image calls of the run. Goal <= 0.01.
 * - fair_ratio: a small task is run alone, then submitted shortly after a large one. Its time
 *   beside the large task, over its time alone plus its share: the extra time its own image calls
 *   take at a fair share of the limit (limit / tasks running) instead of all of it,
 *   `calls x (tasks - 1) / limit` minutes. 1 is a fair turn; a task queued behind the large one
 *   waits for all of it. Goal <= 1.5.
 *
 * BENCH_SCALE_WORKERS (default 3) and BENCH_SCALE_LIMIT (default 240) change the fleet and the limit;
 * IMAGE_JOBS_PER_WORKER and OPENAI_CONCURRENCY, when set, are passed to the workers.
 * Not part of `npm test`.
 */
import { callsPerMinute } from '../tests/support/openai-server.js';
import { startFleet } from '../tests/support/netns.js';
import { query } from '../tests/support/task-rows.js';

const WORKERS = Number(process.env.BENCH_SCALE_WORKERS ?? 3);
const LIMIT = Number(process.env.BENCH_SCALE_LIMIT ?? 240);
const MODEL = 'gpt-image-1';
/** 10 x 4: one base and one grid per persona, 20 image calls (5 s of the limit). */
const SMALL = { count: 10, imagesPerPersona: 4 };
/** 120 x 8: one base and two grids per persona, 360 image calls (90 s at 240/min). */
const LARGE = { count: 120, imagesPerPersona: 8 };
/** The small task comes this long after the large one, once the large one is busy. */
const SMALL_AFTER_MS = 15_000;
const calls = (task: { count: number; imagesPerPersona: number }) => task.count * (1 + task.imagesPerPersona / 4);

const tuning = Object.fromEntries(
  ['IMAGE_JOBS_PER_WORKER', 'OPENAI_CONCURRENCY'].flatMap((name) => (process.env[name] ? [[name, process.env[name] as string]] : [])),
);
const fleet = await startFleet({ hosts: null, workers: WORKERS, imagesPerMinute: LIMIT, model: MODEL, name: 'bench-scale', env: tuning });
try {
  const limits: Record<string, unknown> = { provider_limits: [{ provider: 'openai', model: MODEL, images_per_minute: LIMIT }] };
  await fleet.gen.settings.update(limits);
  await fleet.startWorkers();
  const { gen, openai } = fleet;

  /** Submits a task and resolves with its seconds from submit to end (checked completed), and where that time went. */
  const runTask = async (description: string, size: { count: number; imagesPerPersona: number }) => {
    const submitted = Date.now();
    const started = performance.now();
    const task = await gen.tasks.submit({ description, language: 'en', ...size });
    const ended = await gen.tasks.waitUntilEnded(task.id, { pollMs: 200, timeoutMs: 600_000 });
    const seconds = (performance.now() - started) / 1000;
    if (ended.status !== 'completed') throw new Error(`${description}: ${ended.status} ${JSON.stringify(ended.errorLog ?? [])}`);
    const [marks] = await query<Record<string, Date>>(
      fleet.pg.url,
      `select (select max(created_at) from personas where task_id = $1) as personas,
              (select min(created_at) from persona_images where task_id = $1) as first_picture,
              (select max(created_at) from persona_images where task_id = $1) as last_picture`,
      [task.id],
    );
    const at = (date: Date | undefined) => (date ? `${((date.getTime() - submitted) / 1000).toFixed(1)} s` : '-');
    const timeline = `personas stored by ${at(marks?.personas)}, pictures from ${at(marks?.first_picture)} to ${at(marks?.last_picture)}`;
    return { seconds, timeline };
  };

  const small = await runTask('Beekeepers in Slovenia', SMALL);
  const alone = small.seconds;
  console.log(
    `small task (${SMALL.count} x ${SMALL.imagesPerPersona}, ${calls(SMALL)} image calls) alone: ${alone.toFixed(1)} s (${small.timeline})`,
  );

  const before = openai.rate.entries.length;
  const large = runTask('Glassblowers in Murano', LARGE);
  await new Promise((resolve) => setTimeout(resolve, SMALL_AFTER_MS));
  const besideRun = await runTask('Beekeepers in Slovenia', SMALL);
  const beside = besideRun.seconds;
  const largeSeconds = (await large).seconds;
  const share = (calls(SMALL) * (2 - 1) * 60) / LIMIT;
  const fairRatio = beside / (alone + share);
  console.log(
    `small task beside the large one (${LARGE.count} x ${LARGE.imagesPerPersona}, ${calls(LARGE)} calls, ${largeSeconds.toFixed(1)} s): ` +
      `${beside.toFixed(1)} s (${besideRun.timeline}); its share with 2 tasks: ${share.toFixed(1)} s; fair_ratio = ${beside.toFixed(1)} / (${alone.toFixed(1)} + ${share.toFixed(1)})`,
  );

  const run = openai.rate.entries.slice(before);
  const served = run.filter((e) => e.status === 200);
  const spanMinutes = ((served.at(-1)?.at ?? 0) - (served[0]?.at ?? 0)) / 60_000;
  const limitUse = (served.length - 1) / spanMinutes / LIMIT;
  const minutes = callsPerMinute(run);
  const share429 = openai.rate.rateLimited / openai.rate.calls;
  console.log(
    `${WORKERS} workers${Object.keys(tuning).length ? ` (${JSON.stringify(tuning)})` : ''}, limit ${LIMIT}/min: ${served.length} calls served over ${(spanMinutes * 60).toFixed(1)} s ` +
      `(${(served.length / spanMinutes).toFixed(1)}/min); whole sliding minutes ${minutes ? `${minutes.min}-${minutes.max}` : 'none'}; ` +
      `${openai.rate.rateLimited} of ${openai.rate.calls} calls answered 429`,
  );
  console.log(
    `BENCH scale.limit_use=${limitUse.toFixed(3)} scale.share_429=${share429.toFixed(4)} scale.fair_ratio=${fairRatio.toFixed(2)}`,
  );
} finally {
  await fleet.close();
}
