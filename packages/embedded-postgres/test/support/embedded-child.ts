/** Starts embedded PostgreSQL in the folder given as argument and waits to be killed. */
import { startEmbeddedPostgres } from '../../src/index.js';

const pg = await startEmbeddedPostgres({ dataDir: process.argv[2] as string });
process.stdout.write(`ready ${pg.url}\n`);
setInterval(() => {}, 60_000);
