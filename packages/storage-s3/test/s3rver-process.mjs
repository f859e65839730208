// Runs s3rver in its own process for the tests. Own process because s3rver's ListObjectsV2
// continuation tokens use DES, which OpenSSL 3 (Node 17+) only has with --openssl-legacy-provider;
// that flag stays out of the process under test. Prints {"port":N} once listening; exits when
// its stdin closes (the test process ended or called close). S3RVER_PORT picks the port (a
// restarted server takes its predecessor's); default any free one.
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
