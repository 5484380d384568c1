import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openStore, POOL_FLOOR, type Store } from '../../src/db/store.ts';
import { waitFor } from '../helpers/wait.ts';
import { createTestDatabase } from './databases.ts';

/**
 * Each pool keeps POOL_FLOOR connections open through a pause: the first call after one must not
 * pay a new connection and the hot path's statements prepared again. Connections above the floor
 * still close when idle (here after 50 ms instead of 10 s).
 */
describe('the connection pools after a pause, on a real Postgres server', () => {
  let store: Store;
  const idleTimeoutMs = 50;

  beforeAll(async () => {
    store = await openStore({ databaseUrl: await createTestDatabase(inject('pgUrl')), dataDir: 'memory://', poolSize: 4, idleTimeoutMs });
  });
  afterAll(async () => {
    await store?.close();
  });

  /** The server process behind the hot-path connection a statement ran on; `sleep` keeps it checked out. */
  const hotPathPid = async (sleep = 0) => (await store.run<{ pid: number }>({ name: 'test_backend_pid', text: 'select pg_backend_pid() as pid, pg_sleep($1)' }, [sleep]))[0]!.pid;
  /** Which of `pids` still have a connection to the server. */
  const alive = async (pids: number[]) => {
    const rows = await sql<{ pid: number }>`select pid from pg_stat_activity where pid = any(${pids}::int[])`.execute(store.db);
    return rows.rows.map((row) => row.pid);
  };
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('keeps the floor of hot-path connections, statements prepared, and closes the rest', async () => {
    const opened = new Set(await Promise.all([0, 1, 2, 3].map(() => hotPathPid(0.05))));
    expect(opened.size).toBe(4);

    await waitFor(async () => (await alive([...opened])).length <= POOL_FLOOR);
    await pause(idleTimeoutMs * 6);
    const kept = await alive([...opened]);
    expect(kept).toHaveLength(POOL_FLOOR);

    // The next statement runs on a kept connection, where it is already prepared by name.
    const next = await hotPathPid();
    expect(kept).toContain(next);
    const prepared = await store.run<{ name: string }>({ name: 'test_prepared_here', text: 'select name from pg_prepared_statements' }, []);
    expect(prepared.map((row) => row.name)).toContain('test_backend_pid');
  });

  it("keeps the floor of the main pool's connections too", async () => {
    const pidOf = async () => (await sql<{ pid: number }>`select pg_backend_pid() as pid, pg_sleep(0.05)`.execute(store.db)).rows[0]!.pid;
    const opened = new Set(await Promise.all([0, 1, 2, 3].map(() => pidOf())));
    expect(opened.size).toBe(4);

    await waitFor(async () => (await alive([...opened])).length <= POOL_FLOOR);
    await pause(idleTimeoutMs * 6);
    // The count itself runs on one of them, which is checked out meanwhile and cannot close.
    expect(await alive([...opened])).toHaveLength(POOL_FLOOR);
  });
});
