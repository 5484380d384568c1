/**
 * The two stores the bench runs on. Each section gets a fresh, migrated database of its own, so
 * one section's rows never slow another's: a new database on the Postgres server, or a copy of
 * a migrated embedded data directory (creating a PGlite cluster from nothing takes seconds).
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { migrateToLatest } from '../src/db/migrate.ts';
import { openStore, type Store } from '../src/db/store.ts';
import { startPostgres } from '../test/pg/postgres-server.ts';

export type StoreKind = 'postgres' | 'embedded';

export interface BenchDatabase {
  kind: StoreKind;
  /** What Invoke needs in its environment to use this database. */
  env: Record<string, string>;
  /** Opens it in the bench's own process (never while an Invoke process holds an embedded one). */
  open(): Promise<Store>;
}

export interface StoreProvider {
  kind: StoreKind;
  /** Where it runs, for the report. */
  describe: string;
  fresh(): Promise<BenchDatabase>;
  /** Safe to pass around on its own: the bench keeps it in its interrupt handlers. */
  close: () => Promise<void>;
  /** CPU seconds of a Postgres server the bench started (undefined for DATABASE_URL and the embedded store). */
  serverCpuSeconds(): number | undefined;
}

export async function openProvider(kind: StoreKind): Promise<StoreProvider> {
  return kind === 'postgres' ? postgresProvider() : embeddedProvider();
}

/** DATABASE_URL when set (databases are created on it and dropped after), else a throwaway server. */
async function postgresProvider(): Promise<StoreProvider> {
  const given = process.env['DATABASE_URL'];
  // Durable, as in production: every call and trace is on disk before its answer.
  const server = given ? { url: given, stop() {}, cpuSeconds: () => undefined } : await startPostgres({ durable: true });
  const created: string[] = [];
  const admin = async <T>(run: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    try {
      return await run(client);
    } finally {
      await client.end();
    }
  };
  const version = await admin(async (c) => (await c.query<{ server_version: string }>('show server_version')).rows[0]!.server_version);
  return {
    kind: 'postgres',
    describe: `PostgreSQL ${version} (${given ? 'DATABASE_URL' : 'throwaway local server, fsync and synchronous commit on'})`,
    serverCpuSeconds: () => server.cpuSeconds(),
    async fresh() {
      const name = `invoke_bench_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`;
      await admin((c) => c.query(`create database ${name}`));
      created.push(name);
      const url = new URL(server.url);
      url.pathname = `/${name}`;
      const databaseUrl = url.toString();
      const open = () => openStore({ databaseUrl, dataDir: 'memory://' });
      const store = await open();
      await migrateToLatest(store.db);
      await store.close();
      return { kind: 'postgres', env: { DATABASE_URL: databaseUrl }, open };
    },
    async close() {
      if (given)
        await admin(async (c) => {
          for (const name of created) await c.query(`drop database if exists ${name} with (force)`);
        });
      server.stop();
    },
  };
}

async function embeddedProvider(): Promise<StoreProvider> {
  const root = await mkdtemp(path.join(tmpdir(), 'invoke-bench-'));
  const template = path.join(root, 'template');
  const store = await openStore({ dataDir: template });
  await migrateToLatest(store.db);
  await store.close();
  let count = 0;
  return {
    kind: 'embedded',
    describe: 'embedded (PGlite, data directory on local disk, fsync on)',
    serverCpuSeconds: () => undefined,
    async fresh() {
      const dataDir = path.join(root, `db-${++count}`);
      await cp(template, dataDir, { recursive: true });
      return { kind: 'embedded', env: { INVOKE_DATA_DIR: dataDir }, open: () => openStore({ dataDir }) };
    },
    async close() {
      await rm(root, { recursive: true, force: true });
    },
  };
}
