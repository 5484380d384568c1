/**
 * Run as a child process by embedded-durable.test.ts: opens the embedded store on the data
 * directory in argv[2], makes every fsync fail with EIO, then commits. The commit must never
 * answer: the process stops instead.
 */
import fs from 'node:fs';
import { sql } from 'kysely';
import { openStore } from '../../src/db/store.ts';

const store = await openStore({ dataDir: process.argv[2]! });
await sql`create table marks (n int)`.execute(store.db);
fs.fsyncSync = () => {
  throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO', errno: -5 });
};
await sql`insert into marks values (1)`.execute(store.db);
process.stdout.write('committed\n');
await store.close();
