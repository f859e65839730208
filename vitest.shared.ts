import { defineProject } from 'vitest/config';

/** The vitest project config every package uses: tests run on sources via the `source` export condition. */
export function packageProject(name: string, overrides: { testTimeout?: number; fileParallelism?: boolean } = {}) {
  return defineProject({
    resolve: { conditions: ['source'] },
    ssr: { resolve: { conditions: ['source'] } },
    test: {
      name,
      include: ['test/**/*.test.ts', '*.test.ts'],
      testTimeout: overrides.testTimeout ?? 30_000,
      hookTimeout: 60_000,
      fileParallelism: overrides.fileParallelism,
    },
  });
}
