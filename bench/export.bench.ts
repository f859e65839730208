/**
 * `npm run bench:export`: ZIP exports of a 30 x 20 and a 300 x 20 dataset (images of about
 * 100 KB) streamed through the host, on the filesystem storage and on S3 (s3rver, started here as
 * the tests do), against reading the same objects through the storage port in the same run.
 *
 * Each export runs in a fresh host (the built `avatargen web`, with the bin's node flags) in a
 * child process: its resident memory at rest is read from /proc, the peak is reset
 * (clear_refs), and the peak during the export is read when it is done. The dataset is made by
 * the real pipeline with provider-local personas and an image provider that returns ~100 KB noise
 * PNGs; S3 gets a copy of the same objects under the same keys. Needs the test PostgreSQL
 * (TEST_DATABASE_URL or 127.0.0.1:5432).
 *
 * BENCH_PERSONAS=<n> changes the large size; BENCH_STORAGES=fs (or s3) measures one storage; BENCH_FROM=source runs the host on the sources
 * (tsx) without building; BENCH_NO_BUILD=1 skips the build; BENCH_HOST_FLAGS="..." other node
 * flags for the host; BENCH_PROFILE=<dir> writes CPU profiles of the hosts.
 *
 * Last line: BENCH export.peak_growth_mb=<max growth over sizes and storages>
 *   export.vs_raw=<filesystem: export MB/s / raw MB/s> export.s3_vs_raw=<the same on s3rver>
 *   export.no_zip_vs_raw= export.s3_no_zip_vs_raw=<the objects read, hashed and sent without a ZIP,
 *   in this process: what the machine allows before any archive framing> and the growth per
 *   storage and size.
 * Goals: growth <= 64 MB, the same for both sizes; export >= 0.8x raw on both storages.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AvatarGenPlugin,
  createAvatarGen,
  definePlugin,
  type ImageProcessor,
  type ObjectStorage,
  neutralStyle,
  readObject,
} from '@avatargen/core';
import { createTestDatabase, encodePng } from '@avatargen/core/testing';
import { localPlugin } from '@avatargen/provider-local';
import { createFilesystemStorage, filesystemStoragePlugin } from '@avatargen/storage-filesystem';
import { createS3Storage } from '@avatargen/storage-s3';
import { S3RVER_KEY, startS3rver } from '../packages/storage-s3/test/support.js';
import { buildPackages, hostNodeFlags } from './host-flags.js';

const SIZES = [30, Number(process.env.BENCH_PERSONAS ?? 300)];
const IMAGES = 20;
const SIDE = 184; // noise PNG of 184 x 184: about 100 KB
const SECRET = 'export-bench-secret-key-0123456789abcdef';
const BUCKET = 'avatar-images';
const repoRoot = join(import.meta.dirname, '..');

function noisePng(): Buffer {
  // Random pixels do not compress: the PNG is about SIDE * SIDE * 3 bytes.
  const noise = randomBytes(SIDE * SIDE * 3);
  return encodePng(SIDE, SIDE, (x, y) => {
    const i = (y * SIDE + x) * 3;
    return [noise[i] as number, noise[i + 1] as number, noise[i + 2] as number];
  });
}

/** Images of ~100 KB, passed through unchanged: the pipeline stores them, the export streams them. */
function benchImagesPlugin(): AvatarGenPlugin {
  const images = Array.from({ length: 8 }, () => noisePng());
  let n = 0;
  const image = () => ({ data: images[n++ % images.length] as Buffer, contentType: 'image/png' });
  const passThrough: ImageProcessor = {
    splitGrid: async (bytes) => [bytes, bytes, bytes, bytes],
    trimWhitespace: async (bytes) => bytes,
    cropWhiteBorders: async (bytes) => bytes,
    randomizeStyle: async (bytes, { seed }) => ({
      data: bytes,
      contentType: 'image/png',
      params: neutralStyle(seed),
    }),
    thumbnail: async (bytes) => bytes,
    processGrid: async () =>
      [0, 1, 2, 3].map((i) => ({ ...image(), width: SIDE, height: SIDE, style: null, data: images[(n + i) % images.length] as Buffer })),
    processPicture: async (bytes) => ({ data: bytes, contentType: 'image/png', width: SIDE, height: SIDE, style: null }),
  };
  return definePlugin({
    name: 'bench-images',
    register(context) {
      context.provide('imageProvider', {
        baseImage: async () => image(),
        pictures: async ({ count }) => ({ kind: 'images', images: Array.from({ length: count }, () => image()) }),
      });
      context.provide('imageProcessor', passThrough);
    },
  });
}

