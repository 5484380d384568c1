import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { trimEnd, type Config } from '../config.ts';

export type LinkSecretSource = 'config' | 'data-dir' | 'memory';

/** The secret review links and web sessions are signed with, and where it came from; null: links are off. */
export interface LinkSecret {
  secret: string;
  source: LinkSecretSource;
  /** The file holding a generated secret. */
  file?: string;
}

/** Beside the data directory (as its lock is), not inside it: the directory is the database's. */
export function linkSecretFile(dataDir: string): string {
  return `${trimEnd(dataDir, '/\\')}.link-secret`;
}

/**
 * Links must outlive a restart and work on every replica, so a secret generated per process
 * would not do. INVOKE_LINK_SECRET when set; else the embedded store (one process per data
 * directory, by its lock) generates one once and keeps it beside the data (mode 0600); an
 * in-memory store keeps one in memory, gone with the data. On a Postgres server with no secret
 * set, links are off: a secret kept in the database would let anyone who can read it mint links.
 */
export async function resolveLinkSecret(config: Pick<Config, 'linkSecret' | 'databaseUrl' | 'dataDir'>): Promise<LinkSecret | null> {
  if (config.linkSecret) return { secret: config.linkSecret, source: 'config' };
  if (config.databaseUrl) return null;
  if (config.dataDir.startsWith('memory://')) return { secret: randomBytes(32).toString('base64url'), source: 'memory' };
  const file = linkSecretFile(config.dataDir);
  const generated = randomBytes(32).toString('base64url');
  try {
    await writeFile(file, `${generated}\n`, { flag: 'wx', mode: 0o600 });
    return { secret: generated, source: 'data-dir', file };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const kept = (await readFile(file, 'utf8')).trim();
  if (kept.length < 32) throw new Error(`${file} holds no usable link secret (under 32 characters); delete it to generate a new one, or set INVOKE_LINK_SECRET`);
  return { secret: kept, source: 'data-dir', file };
}
