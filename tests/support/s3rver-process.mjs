// s3rver in a process of its own, for the e2e tests (tests/support/s3rver.ts starts it). Own
// process because s3rver's ListObjectsV2 continuation tokens use DES, which OpenSSL 3 only has
// with --openssl-legacy-provider, and because a test stops it as a crash would (SIGKILL).
// Arguments: <directory> [bucket...]; S3RVER_PORT picks the port (0: any free one). Prints
// {"port":N} once listening; exits when its stdin closes.
import S3rver from 's3rver';

const [directory, ...buckets] = process.argv.slice(2);
const server = new S3rver({
  address: '127.0.0.1',
  port: Number(process.env.S3RVER_PORT ?? 0),
  directory,
  silent: true,
  configureBuckets: buckets.map((name) => ({ name })),
});
const { port } = await server.run();
process.stdout.write(`${JSON.stringify({ port })}\n`);
process.stdin.resume();
process.stdin.on('end', async () => {
  await server.close().catch(() => undefined);
  process.exit(0);
});
