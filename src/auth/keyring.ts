import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Config, ScopedKeyConfig } from '../config.ts';
import type { ApiKeysRepository } from './api-keys-repository.ts';

/** Who is calling: derived from the API key, never from the request body. */
export interface KeyIdentity {
  /** Stable, non-secret id of the key (used to namespace idempotency keys and as requester). */
  id: string;
  name: string;
  /** Full-access keys (INVOKE_API_KEYS, the generated key) have every scope and no limits. */
  fullAccess: boolean;
  limits?: ScopedKeyConfig;
}

interface KeyEntry {
  hash: Buffer;
  identity: KeyIdentity;
}

export function hashKey(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

export function keyIdFor(hash: Buffer): string {
  return `key_${hash.toString('hex').slice(0, 16)}`;
}

/** The person behind a key: its `approver_id`, else the key itself. Approvals are about people, not keys. */
export function personOf(identity: KeyIdentity): string {
  return identity.limits?.approver_id ?? identity.id;
}

/**
 * The person behind a key known only by its id (an approval stored before its requester's person
 * was): the configured key's `approver_id` when that key is still configured, else the key id.
 */
export function personForKeyId(config: Config, keyId: string): string {
  for (const [key, limits] of Object.entries(config.scopedKeys)) {
    if (keyIdFor(hashKey(key)) === keyId) return limits.approver_id ?? keyId;
  }
  return keyId;
}

export interface Keyring {
  authenticate(presented: string | undefined): KeyIdentity | null;
  /** The identity of a key known by its id (a web session or a bound review link names the key, never holds it). */
  findById(id: string): KeyIdentity | null;
  size(): number;
}

/**
 * Keys are compared as SHA-256 digests with `timingSafeEqual`, against every entry without an
 * early exit, so neither the key's content nor its position leaks through timing.
 */
export function createKeyring(entries: KeyEntry[]): Keyring {
  return {
    authenticate(presented) {
      if (!presented) return null;
      const digest = hashKey(presented);
      let found: KeyIdentity | null = null;
      for (const entry of entries) {
        if (timingSafeEqual(entry.hash, digest) && found === null) found = entry.identity;
      }
      return found;
    },
    findById: (id) => entries.find((entry) => entry.identity.id === id)?.identity ?? null,
    size: () => entries.length,
  };
}

/** Keys from the environment plus full-access keys whose hashes are in the store. */
export async function loadKeyring(config: Config, apiKeys: ApiKeysRepository): Promise<Keyring> {
  const entries: KeyEntry[] = [];
  for (const key of config.apiKeys) {
    const hash = hashKey(key);
    entries.push({ hash, identity: { id: keyIdFor(hash), name: 'env', fullAccess: true } });
  }
  for (const [key, limits] of Object.entries(config.scopedKeys)) {
    const hash = hashKey(key);
    const id = keyIdFor(hash);
    entries.push({ hash, identity: { id, name: limits.name ?? id, fullAccess: false, limits } });
  }
  const stored = await apiKeys.listStored();
  for (const row of stored) {
    entries.push({ hash: Buffer.from(row.key_hash, 'hex'), identity: { id: row.id, name: row.name, fullAccess: true } });
  }
  return createKeyring(entries);
}

/**
 * With no key configured anywhere, generate one full-access key, store only its hash, and return
 * the plaintext once so the operator can copy it. Nothing is ever open without a key.
 */
export async function ensureBootstrapKey(config: Config, apiKeys: ApiKeysRepository): Promise<string | null> {
  if (config.apiKeys.length > 0 || Object.keys(config.scopedKeys).length > 0) return null;
  if (await apiKeys.anyStored()) return null;
  const key = `inv_${randomBytes(24).toString('base64url')}`;
  const hash = hashKey(key);
  const inserted = await apiKeys.insertOnce({ id: keyIdFor(hash), key_hash: hash.toString('hex'), name: 'generated at first start' });
  return inserted ? key : null;
}
