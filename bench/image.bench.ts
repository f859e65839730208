/**
 * `npm run bench:image`: the image chain as the old system ran it (split -> trim -> crop white
 * borders on each of 4 cells -> randomize style on each cell; encoded bytes in, encoded bytes
 * out) through the real piscina pool, against the old system's figures in BASELINE.md.
 *
 *   BENCH_INPUTS  folder with grid_1024.png, single_512.png, single_1024.png
 *                 (default: ../shared/bench/inputs beside the checkout)
 *   BENCH_RUNS    timed runs per row after warm-up (default 30, at least 20 for the chain)
 *
 * Last line: BENCH image.chain_ms=<one worker, ms per grid> image.speedup=<394.6 / chain_ms>
 * image.pool_scaling=<pool-of-2 throughput / one-worker throughput>
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import { createImageProcessor, type OpencvImageProcessor } from '@avatargen/image-opencv';
import sharp from 'sharp';

const repo = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const inputs = process.env.BENCH_INPUTS ?? resolve(repo, '../shared/bench/inputs');
const runs = Math.max(20, Number(process.env.BENCH_RUNS ?? 30));
const WARM_UP = 5;
const OLD_CHAIN_MS = 394.6;

/** The old system's medians (BASELINE.md), ms per image on one core. */
const BASELINE = {
  splitTrim1024: 275.8,
  splitTrim1536: 647.9,
  crop512: 42.3,
  crop1024: 169.4,
  style512: 30.5,
  style1024: 112.6,
  chain1024: 394.6,
  chain1536: 948.6,
};

const read = (name: string) => readFileSync(resolve(inputs, name));
const grid1024 = read('grid_1024.png');
const single512 = read('single_512.png');
const single1024 = read('single_1024.png');
// BASELINE.md also has a 1536 grid; the same grid scaled up stands in for it
const grid1536 = await sharp(grid1024).resize(1536, 1536, { kernel: 'lanczos3' }).png().toBuffer();

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/**
 * Median wall time of one call, calls made one after the other, and the median CPU time the
 * process spent on it (worker and main thread): on a busy machine the wall time also counts the
 * time the worker waited for a core, the CPU time does not.
 */
async function timeOne(fn: () => Promise<unknown>, count = runs): Promise<{ ms: number; cpu: number }> {
  for (let i = 0; i < WARM_UP; i++) await fn();
  const times: number[] = [];
  const cpus: number[] = [];
  for (let i = 0; i < count; i++) {
    const cpu = process.cpuUsage();
    const start = performance.now();
    await fn();
    times.push(performance.now() - start);
    const used = process.cpuUsage(cpu);
    cpus.push((used.user + used.system) / 1000);
  }
  return { ms: median(times), cpu: median(cpus) };
}

/** Grids per second with `inFlight` calls kept going, and the cores the process got meanwhile. */
async function throughput(processor: OpencvImageProcessor, grids: number, inFlight: number) {
  let next = 0;
  const cpu = process.cpuUsage();
  const start = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next++ < grids) await processor.processGrid(grid1024, { cropWhiteBorders: true, styleSeed: `tp-${next}` });
    }),
  );
  const wall = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return { perSecond: (grids * 1000) / wall, cores: (used.user + used.system) / 1000 / wall };
}

/** The PNG's compressed pixel stream (its IDAT chunks joined). */
function pixelStream(png: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 8; at + 8 <= png.length; ) {
    const length = png.readUInt32BE(at);
    if (png.toString('latin1', at + 4, at + 8) === 'IDAT') parts.push(png.subarray(at + 8, at + 8 + length));
    at += 12 + length;
  }
  return Buffer.concat(parts);
}

/**
 * This machine's speed at work every grid needs, done by libraries and not by us: zlib inflating
 * grid_1024's pixels and sharp decoding the whole file (one thread, in this process). The old
 * system's figures come from another machine; these say how this one compares from run to run.
 */
async function machineReference(): Promise<string> {
  const stream = pixelStream(grid1024);
  const inflate = await timeOne(async () => inflateSync(stream));
  const decode = await timeOne(() => sharp(grid1024).raw().toBuffer());
  return `machine reference: zlib inflates grid_1024's pixels in ${inflate.ms.toFixed(2)} ms, sharp decodes the file in ${decode.ms.toFixed(2)} ms (one thread)`;
}

const chain = (processor: OpencvImageProcessor, image: Uint8Array) => () =>
  processor.processGrid(image, { cropWhiteBorders: true, styleSeed: 'bench' });

