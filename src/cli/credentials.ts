import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { DEFAULT_BASE_URL } from '../sdk/index.ts';

export interface Credentials {
  base_url: string;
  api_key: string;
}

/** Where `login` writes: `$INVOKE_HOME/credentials.json`, else `~/.invoke/credentials.json`. */
export function credentialsPath(env: Record<string, string | undefined>): string {
  return path.join(env.INVOKE_HOME || path.join(homedir(), '.invoke'), 'credentials.json');
}

export async function readCredentials(env: Record<string, string | undefined>): Promise<Partial<Credentials>> {
  try {
    const parsed = JSON.parse(await readFile(credentialsPath(env), 'utf8')) as Partial<Credentials>;
    return { base_url: typeof parsed.base_url === 'string' ? parsed.base_url : undefined, api_key: typeof parsed.api_key === 'string' ? parsed.api_key : undefined };
  } catch {
    return {};
  }
}

/** The key is a secret: the folder is the user's only (0700), the file too (0600), even if they existed before. */
export async function saveCredentials(env: Record<string, string | undefined>, credentials: Credentials): Promise<string> {
  const file = credentialsPath(env);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return file;
}

export interface ResolvedConnection {
  baseUrl: string;
  apiKey: string | undefined;
  /** Where the key came from, for `status`. */
  keySource: 'flag' | 'env' | 'file' | 'none';
}

/** Flags win over the environment (`INVOKE_API_KEY`, `INVOKE_BASE_URL`), which wins over the file. */
export async function resolveConnection(env: Record<string, string | undefined>, flags: { baseUrl?: string; apiKey?: string }): Promise<ResolvedConnection> {
  const file = await readCredentials(env);
  const apiKey = flags.apiKey ?? (env.INVOKE_API_KEY || undefined) ?? file.api_key;
  const keySource = flags.apiKey ? 'flag' : env.INVOKE_API_KEY ? 'env' : file.api_key ? 'file' : 'none';
  return { baseUrl: flags.baseUrl ?? (env.INVOKE_BASE_URL || undefined) ?? file.base_url ?? DEFAULT_BASE_URL, apiKey, keySource };
}
