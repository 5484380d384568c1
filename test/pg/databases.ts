import pg from 'pg';

/** A fresh database on the suite's server, so each test file starts from an empty schema. */
export async function createTestDatabase(serverUrl: string): Promise<string> {
  const name = `t_${crypto.randomUUID().replaceAll('-', '').slice(0, 16)}`;
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(`create database ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
