import { fileURLToPath } from 'node:url';
import { defineProject } from 'vitest/config';

/** What npm test needs outside npm, checked before a project's tests: a missing piece is one clear line, not skips. */
export const PREREQUISITES = fileURLToPath(new URL('./scripts/test-prerequisites.ts', import.meta.url));

/** The vitest project config every package uses: tests run on sources via the `source` export condition. */
export function packageProject(name: string, overrides: { testTimeout?: number; fileParallelism?: boolean } = {}) {
  return defineProject({
    resolve: { conditions: ['source'] },
    ssr: { resolve: { conditions: ['source'] } },
    test: {
      name,
      globalSetup: [PREREQUISITES],
      include: ['test/**/*.test.ts', '*.test.ts'],
      testTimeout: overrides.testTimeout ?? 30_000,
      hookTimeout: 60_000,
      fileParallelism: overrides.fileParallelism,
    },
  });
}
