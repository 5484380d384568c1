import { mkdir, realpath } from 'node:fs/promises';
import { PGlite, protocol, types } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import pg from 'pg';
import lockfile from 'proper-lockfile';
import { openDurablePglite } from './durable-nodefs.ts';
import type { Database } from './schema.ts';

/** A connection attempt that hangs (a network partition) fails after this instead of holding a request. */
const CONNECT_TIMEOUT_MS = 5_000;

/**
 * Connections each pool keeps open however quiet it gets. Without a floor, pg-pool closed every
 * idle connection after 10 s, so the first call after a pause paid a new connection, the hot
 * path's settings and the preparing of its statements again (bench, section `pause`: 14.9 ms
 * after an 11 s pause, 7.3 ms with the floor, where the tool called directly takes 1.0-1.8 ms
 * after the same pause). Agents call in bursts: the call after a pause is a common one.
 */
export const POOL_FLOOR = 2;

/** How long a connection above {@link POOL_FLOOR} stays open idle (pg-pool's default). */
const IDLE_TIMEOUT_MS = 10_000;

/** A lost LISTEN connection is opened again after 200 ms, 400 ms, ... up to every 2 s while Postgres is away. */
const LISTEN_RETRY_BASE_MS = 200;
const LISTEN_RETRY_MAX_MS = 2_000;
/** A data directory lock not refreshed for this long belongs to a process that died: it is taken over. */
const LOCK_STALE_MS = 10_000;
/** How often a running process refreshes its lock (well within {@link LOCK_STALE_MS}). */
const LOCK_UPDATE_MS = 2_000;

/** The embedded data directory is held by another running process: opening it too would lose writes. */
export class DataDirInUseError extends Error {
  constructor(readonly dataDir: string) {
    super(
      [
        `The data directory ${dataDir} is in use by another Invoke process (a server, npm run sweep or npm run migrate).`,
        'Stop that process first, or set INVOKE_DATA_DIR to another directory. To run several processes on one store, use Postgres (DATABASE_URL).',
        `If that process crashed, its lock (${dataDir}.lock) is taken over at most ${LOCK_STALE_MS / 1000} s after it died.`,
      ].join('\n'),
    );
    this.name = 'DataDirInUseError';
  }
}

export interface StoreOptions {
  /** A real Postgres server; without it the embedded store (PGlite) is used. */
  databaseUrl?: string;
  /** Embedded store directory, or `memory://` for a throwaway in-memory store. */
  dataDir: string;
  poolSize?: number;
  /** How long a connection above the pool's floor stays open idle (tests shorten it). */
  idleTimeoutMs?: number;
}

/** The store: Postgres through Kysely, either a real server or PGlite in-process. Same SQL for both. */
export interface Store {
  db: Kysely<Database>;
  kind: 'postgres' | 'embedded';
  ping(): Promise<void>;
  /**
   * One hot-path statement, outside any transaction (it commits by itself). On Postgres it is a
   * named prepared statement, parsed and planned once per connection (see {@link HOT_PATH_SETTINGS});
   * on the embedded store it queues behind open transactions like every other query.
   */
  run<Row>(statement: Statement, values: readonly unknown[]): Promise<Row[]>;
  /**
   * LISTEN on a channel (NOTIFY is sent with pg_notify in SQL); returns how to stop. On Postgres
   * the subscription survives a lost connection (it is opened again), but notifications sent
   * while it was down are lost: listeners must be able to catch up by other means.
   */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/**
 * The hot path's named statements run on connections of their own, where each is planned once
 * (a generic plan) with sequential scans, hash and merge joins and bitmap scans priced out. What is
 * left is the plan they are written for, at any table size: a nested loop over the batch, probing
 * primary keys. Planning on every run (`force_custom_plan`) had been a third of Postgres's CPU per
 * call; a generic plan made the default way, while the tables were small, chose sequential scans
 * of `calls` and kept them as the table grew. Invoke's other queries (Kysely's, unnamed) run on
 * the main pool with the server's settings, planned on each run as unnamed statements always are.
 */
const HOT_PATH_SETTING_VALUES = { plan_cache_mode: 'force_generic_plan', enable_seqscan: 'off', enable_hashjoin: 'off', enable_mergejoin: 'off', enable_bitmapscan: 'off' };
const HOT_PATH_SETTINGS = Object.entries(HOT_PATH_SETTING_VALUES)
  .map(([name, value]) => `set ${name} = ${value}`)
  .join('; ');
/** The settings above back to the session's own (the embedded store sets them around each run). */
const HOT_PATH_RESET = Object.keys(HOT_PATH_SETTING_VALUES)
  .map((name) => `reset ${name}`)
  .join('; ');

/**
 * A pool of connections to Postgres. A connection dies when Postgres stops or restarts; that must
 * never crash the process. An idle one: the pool emits 'error' and drops it. A checked-out one
 * (Kysely holds one per query or transaction): pg emits 'error' on the client itself, where
 * pg-pool does not listen; the query in progress is rejected with the error (answered 503), and
 * the client, no longer queryable, is dropped when it is released.
 */
function openPool(databaseUrl: string, size = 10, idleTimeoutMs = IDLE_TIMEOUT_MS): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: size,
    min: Math.min(POOL_FLOOR, size),
    idleTimeoutMillis: idleTimeoutMs,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
  });
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/** A statement of the hot path: fixed text, so a server can keep it prepared by name. */
export interface Statement {
  name: string;
  text: string;
}

