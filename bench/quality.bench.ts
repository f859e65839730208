/**
 * `npm run bench:quality`: the whole quality report (gen.quality.report) on a 300 x 20 dataset in
 * PostgreSQL: 300 personas with five texts each (bios of 40-60 words from a word list, a few
 * planted copies, a few shared names) and 20 pictures plus a base each, every one with a stored
 * perceptual hash (random, with planted near-identical pairs). The rows are written straight into
 * the database; the report reads them back as it would after a real task. Median of 7 runs after
 * 2 warm-ups, with the process's CPU time beside it. Not part of `npm test`.
 *
 * Last line: BENCH quality.report_ms=<median ms> quality.report_cpu_ms=<median CPU ms> (goal < 2000)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Persona, PersonaImage } from '../packages/core/src/db/entities.js';
import { createAvatarGen, createRandom, personaColumns } from '../packages/core/src/index.js';
import { createTestDatabase, samplePersona } from '../packages/core/src/testing.js';
import { fakePlugin, fakeServices } from '../packages/core/test/support/fakes.js';

const PERSONAS = 300;
const PICTURES = 20;
const RUNS = 7;
const WORDS =
  'harbour violin orchard midnight granite festival lantern compass meadow engine quartz saffron tundra ballad copper glacier pottery riverbank telescope waltz cathedral mosaic bicycle thunder pepper canyon library marble sailboat cinnamon nurse teacher runner garden coffee weekend mountain family music travel'.split(
    ' ',
  );

const db = await createTestDatabase('avatargen_bench');
const storage = mkdtempSync(join(tmpdir(), 'avatargen-bench-'));
const gen = await createAvatarGen({
  config: { DATABASE_URL: db.url, LOG_LEVEL: 'warn' },
  plugins: [fakePlugin(fakeServices(), storage)],
});
try {
  const task = await gen.tasks.submit({ description: 'Quality benchmark', language: 'en', count: PERSONAS, imagesPerPersona: PICTURES });
  const random = createRandom('quality-bench');
  const text = () => Array.from({ length: random.int(40, 60) }, () => random.pick(WORDS)).join(' ');
  const hash = () => Array.from({ length: 16 }, () => random.pick([...'0123456789abcdef'])).join('');
  const em = gen.orm.em.fork();
  const personas = Array.from({ length: PERSONAS }, (_, i) => {
    const own = text();
    const base = samplePersona({ firstName: `Name${i % 290}`, lastName: `Family${i % 290}` });
    return {
      taskId: task.id,
      batchNo: Math.floor(i / 10),
      batchIndex: i % 10,
      ...personaColumns({ ...base, bios: { facebook: own, instagram: text(), x: text(), tiktok: text() }, about: text() }),
      prompts: [],
      imagesStatus: 'done' as const,
      basePhash: hash(),
      baseImageKey: `tasks/${task.id}/${i}/base.png`,
      createdAt: new Date(),
    };
  });
  await em.insertMany(Persona, personas);
  const ids = (await em.execute('select id from personas where task_id = ? order by id', [task.id])).map((r) => r.id as number);
  const images = ids.flatMap((personaId) =>
    Array.from({ length: PICTURES }, (_, idx) => ({
      personaId,
      idx,
      taskId: task.id,
      gridNo: Math.floor(idx / 4),
      key: `tasks/${task.id}/${personaId}/${idx}.jpg`,
      contentType: 'image/jpeg',
      width: 512,
      height: 512,
      style: null,
      phash: hash(),
      createdAt: new Date(),
    })),
  );
  await em.insertMany(PersonaImage, images);

  const times: number[] = [];
  const cpu: number[] = [];
  let flagged = 0;
  for (let run = 0; run < RUNS + 2; run++) {
    const startCpu = process.cpuUsage();
    const started = performance.now();
    const report = await gen.quality.report(task.id);
    const wall = performance.now() - started;
    const used = process.cpuUsage(startCpu);
    flagged = report.flaggedPersonas.length;
    if (run >= 2) {
      times.push(wall);
      cpu.push((used.user + used.system) / 1000);
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
  console.log(`dataset: ${PERSONAS} personas x ${PICTURES} pictures (+ base), ${PERSONAS * 5} texts; ${flagged} personas flagged`);
  console.log(`report: median ${median(times).toFixed(1)} ms wall, ${median(cpu).toFixed(1)} ms CPU over ${RUNS} runs (goal < 2000 ms)`);
  console.log(`BENCH quality.report_ms=${median(times).toFixed(1)} quality.report_cpu_ms=${median(cpu).toFixed(1)}`);
} finally {
  await gen.close();
  await db.drop();
  rmSync(storage, { recursive: true, force: true });
}
process.exit(0);
