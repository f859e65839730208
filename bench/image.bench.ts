/**
 * `npm run bench:image`: the image chain as the old system ran it (split -> trim -> crop white
 * borders on each of 4 cells -> randomize style on each cell; encoded bytes in, encoded bytes
 * out) through the real piscina pool, against the old system's figures for this CPU.
 *
 *   BENCH_INPUTS  folder with grid_1024.png, single_512.png, single_1024.png
 *                 (default: ../shared/bench/inputs beside the checkout)
 *   BENCH_BASELINE  the old system's figures (default: ../shared/bench/baseline.json)
 *   BENCH_RUNS    timed runs per row after warm-up (default 30, at least 20)
 *
 * Last line: BENCH image.chain_ms=<one worker, median ms per 1024 grid> image.speedup=<old / ours>
 * image.speedup_1536=<same for the 1536 grid> image.pool_scaling=<N threads / 1 thread>
 * image.pool_cpu_cores=<cores the process used during the N-thread runs> (N = cores). Without a
 * baseline for this CPU there is no speedup: the old figures come from the same CPU model only.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createImageProcessor, type OpencvImageProcessor } from '@avatargen/image-opencv';
import sharp from 'sharp';

const repo = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const inputs = process.env.BENCH_INPUTS ?? resolve(repo, '../shared/bench/inputs');
const baselineFile = process.env.BENCH_BASELINE ?? resolve(repo, '../shared/bench/baseline.json');
const runs = Math.max(20, Number(process.env.BENCH_RUNS ?? 30));
const WARM_UP = 5;

type Row =
  | 'chain_grid_1024'
  | 'chain_grid_1536'
  | 'split_trim_grid_1024'
  | 'split_trim_grid_1536'
  | 'crop_single_512'
  | 'crop_single_1024'
  | 'style_single_512'
  | 'style_single_1024';
interface Machine {
  cpuModel: string;
  measured: string;
  medianMs: Record<Row, number>;
}

const cpuModel = cpus()[0]?.model.trim() ?? 'unknown';
const machines = (JSON.parse(readFileSync(baselineFile, 'utf8')) as { machines: Machine[] }).machines;
const baseline = machines.find((m) => m.cpuModel === cpuModel);

const read = (name: string) => readFileSync(resolve(inputs, name));
const grid1024 = read('grid_1024.png');
const single512 = read('single_512.png');
const single1024 = read('single_1024.png');
// the old system's 1536 grid is the same grid scaled up
const grid1536 = await sharp(grid1024).resize(1536, 1536, { kernel: 'lanczos3' }).png().toBuffer();

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/** Median wall time of one call (calls one after the other) and the median CPU time of the process per call. */
async function timeOne(fn: () => Promise<unknown>, count = runs): Promise<{ ms: number; cpu: number }> {
  for (let i = 0; i < WARM_UP; i++) await fn();
  const times: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < count; i++) {
    const before = process.cpuUsage();
    const start = performance.now();
    await fn();
    times.push(performance.now() - start);
    const used = process.cpuUsage(before);
    cpu.push((used.user + used.system) / 1000);
  }
  return { ms: median(times), cpu: median(cpu) };
}

/** Grids per second with `inFlight` calls kept going, and the cores the process used meanwhile. */
async function throughput(processor: OpencvImageProcessor, grids: number, inFlight: number) {
  let next = 0;
  const before = process.cpuUsage();
  const start = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next++ < grids) await processor.processGrid(grid1024, { cropWhiteBorders: true, styleSeed: `tp-${next}` });
    }),
  );
  const wall = performance.now() - start;
  const used = process.cpuUsage(before);
  return { perSecond: (grids * 1000) / wall, cores: (used.user + used.system) / 1000 / wall };
}

const chain = (processor: OpencvImageProcessor, image: Uint8Array) => () =>
  processor.processGrid(image, { cropWhiteBorders: true, styleSeed: 'bench' });

