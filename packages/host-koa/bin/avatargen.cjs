#!/usr/bin/env -S node --heap-growing-percent=25 --max-semi-space-size=8
'use strict';
// The avatargen command. CommonJS on purpose: libuv's thread pool is sized when it is first used,
// and loading an ES module entry already uses it. sharp runs every image thread's work on that
// pool, so with libuv's default of 4 the image pool stops scaling at 4 threads. Sized here, before
// anything loads: one thread per core for the image threads (one per core by default) plus
// libuv's usual 4 for files, DNS and bcrypt. An operator's own UV_THREADPOOL_SIZE wins.
// The V8 flags above keep a host's memory small while it streams exports (bench:export, figures in
// docs/operations.md); `npm start` repeats them.
const { spawn } = require('node:child_process');
const { existsSync } = require('node:fs');
const { availableParallelism } = require('node:os');
const { join } = require('node:path');

process.env.UV_THREADPOOL_SIZE ||= String(availableParallelism() + 4);

const built = join(__dirname, '../dist/bin.js');
if (process.env.AVATARGEN_FROM_SOURCE !== '1' && existsSync(built)) {
  import(built).catch((error) => {
    process.stderr.write(`avatargen: ${error?.message ?? error}\n`);
    process.exit(1);
  });
} else {
  // A checkout that was not built (or `npm start`): the TypeScript sources through tsx, in a child
  // process that starts with the pool size above.
  const source = join(__dirname, '../src/bin.ts');
  const args = [...process.execArgv, '--conditions=source', '--import', 'tsx', source, ...process.argv.slice(2)];
  const child = spawn(process.execPath, args, { stdio: 'inherit' });
  // Ctrl+C reaches the child too (same process group); a signal sent to this process alone is passed on.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      if (signal !== 'SIGINT') child.kill(signal);
    });
  }
  child.on('exit', (code, signal) => {
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
}
