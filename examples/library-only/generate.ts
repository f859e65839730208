/**
 * Generates a persona dataset with the library alone, no website: core + provider-local (offline
 * personas, prompts and pictures) + the real image processor + filesystem storage, on the
 * PostgreSQL in DATABASE_URL. Runs a worker in this process until the task is finished, then
 * writes the dataset as a ZIP.
 *
 *   DATABASE_URL=postgresql://user@127.0.0.1:5432/db \
 *   node --conditions=source --import tsx examples/library-only/generate.ts \
 *     --description "Nurses in Texas" --count 10 --images 4 --out dataset.zip
 *
 * (`--conditions=source --import tsx` runs the workspace from its TypeScript sources; with the
 * published packages, build and run it as plain JavaScript.)
 */
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { createAvatarGen, loadConfig } from '@avatargen/core';
import { imageOpencvPlugin } from '@avatargen/image-opencv';
import { localPlugin } from '@avatargen/provider-local';
import { filesystemStoragePlugin } from '@avatargen/storage-filesystem';

const { values } = parseArgs({
  options: {
    description: { type: 'string', short: 'd', default: 'Nurses and teachers in their 30s living in Texas' },
    count: { type: 'string', short: 'n', default: '10' },
    images: { type: 'string', short: 'i', default: '4' },
    language: { type: 'string', short: 'l', default: 'en' },
    out: { type: 'string', short: 'o', default: 'dataset.zip' },
    'image-size': { type: 'string', default: '256' },
  },
});

// Every setting comes from the environment, validated (DATABASE_URL, DATA_DIR, LOG_LEVEL...).
const config = loadConfig(process.env);
if (!config.DATABASE_URL && !config.DB_HOST) {
  process.stderr.write('Set DATABASE_URL (or DB_HOST, DB_NAME, DB_USER) to a PostgreSQL database.\n');
  process.exit(2);
}

const gen = await createAvatarGen({
  config,
  // Order matters only when two plugins fill the same port: the later one wins.
  plugins: [
    localPlugin({ imageSize: Number(values['image-size']) }),
    imageOpencvPlugin(),
    filesystemStoragePlugin({ root: join(config.DATA_DIR, 'storage') }),
  ],
});

let exitCode = 1;
try {
  await gen.worker.start();
  const submitted = await gen.tasks.submit({
    description: values.description,
    language: values.language,
    count: Number(values.count),
    imagesPerPersona: Number(values.images),
  });
  process.stderr.write(`task ${submitted.id}: ${submitted.status}\n`);

  const task = await gen.tasks.waitUntilEnded(submitted.id);
  process.stderr.write(`task ${task.id}: ${task.status}, ${task.progress.personasStored} personas, ${task.progress.imagesStored} images\n`);
  for (const entry of task.errorLog) process.stderr.write(`  ${entry.stage}: ${entry.message}\n`);

  if (task.status === 'completed') {
    const out = resolve(values.out);
    await mkdir(dirname(out), { recursive: true });
    const zip = await gen.exports.zip(task.id);
    const file = createWriteStream(out);
    await pipeline(zip, file);
    // One JSON line on stdout for scripts: where the dataset is and what it holds.
    process.stdout.write(
      `${JSON.stringify({ taskId: task.id, zip: out, personas: task.progress.personasStored, images: task.progress.imagesStored })}\n`,
    );
    exitCode = 0;
  }
} finally {
  await gen.close();
}
process.exit(exitCode);
