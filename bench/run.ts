/**
 * `npm run bench`: runs every benchmark in this folder one after another (each in its own
 * process, so none disturbs another) and repeats their BENCH lines at the end.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = import.meta.dirname;
const only = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => only.length === 0 || only.some((name) => f.startsWith(name)))
  .sort();
const summary: string[] = [];
let failed = 0;
for (const file of files) {
  console.log(`\n=== ${file}`);
  const result = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', join(dir, file)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  process.stdout.write(result.stdout ?? '');
  if (result.status !== 0) {
    failed++;
    summary.push(`${file}: exited with ${result.status ?? result.signal}`);
  }
  summary.push(...(result.stdout ?? '').split('\n').filter((line) => line.startsWith('BENCH ')));
}
console.log(`\n=== summary\n${summary.join('\n')}`);
process.exit(failed ? 1 : 0);
