import { spawn } from 'node:child_process';
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
const ROOT = path.resolve(import.meta.dirname, '../..');

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

  it('stops the process when a flush fails, and the next start recovers the store', async () => {
    const dataDir = path.join(dir, 'failing');
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/helpers/embedded-flush-failure.ts'), dataDir], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    // Without the stop, PGlite spins on the next query after Postgres's PANIC: bounded here.
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve)).finally(() => clearTimeout(timer));
    expect(code).toBe(1);
    expect(output).not.toContain('committed');
    expect(output).toMatch(/could not flush \S*pg_wal\S* to disk \(EIO/);
    const recovered = await openStore({ dataDir });
    try {
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from marks where n <> 1`.execute(recovered.db);
      expect(rows).toEqual([{ n: 0 }]);
    } finally {
      await recovered.close();
    }
  }, 60_000);
});
