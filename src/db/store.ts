import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, sql } from 'kysely';
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
  close(): Promise<void>;
}

export async function openStore(options: StoreOptions): Promise<Store> {
  if (options.databaseUrl) {
    const pool = new pg.Pool({ connectionString: options.databaseUrl, max: options.poolSize ?? 10 });
    // An idle client losing its server must not crash the process; the next query reports it.
    pool.on('error', () => {});
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return storeFor(db, 'postgres');
  }
  if (!options.dataDir.startsWith('memory://')) await mkdir(options.dataDir, { recursive: true });
  const pglite = await PGlite.create(options.dataDir);
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  return storeFor(db, 'embedded');
}

function storeFor(db: Kysely<Database>, kind: Store['kind']): Store {
  return {
    db,
    kind,
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
  return sql<string>`cast(${JSON.stringify(value ?? null)} as jsonb)`;
}
