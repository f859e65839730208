/**
 * `npm run bench:export`: the ZIP of a 300 x 20 dataset (6,300 images of about 100 KB) streamed
 * through the host, against reading the same objects raw from the storage in the same run. The
 * host runs in a child process; its peak RSS (VmHWM) is read from /proc when the export is done.
 * The dataset is made by the real pipeline with provider-local personas and an image provider
 * that returns ~100 KB noise PNGs (the image processor passes them through: only the export is
 * measured). Needs the test PostgreSQL (TEST_DATABASE_URL or 127.0.0.1:5432).
 *
 * The host builds the ZIP in a worker thread (the filesystem storage offers a worker reader).
 *
 * BENCH_PERSONAS=<n> makes a smaller dataset; BENCH_MEM=1 prints the host's memory every second;
 * BENCH_PROFILE=<dir> writes a CPU profile of the host; BENCH_HOST_FLAGS="--max-semi-space-size=4"
 * runs the host with other node flags than the bin's.
 *
 * Last line: BENCH export.peak_rss_mb=<MB> export.vs_raw=<export MB/s / raw MB/s>
 * Goals: RSS < 150 MB whatever the dataset size; export >= 0.8x raw.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AvatarGenPlugin,
  createAvatarGen,
  definePlugin,
  type ImageProcessor,
  readImageInfo,
  readObject,
} from '@avatargen/core';
import { createTestDatabase, encodePng } from '@avatargen/core/testing';
import { createApp, listen } from '@avatargen/host-koa';
import { localPlugin } from '@avatargen/provider-local';
import { createFilesystemStorage, filesystemStoragePlugin, openFilesystemReader } from '@avatargen/storage-filesystem';
import { hostNodeFlags } from './host-flags.js';

const COUNT = Number(process.env.BENCH_PERSONAS ?? 300);
const IMAGES = 20;
const SIDE = 184; // noise PNG of 184 x 184: about 100 KB
const SECRET = 'export-bench-secret-key-0123456789abcdef';

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
      params: { seed, preset: 'natural', contrast: 1, blurSigma: null, sharpenAmount: null, grainSigma: null, vignetteStrength: null, jpegQuality: 90 },
    }),
    thumbnail: async (bytes) => bytes,
    processGrid: async () => [0, 1, 2, 3].map((i) => ({ ...image(), width: SIDE, height: SIDE, style: null, data: images[(n + i) % images.length] as Buffer })),
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

const config = (dbUrl: string, dataDir: string) => ({ DATABASE_URL: dbUrl, DATA_DIR: dataDir, LOG_LEVEL: 'silent', IMAGE_JOBS_PER_WORKER: 12, IMAGE_CONCURRENCY: 12 });
const plugins = (dataDir: string) => [localPlugin({ imageSize: 32 }), benchImagesPlugin(), filesystemStoragePlugin({ root: join(dataDir, 'storage') })];

/** Child process: the host on a random port; prints its URL. */
async function serve(dbUrl: string, dataDir: string): Promise<void> {
  const gen = await createAvatarGen({ config: config(dbUrl, dataDir), plugins: plugins(dataDir), migrate: false });
  const host = await listen(createApp(gen, { secretKey: SECRET }), { port: 0, hostname: '127.0.0.1' });
  process.stdout.write(`${JSON.stringify({ url: host.url })}\n`);
  if (process.env.BENCH_MEM) {
    setInterval(() => {
      const m = process.memoryUsage();
      const mb = (n: number) => (n / 1e6).toFixed(0);
      process.stderr.write(`mem rss ${mb(m.rss)} heap ${mb(m.heapUsed)}/${mb(m.heapTotal)} external ${mb(m.external)} arrayBuffers ${mb(m.arrayBuffers)}\n`);
    }, 1000).unref();
  }
  process.on('SIGTERM', async () => {
    await host.close(1000);
    await gen.close();
    process.exit(0);
  });
}

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
  return kb / 1024;
}

