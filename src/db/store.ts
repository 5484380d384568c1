import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { CompiledQuery, Kysely, PostgresDialect, sql } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import pg from 'pg';
import type { Database } from './schema.ts';

export interface StoreOptions {
  /** A real Postgres server; without it the embedded store (PGlite) is used. */
  databaseUrl?: string;
  /** Embedded store directory, or `memory://` for a throwaway in-memory store. */
  dataDir: string;
  poolSize?: number;
}

/** The store: Postgres through Kysely, either a real server or PGlite in-process. Same SQL for both. */
export interface Store {
  db: Kysely<Database>;
  kind: 'postgres' | 'embedded';
  ping(): Promise<void>;
  /**
   * One hot-path statement, outside any transaction (it commits by itself). On Postgres it is a
   * named prepared statement, parsed and planned once per connection; on the embedded store it
   * queues behind open transactions like every other query.
   */
  run<Row>(statement: Statement, values: readonly unknown[]): Promise<Row[]>;
  /** LISTEN on a channel (NOTIFY is sent with pg_notify in SQL); returns how to stop. */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** A statement of the hot path: fixed text, so a server can keep it prepared by name. */
export interface Statement {
  name: string;
  text: string;
}

export async function openStore(options: StoreOptions): Promise<Store> {
  if (options.databaseUrl) {
    const pool = new pg.Pool({ connectionString: options.databaseUrl, max: options.poolSize ?? 10 });
    // An idle client losing its server must not crash the process; the next query reports it.
    pool.on('error', () => {});
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    const run = async <Row>(statement: Statement, values: readonly unknown[]) =>
      (await pool.query({ name: statement.name, text: statement.text, values: [...values] })).rows as Row[];
    return storeFor(db, 'postgres', run, async (channel, onPayload) => {
      // A dedicated connection: a pooled one would lose its LISTEN when returned to the pool.
      const client = new pg.Client({ connectionString: options.databaseUrl });
      client.on('error', () => {});
      await client.connect();
      client.on('notification', (message) => {
        if (message.channel === channel && message.payload) onPayload(message.payload);
      });
      await client.query(`listen ${quoteIdent(channel)}`);
      return async () => {
        await client.end().catch(() => {});
      };
    });
  }
  if (!options.dataDir.startsWith('memory://')) await mkdir(options.dataDir, { recursive: true });
  const pglite = await PGlite.create(options.dataDir);
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  const run = async <Row>(statement: Statement, values: readonly unknown[]) =>
    (await db.executeQuery<Row>(CompiledQuery.raw(statement.text, [...values]))).rows as Row[];
  return storeFor(db, 'embedded', run, async (channel, onPayload) => {
    const unsubscribe = await pglite.listen(channel, onPayload);
    return async () => {
      if (!pglite.closed) await unsubscribe().catch(() => {});
    };
  });
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function storeFor(db: Kysely<Database>, kind: Store['kind'], run: Store['run'], listen: Store['listen']): Store {
  return {
    db,
    kind,
    run,
    listen,
    async ping() {
      await sql`select 1`.execute(db);
    },
    async close() {
      await db.destroy();
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
  return JSON.stringify(value ?? null).replace(UNSTORABLE_ESCAPE, '$1\\ufffd');
}