export async function openStore(options: StoreOptions): Promise<Store> {
  const { databaseUrl } = options;
  if (databaseUrl) {
    const pool = openPool(databaseUrl, options.poolSize, options.idleTimeoutMs);
    const hotPath = openPool(databaseUrl, options.poolSize, options.idleTimeoutMs);
    // Each connection of the hot path gets its settings before its first statement (a SET, rather
    // than the startup `options`, so a DATABASE_URL with options of its own keeps both).
    const settled = new WeakSet<pg.PoolClient>();
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    const run = async <Row>(statement: Statement, values: readonly unknown[]) => {
      const client = await hotPath.connect();
      let failure: Error | undefined;
      try {
        if (!settled.has(client)) {
          await client.query(HOT_PATH_SETTINGS);
          settled.add(client);
        }
        return (await client.query({ name: statement.name, text: statement.text, values: [...values] })).rows as Row[];
      } catch (error) {
        // An error Postgres answered about the statement (bad data, a conflict) leaves the
        // connection usable, its prepared statements and plans with it. Any other is dropped: no
        // SQLSTATE (the connection lost), a connection exception (08) or the server going away (57).
        const code = (error as { code?: unknown }).code;
        if (typeof code !== 'string' || code.startsWith('08') || code.startsWith('57')) failure = error as Error;
        throw error;
      } finally {
        client.release(failure);
      }
    };
    return storeFor(
      db,
      'postgres',
      run,
      (channel, onPayload) => listenWithReconnect(databaseUrl, channel, onPayload),
      () => hotPath.end(),
    );
  }
  const inMemory = options.dataDir.startsWith('memory://');
  if (!inMemory) await mkdir(options.dataDir, { recursive: true });
  const unlock = inMemory ? async () => {} : await lockDataDir(options.dataDir);
  let pglite: PGlite;
  try {
    pglite = inMemory ? await PGlite.create(options.dataDir) : await openDurablePglite(options.dataDir);
  } catch (error) {
    await unlock().catch(() => {});
    throw error;
  }
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  const run = preparedOnPglite(pglite, db);
  return storeFor(
    db,
    'embedded',
    run,
    async (channel, onPayload) => {
      const unsubscribe = await pglite.listen(channel, onPayload);
      return async () => {
        if (!pglite.closed) await unsubscribe().catch(() => {});
      };
    },
    unlock,
  );
}

