import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openStore, type Store } from '../../src/db/store.ts';
import { createTestDatabase } from './databases.ts';

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Connections the store holds, killed under it one at a time with `pg_terminate_backend` (what
 * `pg_ctl stop -m fast` does to every backend). pg emits `error` on a client whose connection
 * dies while it is checked out; with no listener that is an uncaught exception, the process dies.
 */
describe('store connections killed under the store (suite server)', () => {
  let databaseUrl: string;
  let admin: pg.Client;
  let store: Store;
  /** What reached the process as an uncaught exception: a connection error nobody listened for. */
  const uncaught: unknown[] = [];
  const recordUncaught = (error: unknown) => uncaught.push(error);

  beforeAll(async () => {
    process.on('uncaughtException', recordUncaught);
    databaseUrl = await createTestDatabase(inject('pgUrl'));
    admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    store = await openStore({ databaseUrl, dataDir: 'memory://unused' });
  });

  afterAll(async () => {
    process.off('uncaughtException', recordUncaught);
    await store?.close();
    await admin?.end().catch(() => {});
  });

  const terminate = (pid: number) => admin.query('select pg_terminate_backend($1)', [pid]);

  it('a checked-out connection that dies is reported to its query, not thrown at the process, and the pool serves the next query', async () => {
    let failure: unknown;
    await store.db.connection().execute(async (connection) => {
      const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(connection);
      await terminate(rows[0]!.pid);
      // The connection is checked out and idle when its backend goes: pg emits `error` on the client.
      await new Promise((r) => setTimeout(r, 300));
      failure = await sql`select 1`.execute(connection).then(
        () => null,
        (error: unknown) => error,
      );
    });
    expect((failure as Error | null)?.message).toMatch(/terminat|not queryable/i);
    expect(uncaught).toEqual([]);
    const { rows } = await sql<{ one: number }>`select 1 as one`.execute(store.db);
    expect(rows).toEqual([{ one: 1 }]);
  });

  it('a transaction whose connection dies fails with the connection error and leaves the pool usable', async () => {
    const outcome = await store.db
      .transaction()
      .execute(async (trx) => {
        const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
        await terminate(rows[0]!.pid);
        await sql`select pg_sleep(0.3)`.execute(trx);
      })
      .then(
        () => null,
        (error: unknown) => error,
      );
    expect((outcome as Error | null)?.message).toMatch(/terminat|not queryable/i);
    // The connection's `end` arrives just after the failed query: give it the time to.
    await new Promise((r) => setTimeout(r, 200));
    expect(uncaught).toEqual([]);
    const { rows } = await sql<{ one: number }>`select 1 as one`.execute(store.db);
    expect(rows).toEqual([{ one: 1 }]);
  });

  it('a LISTEN connection that dies is opened again and LISTENs again: the subscription keeps receiving', async () => {
    const received: string[] = [];
    const unlisten = await store.listen('outage_test', (payload) => received.push(payload));
    const listenerPids = async () =>
      (
        await admin.query<{ pid: number }>(`select pid from pg_stat_activity where datname = current_database() and query ilike 'listen %outage_test%'`)
      ).rows.map((r) => r.pid);
    try {
      await admin.query(`select pg_notify('outage_test', 'before')`);
      await waitFor('the first notification', () => received.includes('before'));
      const [first] = await listenerPids();
      expect(first).toBeTypeOf('number');
      await terminate(first!);
      await waitFor('a new LISTEN connection', async () => (await listenerPids()).some((pid) => pid !== first));
      await admin.query(`select pg_notify('outage_test', 'after')`);
      await waitFor('the notification sent after the reconnect', () => received.includes('after'));
      expect(received).toEqual(['before', 'after']);
    } finally {
      await unlisten();
    }
    // Stopped means stopped: no connection comes back.
    await new Promise((r) => setTimeout(r, 500));
    expect(await listenerPids()).toEqual([]);
  });
});
