import { createHash } from 'node:crypto';

/** JSON with object keys sorted at every depth, so equal values give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value as Record<string, unknown>)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * An id that sorts by creation: 12 hex digits of the millisecond clock, then 12 random ones (the
 * random tail of a v4 UUID; 48 bits, so two ids collide only if made in the same millisecond
 * and then about once in 10^14 pairs). A new row's key lands at the right edge of its primary
 * key's index, as its created_at entries do, instead of on a random leaf: the leaves a write
 * dirties stay few, so after each checkpoint a call's claim logs one full page image per hot
 * page rather than up to one per call, and a sweep over rows made together walks neighbouring
 * keys. Ids are names, not secrets: nothing is authorised by knowing one.
 */
export function newId(prefix: string, now: number = Date.now()): string {
  return `${prefix}_${now.toString(16).padStart(12, '0')}${crypto.randomUUID().slice(24)}`;
}