/**
 * The hot path on the embedded store: each statement is parsed once, as a named prepared
 * statement, and every run is one trip into PGlite (Bind, Describe, Execute and Sync in one
 * buffer). Its `query` makes six (Parse, Describe, Bind, Describe, Execute, Sync), parsing,
 * analysing and rewriting the statement on each. A run holds Kysely's one connection, so it never
 * lands inside a transaction another query has open, and PGlite's query lock (`runExclusive`,
 * made for `execProtocol`), so nothing else of PGlite's (LISTEN) interleaves. Each statement runs
 * on one plan, as on the server's hot path: the same trip sets {@link HOT_PATH_SETTINGS} before
 * it and resets them after (the one connection serves every other query too, which keep the
 * session's own), so the plan made with them, on the first run or after an ANALYZE, probes
 * primary keys. Planned on every run instead, a statement spent about 0.4 ms planning (PGlite's
 * file system answers each relation's size with an `fstat`) against 0.15-0.19 ms executing; a
 * run of the claim went from 0.72 to 0.30 ms.
 */
function preparedOnPglite(pglite: PGlite, db: Kysely<Database>): Store['run'] {
  const { serialize } = protocol;
  const prepared = new Set<string>();
  const settingsOn = serialize.query(HOT_PATH_SETTINGS);
  const settingsOff = serialize.query(HOT_PATH_RESET);
  return <Row>(statement: Statement, values: readonly unknown[]) =>
    db.connection().execute(() =>
      pglite.runExclusive(async () => {
        const parse = !prepared.has(statement.name);
        const message = Buffer.concat([
          settingsOn,
          ...(parse ? [serialize.parse({ name: statement.name, text: statement.text, types: [] })] : []),
          serialize.bind({ statement: statement.name, values: values.map(textParameter) }),
          serialize.describe({ type: 'P' }),
          serialize.execute({}),
          serialize.sync(),
          settingsOff,
        ]);
        try {
          const { messages } = await pglite.execProtocol(message);
          prepared.add(statement.name);
          return rowsOf<Row>(messages);
        } catch (error) {
          // Parsed, then failed (or gone, 26000): forget it on both sides, so the next run parses
          // it again. The run's own error is the one that counts.
          if (parse || (error as { code?: unknown }).code === '26000') {
            prepared.delete(statement.name);
            await pglite.execProtocol(Buffer.concat([serialize.close({ type: 'S', name: statement.name }), serialize.sync()]), { throwOnError: false }).catch(() => {});
          }
          throw error;
        }
      }),
    );
}

/** A string, number or boolean as text; anything else (a Date, an object) is refused rather than sent as `String(value)`. */
function scalarText(value: unknown, what: string): string {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new TypeError(`${what} of the hot path is a ${typeof value}: send JSON text, numbers, booleans or flat arrays of them`);
}

/**
 * A bind parameter in text format, for what the hot path sends: strings (JSON text included),
 * numbers, booleans, and flat arrays of them (an array literal, each element quoted, its quotes
 * and backslashes escaped).
 */
function textParameter(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (!Array.isArray(value)) return scalarText(value, 'a parameter');
  const elements = value.map((v) => (v === null ? 'NULL' : `"${scalarText(v, 'an array element').replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`));
  return `{${elements.join(',')}}`;
}

/**
 * The rows of a run's messages, each value parsed by its column's type with PGlite's default
 * parsers (text, numbers, booleans, json, dates; array columns would come back as text: the hot
 * path returns none).
 */
function rowsOf<Row>(messages: Array<{ name: string }>): Row[] {
  let fields: Array<{ name: string; dataTypeID: number }> = [];
  const rows: Row[] = [];
  for (const message of messages) {
    if (message.name === 'rowDescription') fields = (message as unknown as { fields: typeof fields }).fields;
    else if (message.name === 'dataRow') {
      const values = (message as unknown as { fields: Array<string | null> }).fields;
      const row: Record<string, unknown> = {};
      fields.forEach((field, i) => {
        row[field.name] = types.parseType(values[i] ?? null, field.dataTypeID) as unknown;
      });
      rows.push(row as Row);
    }
  }
  return rows;
}

