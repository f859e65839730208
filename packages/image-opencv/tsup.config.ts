import { defineConfig } from 'tsup';

export default defineConfig({
  // the worker is its own entry: the pool loads dist/worker.js in each thread
  entry: ['src/index.ts', 'src/worker.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
});
