import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Statement, type Store } from '../../src/db/store.ts';

/**
 * The embedded store runs the hot path's statements as named prepared statements through PGlite's
 * wire protocol (one trip per run, parsed once): the rows come back typed as PGlite's own queries
 * type them, a failed run leaves the statement usable, and a run never lands inside a transaction
 * another query has open on the one connection.
 */
describe('hot-path statements on the embedded store', () => {
  let store: Store;
  const typed: Statement = {
    name: 'test_typed',
    text: `select $1::text as text, ($2::text[])[2] as second, $3::int as n, $3::int > 1 as big, $4::jsonb as doc, null::text as nothing`,
  };

  beforeAll(async () => {
    store = await openStore({ dataDir: 'memory://' });
    await sql`create table marks (key text primary key)`.execute(store.db);
  });
  afterAll(async () => {
    await store?.close();
  });

  it('answers rows typed as PGlite types them, arrays and quotes included', async () => {
    for (let i = 0; i < 3; i++) {
      const rows = await store.run(typed, [`it's "quoted" \\ ${i}`, ['a,b', 'c "d" \\e'], i, JSON.stringify({ at: i, list: [1, 'two'] })]);
      expect(rows).toEqual([{ text: `it's "quoted" \\ ${i}`, second: 'c "d" \\e', n: i, big: i > 1, doc: { at: i, list: [1, 'two'] }, nothing: null }]);
    }
  });

  it('fails a run on bad data with its Postgres code, and the statement still runs after', async () => {
    const cast: Statement = { name: 'test_cast', text: 'select $1::int as n' };
    await expect(store.run(cast, ['not a number'])).rejects.toMatchObject({ code: '22P02' });
    expect(await store.run(cast, ['7'])).toEqual([{ n: 7 }]);
    await expect(store.run(cast, ['again not'])).rejects.toMatchObject({ code: '22P02' });
    expect(await store.run(cast, ['8'])).toEqual([{ n: 8 }]);
  });

  it('waits for an open transaction instead of running inside it', async () => {
    const insert: Statement = { name: 'test_insert', text: `insert into marks (key) values ($1) returning key` };
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let inserted!: () => void;
    const insideOpen = new Promise<void>((resolve) => (inserted = resolve));
    const transaction = store.db.transaction().execute(async (trx) => {
      await sql`insert into marks (key) values ('in-trx')`.execute(trx);
      inserted();
      await held;
      // Rolled back: had the run landed inside, its row would go too.
      throw new Error('roll back');
    });
    // The transaction is open and has written: now the run.
    await insideOpen;
    let settled = false;
    const run = store.run(insert, ['outside']).finally(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(settled).toBe(false);
    release();
    await expect(transaction).rejects.toThrow('roll back');
    expect(await run).toEqual([{ key: 'outside' }]);
    const { rows } = await sql<{ key: string }>`select key from marks`.execute(store.db);
    expect(rows.map((r) => r.key)).toEqual(['outside']);
  });

  /** The session's own settings, as Invoke's other queries on the one connection see them. */
  const sessionSettings = async () =>
    (
      await sql<{
        mode: string;
        seqscan: string;
        hashjoin: string;
      }>`select current_setting('plan_cache_mode') as mode, current_setting('enable_seqscan') as seqscan, current_setting('enable_hashjoin') as hashjoin`.execute(store.db)
    ).rows[0];

  it("runs a statement on one plan, made with the hot path's settings, and leaves the session's own", async () => {
    // A table of one page, analyzed: with the default settings the planner would scan it whole.
    await sql`create table probes (id text primary key, v int)`.execute(store.db);
    await sql`insert into probes values ('a', 1)`.execute(store.db);
    await sql`analyze probes`.execute(store.db);
    const probe: Statement = { name: 'test_probe', text: 'select v from probes where id = $1' };
    expect(await store.run(probe, ['a'])).toEqual([{ v: 1 }]);
    expect(await sessionSettings()).toEqual({ mode: 'auto', seqscan: 'on', hashjoin: 'on' });
    // The plan the run made and kept (a generic plan is reused as it is, whatever the settings now).
    const plan = await store.db.transaction().execute(async (trx) => {
      await sql`set local plan_cache_mode = force_generic_plan`.execute(trx);
      return (await sql<{ 'QUERY PLAN': string }>`explain execute test_probe('a')`.execute(trx)).rows.map((row) => row['QUERY PLAN']).join('\n');
    });
    expect(plan).toMatch(/Index Scan using probes_pkey/);
    expect(plan).not.toMatch(/Seq Scan/);
  });

  it("leaves the session's own settings after a failed run too", async () => {
    const cast: Statement = { name: 'test_cast_settings', text: 'select $1::int as n' };
    await expect(store.run(cast, ['not a number'])).rejects.toMatchObject({ code: '22P02' });
    expect(await sessionSettings()).toEqual({ mode: 'auto', seqscan: 'on', hashjoin: 'on' });
  });

  it('refuses a parameter it cannot send as text, instead of sending String(value)', async () => {
    await expect(store.run(typed, [new Date(), ['a'], 1, '{}'])).rejects.toThrow(TypeError);
    await expect(store.run(typed, ['a', [{ nested: true }], 1, '{}'])).rejects.toThrow(TypeError);
    // The statement is unharmed.
    expect(await store.run(typed, ['a', ['b', 'c'], 2, '{}'])).toEqual([{ text: 'a', second: 'c', n: 2, big: true, doc: {}, nothing: null }]);
  });
});