const threads = availableParallelism();
const one = createImageProcessor({ threads: 1 });
const all = createImageProcessor({ threads });
try {
  const rows: Array<{ key: Row; step: string; input: string; ms: number; cpu: number }> = [];
  const add = async (key: Row, step: string, input: string, fn: () => Promise<unknown>) => {
    rows.push({ key, step, input, ...(await timeOne(fn)) });
  };
  await add('chain_grid_1024', 'whole chain per grid', 'grid 1024x1024', chain(one, grid1024));
  await add('chain_grid_1536', 'whole chain per grid', 'grid 1536x1536', chain(one, grid1536));
  const splitTrim = (image: Uint8Array) => () => one.processGrid(image, { cropWhiteBorders: false, styleSeed: null });
  await add('split_trim_grid_1024', 'split 2x2 + trim (PNG out)', 'grid 1024x1024', splitTrim(grid1024));
  await add('split_trim_grid_1536', 'split 2x2 + trim (PNG out)', 'grid 1536x1536', splitTrim(grid1536));
  await add('crop_single_512', 'crop white borders (PNG out)', 'single 512x512', () => one.cropWhiteBorders(single512));
  await add('crop_single_1024', 'crop white borders (PNG out)', 'single 1024x1024', () => one.cropWhiteBorders(single1024));
  await add('style_single_512', 'randomize style', 'single 512x512', () => one.randomizeStyle(single512, { seed: 'bench' }));
  await add('style_single_1024', 'randomize style', 'single 1024x1024', () => one.randomizeStyle(single1024, { seed: 'bench' }));

  // pool scaling: alternate 1 and N threads so that machine noise hits both alike
  await throughput(all, 10, 2 * threads);
  const single: Array<{ perSecond: number; cores: number }> = [];
  const pool: Array<{ perSecond: number; cores: number }> = [];
  for (let round = 0; round < 5; round++) {
    single.push(await throughput(one, 20, 2));
    pool.push(await throughput(all, 20 * threads, 2 * threads));
  }
  const oneRate = median(single.map((r) => r.perSecond));
  const poolRate = median(pool.map((r) => r.perSecond));
  const poolCores = median(pool.map((r) => r.cores));

  const old = (key: Row) => baseline?.medianMs[key];
  const table = [
    ['step', 'input', 'old ms', 'new ms', 'speedup', 'cpu ms'],
    ...rows.map((r) => {
      const before = old(r.key);
      return [
        r.step,
        r.input,
        before?.toFixed(1) ?? '-',
        r.ms.toFixed(2),
        before ? `${(before / r.ms).toFixed(1)}x` : '-',
        r.cpu.toFixed(2),
      ];
    }),
  ];
  const widths = table[0]!.map((_, col) => Math.max(...table.map((row) => row[col]!.length)));
  console.log(`image chain benchmark on ${cpuModel}: one worker unless stated, median of ${runs} runs after ${WARM_UP} warm-up`);
  console.log(
    baseline
      ? `old figures: baseline.json, ${baseline.cpuModel}, measured ${baseline.measured}`
      : `no baseline for this CPU ("${cpuModel}") in ${baselineFile}: no speedup is given`,
  );
  for (const [i, row] of table.entries()) {
    console.log(row.map((cell, col) => (col < 2 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
  console.log('');
  console.log('pool throughput, grid 1024, median of 5 alternating rounds:');
  console.log(`  1 thread    ${oneRate.toFixed(1)} grids/s  (process used ${median(single.map((r) => r.cores)).toFixed(2)} cores)`);
  console.log(`  ${String(threads).padEnd(2)} threads  ${poolRate.toFixed(1)} grids/s  (process used ${poolCores.toFixed(2)} cores)`);
  console.log(
    `  UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '(unset: 4)'}; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log('');

  const ms = (key: Row) => rows.find((r) => r.key === key)!.ms;
  const fields = [`image.chain_ms=${ms('chain_grid_1024').toFixed(2)}`];
  if (baseline) {
    fields.push(`image.speedup=${(baseline.medianMs.chain_grid_1024 / ms('chain_grid_1024')).toFixed(2)}`);
    fields.push(`image.speedup_1536=${(baseline.medianMs.chain_grid_1536 / ms('chain_grid_1536')).toFixed(2)}`);
  }
  fields.push(`image.pool_scaling=${(poolRate / oneRate).toFixed(2)}`, `image.pool_cpu_cores=${poolCores.toFixed(2)}`);
  console.log(`BENCH ${fields.join(' ')}`);
} finally {
  await one.close();
  await all.close();
}
