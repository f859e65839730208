#!/usr/bin/env -S node --max-semi-space-size=1 --heap-growing-percent=25
// V8 tuned for a small, steady footprint: a host streams exports and images whose buffers die
// young, and its ORM pages are short-lived garbage. A 1 MB young generation (default up to 16)
// and an old generation that grows by 25% before the next full collection keep a 300 x 20 ZIP
// export under 150 MB RSS (bench:export: ~180 MB without them) with the dataset API's p95 well
// under 50 ms (bench:http). --optimize-for-size saves as much but slows requests by half.
// Installed, the bin runs by this line; the root's `npm start` repeats the flags.
import { main } from './cli.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Servers have closed; a stray handle (a pool timer) must not keep the process alive.
    setTimeout(() => process.exit(code), 2000).unref();
  },
  (error) => {
    process.stderr.write(`avatargen: ${(error as Error)?.message ?? error}\n`);
    process.exit(1);
  },
);
