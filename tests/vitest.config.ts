import { defineProject } from 'vitest/config';
import { PREREQUISITES } from '../vitest.shared.js';

export default defineProject({
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'] } },
  test: {
    name: 'e2e',
    globalSetup: [PREREQUISITES],
    include: ['**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
