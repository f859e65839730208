// The command's ES module entry; bin/avatargen.cjs starts it, after sizing libuv's thread pool.
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
