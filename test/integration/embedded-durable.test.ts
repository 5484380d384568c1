import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openStore, type Store } from '../../src/db/store.ts';

/**
 * The embedded store on disk flushes what it commits: Postgres in PGlite runs with fsync on, and
 * its fsyncs reach the disk through `fs.fsyncSync` (PGlite as shipped runs with fsync off, and its
 * file system has no fsync to call). Which files were flushed is read back from each descriptor.
 */
describe('the embedded store on disk', () => {
  let dir: string;
  let store: Store;

  beforeAll(async () => {
    dir = await fs.promises.realpath(await mkdtemp(path.join(tmpdir(), 'invoke-durable-')));
    store = await openStore({ dataDir: path.join(dir, 'data') });
    await sql`create table marks (n int)`.execute(store.db);
  });
  afterAll(async () => {
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** The files `fs.fsyncSync` flushed while `work` ran (each flushed for real), relative to the data directory. */
  async function flushedDuring(work: () => Promise<unknown>): Promise<string[]> {
    const realFsync = fs.fsyncSync;
    const flushed: string[] = [];
    const spy = vi.spyOn(fs, 'fsyncSync').mockImplementation((fd: number) => {
      flushed.push(path.relative(path.join(dir, 'data'), fs.readlinkSync(`/proc/self/fd/${fd}`)));
      realFsync(fd);
    });
    try {
      await work();
    } finally {
      spy.mockRestore();
    }
    return flushed;
  }

  it('runs Postgres with fsync on, the WAL flushed with fsync', async () => {
    const { rows } = await sql<{ name: string; setting: string }>`select name, setting from pg_settings where name in ('fsync', 'wal_sync_method') order by name`.execute(store.db);
    expect(rows).toEqual([
      { name: 'fsync', setting: 'on' },
      { name: 'wal_sync_method', setting: 'fsync' },
    ]);
  });

  it('flushes the WAL to disk before a commit returns', async () => {
    const flushed = await flushedDuring(() => store.db.transaction().execute((trx) => sql`insert into marks values (1)`.execute(trx)));
    expect(flushed.some((file) => file.startsWith(`pg_wal${path.sep}`))).toBe(true);
  });

  it('flushes the data files a checkpoint wrote', async () => {
    await sql`insert into marks select g from generate_series(1, 100) g`.execute(store.db);
    const flushed = await flushedDuring(() => sql`checkpoint`.execute(store.db));
    expect(flushed.some((file) => file.startsWith(`base${path.sep}`))).toBe(true);
  });
});
