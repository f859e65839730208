/**
 * A worker process for the multi-process tests: the pipeline with the test stand-ins for the
 * external services, logging every provider call (with its pid) to CALL_LOG.
 */
import { createAvatarGen } from '../../src/index.js';
import { fakePlugin, fakeServices } from './fakes.js';
import { FAST_PIPELINE } from './harness.js';

const env = process.env;
const fakes = fakeServices({
  personaLatencyMs: Number(env.PERSONA_LATENCY_MS ?? 20),
  gridLatencyMs: Number(env.GRID_LATENCY_MS ?? 20),
  callLog: env.CALL_LOG,
  // A poison persona (by the end of its first name): asking for its base image kills this worker.
  failBase: (_seed, _face, firstName) => {
    if (env.POISON_NAME_END && firstName?.endsWith(env.POISON_NAME_END)) process.exit(3);
    return null;
  },
});
const gen = await createAvatarGen({
  config: {
    DATABASE_URL: env.DATABASE_URL,
    LOG_LEVEL: 'silent',
    JOB_RETRY_DELAY_MS: 5,
    JOB_EXPIRE_SECONDS: env.JOB_EXPIRE_SECONDS ?? 60,
    IMAGE_JOBS_PER_WORKER: env.IMAGE_JOBS_PER_WORKER ?? 4,
  },
  plugins: [fakePlugin(fakes, env.STORAGE_ROOT as string)],
  pipeline: { ...FAST_PIPELINE, jobAttempts: Number(env.JOB_ATTEMPTS ?? 8) },
});
await gen.worker.start();
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  gen.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
