/**
 * `npm run bench:http`: autocannon (50 connections) on the dataset detail API of a 300-persona
 * task (GET /api/v1/datasets/:id: the task, its demographics and a page of 20 personas with
 * image URLs), authenticated by a session cookie like the website; and on a bare Koa
 * hello-world in the same run. Then one API token shared by all 50 clients against no
 * credentials at all, on the same public API route (GET /api/v1/languages): what checking a
 * token costs when every client uses the same one. The host runs in a child process so the load
 * generator does not share its event loop; it runs the packages as built (the bench builds them
 * first), as in production. BENCH_FROM=source runs it on the sources through tsx without
 * building; BENCH_NO_BUILD=1 skips the build. Needs the test PostgreSQL (TEST_DATABASE_URL or
 * 127.0.0.1:5432).
 *
 * The detail is asked for as a browser asks (Accept-Encoding: gzip and others; the host sends its
 * cached gzip), then without compression ("plain").
 *
 * Last line: BENCH http.p95_ms=<detail p95 ms> http.rps=<detail req/s> http.vs_bare=<detail rps / bare rps>
 *            http.p95_vs_bare=<detail p95 / bare p95> http.p95_plain_vs_bare=<the same, plain>
 *            http.p95_plain_vs_bare_same_answer=<plain detail p95 / p95 of bare Koa sending the same JSON bytes>
 *            http.token_vs_anon=<token rps / anonymous rps>
 * Goals: p95_vs_bare <= 2; token_vs_anon >= 0.8.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAvatarGen } from '@avatargen/core';
import { createTestDatabase } from '@avatargen/core/testing';
import { createApp, listen } from '@avatargen/host-koa';
import { imageOpencvPlugin } from '@avatargen/image-opencv';
import { localPlugin } from '@avatargen/provider-local';
import { filesystemStoragePlugin } from '@avatargen/storage-filesystem';
import { buildPackages, hostNodeFlags } from './host-flags.js';
import Koa from 'koa';

const PASSWORD = 'bench passphrase 300';
const SECRET = 'http-bench-secret-key-0123456789abcdef';
const CONNECTIONS = 50;
const BROWSER_ENCODINGS = 'gzip, deflate, br, zstd';
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 10);

interface Result {
  requests: { average: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}
type Autocannon = ((
  options: Record<string, unknown>,
) => { on(event: 'response', fn: (client: unknown, status: number, bytes: number, ms: number) => void): void } & PromiseLike<Result>) & {
  track?: unknown;
};
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

function config(dbUrl: string, dataDir: string) {
  return { DATABASE_URL: dbUrl, DATA_DIR: dataDir, LOG_LEVEL: 'silent', IMAGE_PROCESSOR_THREADS: 1 };
}
const plugins = (dataDir: string) => [
  localPlugin({ imageSize: 32 }),
  imageOpencvPlugin({ threads: 1 }),
  filesystemStoragePlugin({ root: join(dataDir, 'storage') }),
];

/** Child process: the host (and a bare Koa app) on random ports; prints their URLs as JSON. */
async function serve(dbUrl: string, dataDir: string): Promise<void> {
  const gen = await createAvatarGen({ config: config(dbUrl, dataDir), plugins: plugins(dataDir), migrate: false });
  const host = await listen(createApp(gen, { secretKey: SECRET }), { port: 0, hostname: '127.0.0.1' });
  const bare = new Koa();
  let sameAnswer: Buffer | undefined;
  bare.use((ctx) => {
    if (ctx.path === '/same-answer') {
      // the detail answer's bytes, which the bench wrote to the data folder before asking
      sameAnswer ??= readFileSync(join(dataDir, 'detail.json'));
      ctx.type = 'application/json; charset=utf-8';
      ctx.body = sameAnswer;
    } else ctx.body = 'Hello, world';
  });
  const bareServer = bare.listen(0, '127.0.0.1');
  await new Promise((r) => bareServer.once('listening', r));
  const address = bareServer.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ host: host.url, bare: `http://127.0.0.1:${address.port}` })}\n`);
  process.on('SIGTERM', async () => {
    bareServer.close();
    await host.close(1000);
    await gen.close();
    process.exit(0);
  });
}

async function run(url: string, headers: Record<string, string> = {}, duration = DURATION_S) {
  const times: number[] = [];
  const instance = autocannon({ url, connections: CONNECTIONS, duration, headers });
  instance.on('response', (_client, _status, _bytes, ms) => times.push(ms));
  const result = await instance;
  times.sort((a, b) => a - b);
  const p = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? Number.NaN;
  return {
    rps: result.requests.average,
    p50: p(0.5),
    p95: p(0.95),
    p99: p(0.99),
    bad: result.non2xx + result.errors + result.timeouts,
    count: times.length,
  };
}

/** The host and the bare apps in a child process with these node flags; resolves with their URLs. */
async function startHost(
  dbUrl: string,
  dataDir: string,
  flags: string[],
): Promise<{ child: ChildProcess; urls: { host: string; bare: string } }> {
  const child = spawn(
    process.execPath,
    [
      ...flags,
      ...(process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []),
      // The packages as built, as in production (tsx runs only this file); BENCH_FROM=source: their sources.
      ...(process.env.BENCH_FROM === 'source' ? ['--conditions=source'] : []),
      '--import',
      'tsx',
      import.meta.filename,
      '--serve',
      dbUrl,
      dataDir,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const urls = await new Promise<{ host: string; bare: string }>((resolve, reject) => {
    let text = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const line = text.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve(JSON.parse(line));
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  return { child, urls };
}

async function stopHost(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

/**
 * BENCH_COMPARE_FLAGS="flags a;flags b;...": the detail route (plain) and bare Koa's same answer under each
 * set of node flags, a fresh host per set, in interleaved rounds (these VMs change speed within
 * minutes, so only sets measured side by side compare). Prints the median of the rounds per set.
 */
async function compareFlags(dbUrl: string, dataDir: string, detailPath: string, cookie: string, sets: string[][]): Promise<void> {
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const results = sets.map(() => [] as Array<{ detail: number; p95: number; same: number; sameP95: number }>);
  for (let round = 0; round < rounds; round++) {
    for (const [i, flags] of sets.entries()) {
      const { child, urls } = await startHost(dbUrl, dataDir, flags);
      try {
        await run(`${urls.host}${detailPath}`, { cookie }, 2);
        const detail = await run(`${urls.host}${detailPath}`, { cookie }, 5);
        await run(`${urls.bare}/same-answer`, {}, 1);
        const same = await run(`${urls.bare}/same-answer`, {}, 5);
        if (detail.bad > 0) throw new Error(`${detail.bad} detail requests failed`);
        results[i]?.push({ detail: detail.rps, p95: detail.p95, same: same.rps, sameP95: same.p95 });
      } finally {
        await stopHost(child);
      }
    }
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  for (const [i, flags] of sets.entries()) {
    const r = results[i] ?? [];
    console.log(
      `${(flags.join(' ') || '(no flags)').padEnd(50)} detail ${median(r.map((x) => x.detail)).toFixed(0)} req/s p95 ${median(r.map((x) => x.p95)).toFixed(1)} ms; ` +
        `bare same answer ${median(r.map((x) => x.same)).toFixed(0)} req/s p95 ${median(r.map((x) => x.sameP95)).toFixed(1)} ms; ` +
        `p95 vs same answer ${median(r.map((x) => x.p95 / x.sameP95)).toFixed(2)}`,
    );
  }
}

async function main(): Promise<void> {
  buildPackages();
  const db = await createTestDatabase('avatargen_bench_http');
  const dataDir = mkdtempSync(join(tmpdir(), 'avatargen-bench-http-'));
  let child: ChildProcess | undefined;
  try {
    // A finished 300-persona task, made by the real pipeline (small images: only the API is measured).
    const gen = await createAvatarGen({
      config: config(db.url, dataDir),
      plugins: plugins(dataDir),
      pipeline: { reconcileIntervalMs: 300, pollingIntervalSeconds: 0.5 },
    });
    let taskId: string;
    let apiToken: string;
    try {
      await gen.worker.start();
      const user = await gen.users.create({ email: 'bench@example.com', password: PASSWORD });
      const started = Date.now();
      const task = await gen.tasks.submit(
        { description: 'Bench people', language: 'en', count: 300, imagesPerPersona: 4 },
        { userId: user.id },
      );
      for (;;) {
        const current = await gen.tasks.get(task.id);
        if (current.status === 'completed') break;
        if (current.status === 'failed' || current.status === 'cancelled') throw new Error(`task ${current.status}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      taskId = task.id;
      apiToken = (await gen.users.createToken(user.id, 'bench')).token;
      console.log(`dataset: 300 personas x 4 images generated in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    } finally {
      await gen.close();
    }

    const host = await startHost(db.url, dataDir, hostNodeFlags());
    child = host.child;
    const urls = host.urls;

    // Log in like a browser: the login page's CSRF token, then the session cookie.
    const loginPage = await fetch(`${urls.host}/login`);
    const jar = loginPage.headers.getSetCookie().map((c) => c.split(';')[0]);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(await loginPage.text())?.[1] ?? '';
    const login = await fetch(`${urls.host}/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: jar.join('; '), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: csrf, email: 'bench@example.com', password: PASSWORD }).toString(),
    });
    if (login.status !== 303) throw new Error(`login failed: ${login.status}`);
    const cookie = login.headers
      .getSetCookie()
      .map((c) => c.split(';')[0])
      .join('; ');
    const detailUrl = `${urls.host}/api/v1/datasets/${taskId}?page=3`;
    const check = await fetch(detailUrl, { headers: { cookie } });
    const answer = Buffer.from(await check.arrayBuffer());
    writeFileSync(join(dataDir, 'detail.json'), answer);
    const body = JSON.parse(answer.toString()) as { personas: { total: number; personas: unknown[] } };
    if (check.status !== 200 || body.personas.total !== 300 || body.personas.personas.length !== 20)
      throw new Error('detail API answer is wrong');
    console.log(`detail answer: ${JSON.stringify(body).length} bytes, 20 personas of 300`);
    if (process.env.BENCH_COMPARE_FLAGS !== undefined) {
      await stopHost(child);
      const sets = process.env.BENCH_COMPARE_FLAGS.split(';').map((set) => set.split(/\s+/).filter(Boolean));
      await compareFlags(db.url, dataDir, new URL(detailUrl).pathname + new URL(detailUrl).search, cookie, sets);
      return;
    }

    const skipBare = process.env.BENCH_PROFILE !== undefined; // profile the host alone
    if (!skipBare) await run(urls.bare, {}, 2); // warm-up
    await run(detailUrl, { cookie }, 2);
    const none = { rps: Number.NaN, p50: 0, p95: 0, p99: 0, bad: 0, count: 0 };
    const bare = skipBare ? none : await run(urls.bare);
    const bareSame = skipBare ? none : await run(`${urls.bare}/same-answer`);
    // As a browser asks (Chromium's Accept-Encoding; fetch asks for gzip too), then as a client that takes no compression.
    const detail = await run(detailUrl, { cookie, 'accept-encoding': BROWSER_ENCODINGS });
    const detailPlain = await run(detailUrl, { cookie });

    // One token shared by every client against no credentials, on the same public route.
    const languagesUrl = `${urls.host}/api/v1/languages`;
    const bearer = { authorization: `Bearer ${apiToken}` };
    const tokenCheck = await fetch(`${urls.host}/api/v1/stats`, { headers: bearer });
    if (tokenCheck.status !== 200) throw new Error(`the API token is refused: ${tokenCheck.status}`);
    await run(languagesUrl, bearer, 2); // warm-up
    const anonymous = await run(languagesUrl);
    const token = await run(languagesUrl, bearer);
    for (const [name, r] of [
      ['bare koa', bare],
      ['bare, same 44KB', bareSame],
      ['dataset detail', detail],
      ['detail, plain', detailPlain],
      ['anonymous', anonymous],
      ['shared token', token],
    ] as const) {
      console.log(
        `${name.padEnd(15)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.p50.toFixed(1)} ms  p95 ${r.p95.toFixed(1)} ms  p99 ${r.p99.toFixed(1)} ms  (${r.count} requests, ${r.bad} not 2xx/errors)`,
      );
    }
    console.log(
      `${CONNECTIONS} connections, ${DURATION_S} s each; load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')} on ${availableParallelism()} cores`,
    );
    for (const [name, r] of [
      ['detail', detail],
      ['detail plain', detailPlain],
      ['anonymous', anonymous],
      ['token', token],
    ] as const) {
      if (r.bad > 0) throw new Error(`${r.bad} ${name} requests failed`);
    }
    console.log(
      `BENCH http.p95_ms=${detail.p95.toFixed(1)} http.rps=${detail.rps.toFixed(0)} http.vs_bare=${(detail.rps / bare.rps).toFixed(3)} http.p95_vs_bare=${(detail.p95 / bare.p95).toFixed(2)} http.p95_plain_vs_bare=${(detailPlain.p95 / bare.p95).toFixed(2)} http.p95_plain_vs_bare_same_answer=${(detailPlain.p95 / bareSame.p95).toFixed(2)} http.token_vs_anon=${(token.rps / anonymous.rps).toFixed(3)}`,
    );
  } finally {
    if (child) await stopHost(child);
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--serve') await serve(process.argv[3] as string, process.argv[4] as string);
else await main();