const one = createImageProcessor({ threads: 1 });
const two = createImageProcessor({ threads: 2 });
try {
  const rows: Array<{ step: string; input: string; old: number; ms: number; cpu: number }> = [];
  const chain1024 = await timeOne(chain(one, grid1024));
  const chainMs = chain1024.ms;
  rows.push({ step: 'whole chain per grid', input: 'grid 1024x1024', old: BASELINE.chain1024, ...chain1024 });
  rows.push({ step: 'whole chain per grid', input: 'grid 1536x1536', old: BASELINE.chain1536, ...(await timeOne(chain(one, grid1536))) });
  const splitTrim = (image: Uint8Array) => () => one.processGrid(image, { cropWhiteBorders: false, styleSeed: null });
  rows.push({ step: 'split 2x2 + trim (PNG out)', input: 'grid 1024x1024', old: BASELINE.splitTrim1024, ...(await timeOne(splitTrim(grid1024))) });
  rows.push({ step: 'split 2x2 + trim (PNG out)', input: 'grid 1536x1536', old: BASELINE.splitTrim1536, ...(await timeOne(splitTrim(grid1536))) });
  rows.push({ step: 'crop white borders (PNG out)', input: 'single 512x512', old: BASELINE.crop512, ...(await timeOne(() => one.cropWhiteBorders(single512))) });
  rows.push({ step: 'crop white borders (PNG out)', input: 'single 1024x1024', old: BASELINE.crop1024, ...(await timeOne(() => one.cropWhiteBorders(single1024))) });
  rows.push({ step: 'randomize style', input: 'single 512x512', old: BASELINE.style512, ...(await timeOne(() => one.randomizeStyle(single512, { seed: 'bench' }))) });
  rows.push({ step: 'randomize style', input: 'single 1024x1024', old: BASELINE.style1024, ...(await timeOne(() => one.randomizeStyle(single1024, { seed: 'bench' }))) });

  sharp.concurrency(1); // the reference runs in this thread; the workers set their own
  const reference = await machineReference();

  // pool scaling: alternate one worker and two workers so that machine noise hits both alike
  await throughput(two, 10, 4);
  const single: number[] = [];
  const pair: number[] = [];
  const coresOne: number[] = [];
  const coresTwo: number[] = [];
  for (let round = 0; round < 5; round++) {
    const a = await throughput(one, 20, 2);
    const b = await throughput(two, 20, 4);
    single.push(a.perSecond);
    coresOne.push(a.cores);
    pair.push(b.perSecond);
    coresTwo.push(b.cores);
  }
  const perSecondOne = median(single);
  const perSecondTwo = median(pair);

  const table = [
    ['step', 'input', 'old ms', 'new ms', 'speedup', 'cpu ms'],
    ...rows.map((r) => [r.step, r.input, r.old.toFixed(1), r.ms.toFixed(2), `${(r.old / r.ms).toFixed(1)}x`, r.cpu.toFixed(2)]),
  ];
  const widths = table[0]!.map((_, col) => Math.max(...table.map((row) => row[col]!.length)));
  console.log(`image chain benchmark: one worker unless stated, median of ${runs} runs after ${WARM_UP} warm-up`);
  console.log('(cpu ms: median CPU time of the process per call; the wall time also counts waiting for a core)');
  for (const [i, row] of table.entries()) {
    console.log(row.map((cell, col) => (col < 2 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  console.log('');
  console.log(`pool throughput, grid 1024, median of 5 rounds of 20 grids:`);
  // a busy machine shows here: two workers that get ~1 core between them cannot scale
  const cores = (values: number[]) => `process used ${median(values).toFixed(2)} cores`;
  console.log(`  one worker   ${perSecondOne.toFixed(1)} grids/s  (${(perSecondOne * 4).toFixed(1)} images/s; old: 10.1 grids/s; ${cores(coresOne)})`);
  console.log(`  two workers  ${perSecondTwo.toFixed(1)} grids/s  (${(perSecondTwo * 4).toFixed(1)} images/s; ${cores(coresTwo)})`);
  console.log(`  load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} on ${availableParallelism()} cores`);
  console.log(reference);
  console.log('');
  const speedup = OLD_CHAIN_MS / chainMs;
  const scaling = perSecondTwo / perSecondOne;
  console.log(`BENCH image.chain_ms=${chainMs.toFixed(2)} image.speedup=${speedup.toFixed(2)} image.pool_scaling=${scaling.toFixed(2)}`);
} finally {
  await one.close();
  await two.close();
}