const repoRoot = join(import.meta.dirname, '..');

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

async function main(): Promise<void> {
  if (process.env.BENCH_FROM !== 'source' && !process.env.BENCH_NO_BUILD) {
    console.log('building the packages (npm run build) so the host runs as in production...');
    const build = spawnSync('npm', ['run', 'build'], { cwd: repoRoot, stdio: 'ignore' });
    if (build.status !== 0) throw new Error('npm run build failed');
  }
  const db = await createTestDatabase('avatargen_bench_export');
  const dataDir = mkdtempSync(join(tmpdir(), 'avatargen-bench-export-'));
  let child: ChildProcess | undefined;
  try {
    const gen = await createAvatarGen({ config: config(db.url, dataDir), plugins: plugins(dataDir), pipeline: { reconcileIntervalMs: 500, pollingIntervalSeconds: 0.5 } });
    let taskId = '';
    let inProcess = 0;
    let token = '';
    const keys: string[] = [];
    try {
      await gen.worker.start();
      await gen.settings.update({ crop_white_borders: false, randomize_image_style: false });
      const user = await gen.users.create({ email: 'bench@example.com', password: 'bench passphrase 300' });
      token = (await gen.users.createToken(user.id, 'bench')).token;
      const started = Date.now();
      const task = await gen.tasks.submit({ description: 'Export bench people', language: 'en', count: COUNT, imagesPerPersona: IMAGES }, { userId: user.id });
      for (;;) {
        const current = await gen.tasks.get(task.id);
        if (current.status === 'completed') break;
        if (current.status === 'failed' || current.status === 'cancelled') throw new Error(`task ${current.status}: ${JSON.stringify(current.errorLog.slice(-3))}`);
        await new Promise((r) => setTimeout(r, 500));
      }
      taskId = task.id;
      for await (const persona of gen.personas.all(taskId)) {
        if (persona.baseImage) keys.push(persona.baseImage.key);
        for (const image of persona.images) keys.push(image.key);
      }
      console.log(`dataset: ${COUNT} personas x ${IMAGES} images (+ base) = ${keys.length} objects, made in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      // The ZIP writer alone, in this process and without HTTP: what the host can at best reach.
      const z0 = performance.now();
      let direct = 0;
      for await (const chunk of await gen.exports.zip(taskId)) direct += (chunk as Buffer).length;
      inProcess = direct / 1e6 / ((performance.now() - z0) / 1000);
    } finally {
      await gen.close();
    }

    // Raw: the same objects read whole straight from the storage, one after another, through the
    // storage port (readObject: the storage's read(), else its stream), as any program using
    // core would copy them. The host's export reads them differently (blocking reads in its ZIP
    // worker thread, with everything else of the export on top): that way of reading alone is
    // printed too, for reference.
    const storage = createFilesystemStorage({ root: join(dataDir, 'storage') });
    const readRaw = async () => {
      const t0 = performance.now();
      let bytes = 0;
      for (const key of keys) bytes += (await readObject(storage, key)).length;
      return { bytes, seconds: (performance.now() - t0) / 1000 };
    };
    await readRaw(); // page cache warm for both
    const sample = readImageInfo(readFileSync(join(dataDir, 'storage', keys[0] as string)));
    console.log(`image: ${sample.contentType} ${sample.width}x${sample.height}`);

    // The host runs as in production: the built `avatargen web`, started by its own shebang (so
    // with the bin's node flags) on the default plugins. BENCH_FROM=source: tsx on the sources,
    // with the same flags.
    const fromSource = process.env.BENCH_FROM === 'source';
    const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
    const port = await freePort();
    const env = { ...process.env, DATABASE_URL: db.url, DATA_DIR: dataDir, SECRET_KEY: SECRET, LOG_LEVEL: 'silent', APP_PORT: String(port), APP_HOST: '127.0.0.1' };
    const bin = join(repoRoot, 'packages/host-koa/dist/bin.js');
    child = fromSource
      ? spawn(process.execPath, [...hostNodeFlags(), ...profile, '--conditions=source', '--import', 'tsx', import.meta.filename, '--serve', db.url, dataDir], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] })
      : profile.length > 0 || process.env.BENCH_HOST_FLAGS !== undefined // --cpu-prof cannot go through the shebang or NODE_OPTIONS
        ? spawn(process.execPath, [...hostNodeFlags(), ...profile, bin, 'web'], { cwd: dataDir, env, stdio: ['ignore', 'pipe', 'inherit'] })
        : spawn(bin, ['web'], { cwd: dataDir, env, stdio: ['ignore', 'pipe', 'inherit'] });
    const { url } = await new Promise<{ url: string }>((resolve, reject) => {
      let text = '';
      child?.stdout?.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        const json = text.split('\n').find((l) => l.startsWith('{'));
        if (json) resolve(JSON.parse(json));
        const listening = /listening on (http:\S+)/.exec(text);
        if (listening) resolve({ url: listening[1] as string });
      });
      child?.once('exit', (code) => reject(new Error(`host exited with ${code}`)));
    });
    const rssBefore = peakRssMb(child.pid as number);

    // A plain node:http client that only counts bytes: the download itself should cost little.
    const t0 = performance.now();
    const zipBytes = await new Promise<number>((resolve, reject) => {
      const req = request(`${url}/api/v1/tasks/${taskId}/exports/zip`, { method: 'POST', headers: { authorization: `Bearer ${token}` } }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`export answered ${res.statusCode}`));
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
        });
        res.on('end', () => resolve(bytes));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    const exportSeconds = (performance.now() - t0) / 1000;
    const peak = peakRssMb(child.pid as number);

    const raw = await readRaw();
    const reader = openFilesystemReader({ root: join(dataDir, 'storage') });
    const scratch = Buffer.allocUnsafeSlow(4 * 1024 * 1024);
    const b0 = performance.now();
    let blockingBytes = 0;
    for (const key of keys) blockingBytes += (reader.read(key, scratch) as Uint8Array).length;
    const blockingRate = blockingBytes / 1e6 / ((performance.now() - b0) / 1000);
    const exportRate = zipBytes / 1e6 / exportSeconds;
    const rawRate = raw.bytes / 1e6 / raw.seconds;
    console.log(`export (host)  ${(zipBytes / 1e6).toFixed(1)} MB in ${exportSeconds.toFixed(2)} s = ${exportRate.toFixed(1)} MB/s`);
    console.log(`raw reads      ${(raw.bytes / 1e6).toFixed(1)} MB in ${raw.seconds.toFixed(2)} s = ${rawRate.toFixed(1)} MB/s (storage port, one after another)`);
    console.log(
      `for reference: blocking reads in one thread (the export worker's reader alone) ${blockingRate.toFixed(1)} MB/s; the export is ${(exportRate / blockingRate).toFixed(3)}x that`,
    );
    console.log(`ZIP writer alone (core's exports.zip in-process, no HTTP): ${inProcess.toFixed(1)} MB/s`);
    console.log(
      `host RSS: ${rssBefore.toFixed(1)} MB peak at rest (${fromSource ? 'tsx on sources' : 'built `avatargen web`'}, node ${hostNodeFlags().join(' ')}), ${peak.toFixed(1)} MB peak after the export (+${(peak - rssBefore).toFixed(1)} MB)`,
    );
    console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} on ${availableParallelism()} cores`);
    if (zipBytes < raw.bytes) throw new Error('the ZIP is smaller than the images it should hold');
    console.log(`BENCH export.peak_rss_mb=${peak.toFixed(1)} export.vs_raw=${(exportRate / rawRate).toFixed(3)}`);
  } finally {
    child?.kill('SIGTERM');
    if (child && child.exitCode === null) await new Promise((r) => child?.once('exit', r));
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--serve') await serve(process.argv[3] as string, process.argv[4] as string);
else await main();