/** A port nobody listens on (the bin takes APP_PORT, not 0). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** The bin's node flags (from its shebang), none when it has none. */
function nodeFlags(): string[] {
  try {
    return hostNodeFlags();
  } catch {
    return [];
  }
}

const statusMb = (pid: number, field: 'VmRSS' | 'VmHWM') =>
  Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;

/** The dataset made once, in this process, on the filesystem storage. */
async function makeDatasets(
  dbUrl: string,
  dataDir: string,
): Promise<{ token: string; tasks: Array<{ id: string; count: number; keys: string[] }> }> {
  const plugins = [localPlugin({ imageSize: 32 }), benchImagesPlugin(), filesystemStoragePlugin({ root: join(dataDir, 'storage') })];
  const config = { DATABASE_URL: dbUrl, DATA_DIR: dataDir, LOG_LEVEL: 'silent', IMAGE_JOBS_PER_WORKER: 12, IMAGE_CONCURRENCY: 12 };
  const gen = await createAvatarGen({ config, plugins, pipeline: { reconcileIntervalMs: 500, pollingIntervalSeconds: 0.5 } });
  try {
    await gen.worker.start();
    await gen.settings.update({ crop_white_borders: false, randomize_image_style: false });
    const user = await gen.users.create({ email: 'bench@example.com', password: 'bench passphrase 300' });
    const { token } = await gen.users.createToken(user.id, 'bench');
    const started = Date.now();
    const tasks = [];
    for (const count of SIZES) {
      const task = await gen.tasks.submit(
        { description: 'Export bench people', language: 'en', count, imagesPerPersona: IMAGES },
        { userId: user.id },
      );
      tasks.push({ id: task.id, count, keys: [] as string[] });
    }
    for (const task of tasks) {
      for (;;) {
        const current = await gen.tasks.get(task.id);
        if (current.status === 'completed') break;
        if (current.status === 'failed' || current.status === 'cancelled')
          throw new Error(`task ${current.status}: ${JSON.stringify(current.errorLog.slice(-3))}`);
        await new Promise((r) => setTimeout(r, 500));
      }
      for await (const persona of gen.personas.all(task.id)) {
        if (persona.baseImage) task.keys.push(persona.baseImage.key);
        for (const image of persona.images) task.keys.push(image.key);
      }
    }
    console.log(
      `datasets: ${tasks.map((t) => `${t.count} personas x ${IMAGES} images (+ base) = ${t.keys.length} objects`).join('; ')}, made in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    return { token, tasks };
  } finally {
    await gen.close();
  }
}

/** The same objects read whole, one after another, through the storage port. */
async function readRaw(storage: ObjectStorage, keys: string[]): Promise<number> {
  const t0 = performance.now();
  let bytes = 0;
  for (const key of keys) bytes += (await readObject(storage, key)).length;
  return bytes / 1e6 / ((performance.now() - t0) / 1000);
}

/**
 * The export without its ZIP: the same objects read 8 ahead, hashed (sha256) and written to another
 * process (`cat > /dev/null` through a pipe), in this process. What reading, hashing and handing the
 * bytes to a client cost on this machine before any archive framing.
 */
async function readHashAndSend(storage: ObjectStorage, keys: string[]): Promise<number> {
  const sink = spawn('sh', ['-c', 'cat > /dev/null'], { stdio: ['pipe', 'ignore', 'inherit'] });
  const out = sink.stdin as NonNullable<typeof sink.stdin>;
  const exited = new Promise((r) => sink.once('exit', r));
  const t0 = performance.now();
  let bytes = 0;
  const send = async (data: Buffer) => {
    createHash('sha256').update(data).digest('hex');
    bytes += data.length;
    if (!out.write(data)) await once(out, 'drain');
  };
  const ahead: Promise<Buffer>[] = [];
  for (const key of keys) {
    ahead.push(readObject(storage, key));
    if (ahead.length === 8) await send(await (ahead.shift() as Promise<Buffer>));
  }
  for (const next of ahead) await send(await next);
  out.end();
  await exited;
  return bytes / 1e6 / ((performance.now() - t0) / 1000);
}

/** A fresh host: one ZIP export over HTTP; its rate, and its memory at rest and at the peak. */
async function exportOnce(env: NodeJS.ProcessEnv, taskId: string, token: string, label: string) {
  const port = await freePort();
  const fromSource = process.env.BENCH_FROM === 'source';
  // The command as installed (its launcher, where there is one), else the built entry.
  const launcher = join(repoRoot, 'packages/host-koa/bin/avatargen.cjs');
  const bin = fromSource
    ? ['--conditions=source', '--import', 'tsx', join(repoRoot, 'packages/host-koa/src/bin.ts')]
    : [existsSync(launcher) ? launcher : join(repoRoot, 'packages/host-koa/dist/bin.js')];
  const profile = process.env.BENCH_PROFILE
    ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`, `--cpu-prof-name=${label}.cpuprofile`]
    : [];
  const child: ChildProcess = spawn(process.execPath, [...nodeFlags(), ...profile, ...bin, 'web'], {
    cwd: env.DATA_DIR,
    env: { ...env, APP_PORT: String(port), APP_HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      let text = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (/listening on http/.test(text)) resolve();
      });
      child.once('exit', (code) => reject(new Error(`host exited with ${code}`)));
    });
    const pid = child.pid as number;
    await new Promise((r) => setTimeout(r, 1000));
    const rest = statusMb(pid, 'VmRSS');
    writeFileSync(`/proc/${pid}/clear_refs`, '5'); // VmHWM from here on
    const t0 = performance.now();
    // The peak so far against the bytes sent so far, every 100 ms: whether the growth levels off.
    let received = 0;
    const samples: Array<{ bytes: number; peak: number }> = [];
    const sampler = setInterval(() => samples.push({ bytes: received, peak: statusMb(pid, 'VmHWM') }), 100);
    const zipBytes = await new Promise<number>((resolve, reject) => {
      // A plain node:http client that only counts bytes: the download itself should cost little.
      const req = request(
        `http://127.0.0.1:${port}/api/v1/tasks/${taskId}/exports/zip`,
        { method: 'POST', headers: { authorization: `Bearer ${token}` } },
        (res) => {
          if (res.statusCode !== 200) reject(new Error(`export answered ${res.statusCode}`));
          let bytes = 0;
          res.on('data', (chunk: Buffer) => {
            bytes += chunk.length;
            received = bytes;
          });
          res.on('end', () => resolve(bytes));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    });
    const seconds = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    const peak = statusMb(pid, 'VmHWM');
    const rate = zipBytes / 1e6 / seconds;
    const byShare = [0.1, 0.25, 0.5, 0.75, 0.9]
      .map((share) => {
        const sample = samples.find((x) => x.bytes >= share * zipBytes);
        return sample ? `+${(sample.peak - rest).toFixed(1)} MB by ${share * 100}%` : null;
      })
      .filter(Boolean);
    console.log(
      `${label.padEnd(16)} ${(zipBytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(2)} s = ${rate.toFixed(1)} MB/s; RSS ${rest.toFixed(1)} MB at rest, ${peak.toFixed(1)} MB peak (+${(peak - rest).toFixed(1)} MB; ${byShare.join(', ') || 'too short to sample'})`,
    );
    return { rate, growth: peak - rest, zipBytes };
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
  }
}

async function main(): Promise<void> {
  buildPackages();
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const db = await createTestDatabase('avatargen_bench_export');
  const dataDir = mkdtempSync(join(tmpdir(), 'avatargen-bench-export-'));
  const storages = (process.env.BENCH_STORAGES ?? 'fs,s3').split(',');
  const s3 = await startS3rver([BUCKET, 'avatar-faces']);
  try {
    const { token, tasks } = await makeDatasets(db.url, dataDir);
    const filesystem = createFilesystemStorage({ root: join(dataDir, 'storage') });
    const onS3 = createS3Storage({ endpoint: s3.endpoint, accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY, bucket: BUCKET });
    // S3 gets the same objects under the same keys.
    const all = storages.includes('s3') ? tasks.flatMap((t) => t.keys) : [];
    const c0 = performance.now();
    for (let next = 0; next < all.length; ) {
      const batch = all.slice(next, next + 16);
      next += batch.length;
      await Promise.all(batch.map(async (key) => onS3.put(key, await readObject(filesystem, key), { contentType: 'image/png' })));
    }
    console.log(`copied ${all.length} objects to s3rver in ${((performance.now() - c0) / 1000).toFixed(1)} s`);

    const baseEnv = { ...process.env, DATABASE_URL: db.url, DATA_DIR: dataDir, SECRET_KEY: SECRET, LOG_LEVEL: 'silent' };
    const s3Env = { ...baseEnv, S3_ENDPOINT: s3.endpoint, S3_ACCESS_KEY: S3RVER_KEY, S3_SECRET_KEY: S3RVER_KEY, S3_BUCKET_NAME: BUCKET };
    const large = tasks[tasks.length - 1] as (typeof tasks)[number];
    const growth: Record<string, number> = {};
    const vsRaw: Record<string, number> = {};
    const floorVsRaw: Record<string, number> = {};
    for (const [name, storage, env] of [
      ['fs', filesystem, baseEnv],
      ['s3', onS3, s3Env],
    ] as const) {
      if (!storages.includes(name)) continue;
      await readRaw(storage, large.keys); // caches warm for both
      let largeRate = 0;
      for (const task of tasks) {
        const result = await exportOnce(env, task.id, token, `${name} ${task.count}x${IMAGES}`);
        growth[`${name}_growth_${task.count}`] = result.growth;
        if (task === large) largeRate = result.rate;
      }
      const raw = await readRaw(storage, large.keys);
      const floor = await readHashAndSend(storage, large.keys);
      vsRaw[name] = largeRate / raw;
      floorVsRaw[name] = floor / raw;
      console.log(
        `${`${name} raw reads`.padEnd(16)} ${raw.toFixed(1)} MB/s (storage port, one after another); export ${vsRaw[name]?.toFixed(3)}x that; ` +
          `read 8 ahead + sha256 + sent to a pipe, no ZIP: ${floor.toFixed(1)} MB/s (${floorVsRaw[name]?.toFixed(3)}x)`,
      );
    }
    await onS3.close();
    console.log(
      `host node flags: ${nodeFlags().join(' ') || '(none)'}; load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')} on ${availableParallelism()} cores`,
    );
    const fields = Object.entries(growth).map(([k, v]) => `export.${k}_mb=${v.toFixed(1)}`);
    console.log(
      `BENCH export.peak_growth_mb=${Math.max(...Object.values(growth)).toFixed(1)} export.vs_raw=${vsRaw.fs?.toFixed(3)} export.s3_vs_raw=${vsRaw.s3?.toFixed(3)} export.no_zip_vs_raw=${floorVsRaw.fs?.toFixed(3)} export.s3_no_zip_vs_raw=${floorVsRaw.s3?.toFixed(3)} ${fields.join(' ')}`,
    );
  } finally {
    await s3.close();
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
