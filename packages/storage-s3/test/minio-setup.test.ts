import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publicReadPolicy } from '../src/index.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('../../../deploy/minio/setup.sh', import.meta.url));
const SECRET = 'minio/secret+with spaces&ü';

let dir: string;
let mc: string;

// `mc` is not installed here: a stand-in records each call, the MC_HOST_ variable it saw, and the
// policy file it was given, so the test checks what the script asks MinIO to do.
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'minio-setup-'));
  mc = join(dir, 'mc');
  await writeFile(
    mc,
    `#!/usr/bin/env bash
printf '%s\\n' "$*" >> "${dir}/calls"
printf '%s\\n' "$MC_HOST_avatargen" > "${dir}/host"
if [ "$1 $2" = "anonymous set-json" ]; then cp "$3" "${dir}/policy.json"; fi
`,
  );
  await chmod(mc, 0o755);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function setup(env: Record<string, string>) {
  return run('bash', [SCRIPT], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      MC: mc,
      S3_ENDPOINT: 'https://minio.internal:9000',
      S3_ACCESS_KEY: 'avatargen',
      S3_SECRET_KEY: SECRET,
      ...env,
    },
  });
}

describe('deploy/minio/setup.sh', () => {
  it('creates both buckets, opens only the image prefix and keeps the faces private', async () => {
    await rm(join(dir, 'calls'), { force: true });
    await setup({ S3_BUCKET_NAME: 'images-prod', S3_FACES_BUCKET_NAME: 'faces-prod' });
    const calls = (await readFile(join(dir, 'calls'), 'utf8')).trim().split('\n');
    expect(calls.map((c) => c.replace(/set-json \S+/, 'set-json POLICY'))).toEqual([
      'mb --ignore-existing avatargen/images-prod',
      'anonymous set-json POLICY avatargen/images-prod',
      'mb --ignore-existing avatargen/faces-prod',
      'anonymous set none avatargen/faces-prod',
      'anonymous get-json avatargen/images-prod',
    ]);
    // The same document the package's ensureBucket() puts.
    expect(JSON.parse(await readFile(join(dir, 'policy.json'), 'utf8'))).toEqual(publicReadPolicy('images-prod', 'tasks/'));
    // Credentials only in mc's environment, URL-encoded; never on a command line.
    expect((await readFile(join(dir, 'host'), 'utf8')).trim()).toBe(`https://avatargen:${encodeURIComponent(SECRET)}@minio.internal:9000`);
    expect(calls.join('\n')).not.toContain('secret');
  });

  it('uses the default bucket names and refuses a prefix that would open too much', async () => {
    await rm(join(dir, 'calls'), { force: true });
    await setup({ S3_PUBLIC_PREFIX: 'images/public/' });
    expect(JSON.parse(await readFile(join(dir, 'policy.json'), 'utf8'))).toEqual(publicReadPolicy('avatar-images', 'images/public/'));
    for (const prefix of ['tasks', '*', '/tasks/', '../tasks/', 'tasks/*/']) {
      const failed = await setup({ S3_PUBLIC_PREFIX: prefix }).catch((e: { code: number; stderr: string }) => e);
      expect(failed, prefix).toMatchObject({ code: 2 });
      expect((failed as { stderr: string }).stderr).toContain('S3_PUBLIC_PREFIX');
    }
    const badBucket = await setup({ S3_BUCKET_NAME: 'Bad_Name' }).catch((e: { code: number }) => e);
    expect(badBucket).toMatchObject({ code: 2 });
  });
});