/**
 * PGlite is one process's database: a second process on the same directory would run the same
 * idempotency key again and lose one side's writes. A lock directory next to it (proper-lockfile:
 * an atomic mkdir, refreshed while we run) keeps the second one out; it is removed on close or
 * exit, and taken over once stale when its process was killed.
 */
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  // The real path: the same directory reached through a symlink is the same lock.
  const resolved = await realpath(dataDir);
  try {
    return await lockfile.lock(resolved, {
      realpath: false,
      stale: LOCK_STALE_MS,
      update: LOCK_UPDATE_MS,
      // Lost only if our refreshes stalled past the stale time or someone removed the lock: another
      // process may have the directory now, and two writers corrupt it. Stop rather than go on.
      onCompromised: (error) => {
        console.error(`Invoke lost its lock on the data directory ${resolved} (${error.message}); stopping so that two processes never write it at once.`);
        process.exit(1);
      },
    });
  } catch (error) {
    if ((error as { code?: string }).code === 'ELOCKED') throw new DataDirInUseError(resolved);
    throw error;
  }
}

/**
 * LISTEN on a dedicated connection (a pooled one would lose its LISTEN when returned to the pool),
 * opened again with backoff whenever it is lost, the subscription kept. The first connection is
 * made before this resolves, so a store that is down at start fails the start.
 */
async function listenWithReconnect(databaseUrl: string, channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>> {
  let stopped = false;
  let current: pg.Client | null = null;
  let retryTimer: NodeJS.Timeout | null = null;
  let failures = 0;

  const connect = async (): Promise<void> => {
    const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, keepAlive: true });
    client.on('notification', (message) => {
      if (message.channel === channel && message.payload) onPayload(message.payload);
    });
    // 'error' (the connection failed) and 'end' (it closed) may both come, in either order.
    client.on('error', () => lost(client));
    client.on('end', () => lost(client));
    try {
      await client.connect();
      await client.query(`listen ${quoteIdent(channel)}`);
    } catch (error) {
      await client.end().catch(() => {});
      throw error;
    }
    if (stopped) {
      await client.end().catch(() => {});
      return;
    }
    current = client;
    failures = 0;
  };

  const lost = (client: pg.Client) => {
    if (current !== client) return;
    current = null;
    client.end().catch(() => {});
    reconnectLater();
  };

  const reconnectLater = () => {
    if (stopped || retryTimer) return;
    const delay = Math.min(LISTEN_RETRY_MAX_MS, LISTEN_RETRY_BASE_MS * 2 ** failures);
    failures += 1;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      connect().catch(reconnectLater);
    }, delay);
    // Reconnecting alone never keeps a process alive.
    retryTimer.unref();
  };

  await connect();
  return async () => {
    stopped = true;
    if (retryTimer) clearTimeout(retryTimer);
    retryTimer = null;
    const client = current;
    current = null;
    await client?.end().catch(() => {});
  };
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function storeFor(db: Kysely<Database>, kind: Store['kind'], run: Store['run'], listen: Store['listen'], release: () => Promise<void>): Store {
  return {
    db,
    kind,
    run,
    listen,
    async ping() {
      await sql`select 1`.execute(db);
    },
    async close() {
      try {
        await db.destroy();
      } finally {
        // The hot path's pool; on the embedded store, the directory's lock: only once the
        // database is closed may another process open it.
        await release().catch(() => {});
      }
    },
  };
}

/** A JSON value for a jsonb column. An explicit cast keeps pg and PGlite from guessing (pg sends JS arrays as Postgres arrays). */
export function jsonb(value: unknown) {
  return sql<string>`cast(${jsonForPostgres(value)} as jsonb)`;
}

/**
 * An escape jsonb refuses, preceded by an even run of backslashes (so it is an escape, not an
 * escaped backslash followed by text): NUL, and the surrogates `\ud800`-`\udfff`. JSON.stringify
 * writes well-formed pairs as the characters themselves and escapes only lone surrogates, so
 * every surrogate escape in its output is a lone one. One left-to-right pass: linear time.
 */
const UNSTORABLE_ESCAPE = /(?<!\\)((?:\\\\)*)\\u(?:0000|d[89a-f][0-9a-f]{2})/g;

/** JSON text Postgres accepts: tool output may hold the NUL character or a lone surrogate, which jsonb refuses; both become U+FFFD. */
export function jsonForPostgres(value: unknown): string {
  const json = JSON.stringify(value ?? null);
  // Almost no text has an escape of this kind: one scan for `\u` spares the regex the whole batch.
  return json.includes('\\u') ? json.replace(UNSTORABLE_ESCAPE, '$1\\ufffd') : json;
}
