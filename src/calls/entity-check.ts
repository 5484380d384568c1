import { ValidationError } from '../errors.ts';

/**
 * Entity resolution check: the agent says which entity it resolved (`cust_123`); a call whose
 * params or variables point at another entity of the same kind is blocked.
 *
 * Only fields that refer to the resolved entity's kind are compared, so `user_id: "usr_9"` never
 * blocks a `cust_123` resolution. A field refers to that kind when it is:
 * - named `<entity_type>_id` (type `customer` -> `customer_id`), or `id` inside a `<entity_type>`
 *   object (`customer.id`);
 * - named `id` or `*_id` and its string value carries the resolved id's prefix (`cust_` of
 *   `cust_123`), when the id has one;
 * - named `entity_id`, always.
 */

export interface EntityResolution {
  entity_id: string;
  entity_type?: string;
  source?: string;
  resolved_at?: string;
}

export interface EntityMismatch {
  field: string;
  expected: string;
  actual: unknown;
}

export type EntityCheck = { ok: true; checked: string[] } | { ok: false; reason: string; mismatches: EntityMismatch[]; checked: string[] };

// Params are JSON from a request; the cap only stops pathological nesting.
const MAX_DEPTH = 32;

/** Compares the resolved entity with every field of its kind in params, variables and (optionally) state. */
export function checkEntityResolution(
  resolution: EntityResolution,
  params: Record<string, unknown> = {},
  variables: Record<string, unknown> = {},
  state?: Record<string, unknown>,
): EntityCheck {
  const expected = resolution.entity_id;
  if (typeof expected !== 'string' || expected.trim() === '') {
    throw new ValidationError('entity_resolution.entity_id must be a non-empty string', { field: 'entity_resolution.entity_id' });
  }
  const kind = {
    typeKey: resolution.entity_type ? `${resolution.entity_type.trim().toLowerCase()}_id` : undefined,
    typeName: resolution.entity_type?.trim().toLowerCase(),
    prefix: idPrefix(expected),
  };

  const checked: string[] = [];
  const mismatches: EntityMismatch[] = [];
  const visit = (value: unknown, path: string, key: string, parentKey: string | undefined, depth: number): void => {
    if (depth > MAX_DEPTH) return;
    if (Array.isArray(value)) {
      value.forEach((item, i) => visit(item, `${path}.${i}`, String(i), key, depth + 1));
      return;
    }
    if (value !== null && typeof value === 'object') {
      for (const [childKey, child] of Object.entries(value)) visit(child, `${path}.${childKey}`, childKey, key, depth + 1);
      return;
    }
    if (!refersToResolvedKind(key, parentKey, value, kind)) return;
    checked.push(path);
    if (String(value) !== expected) mismatches.push({ field: path, expected, actual: value });
  };

  const roots: [string, Record<string, unknown> | undefined][] = [
    ['params', params],
    ['variables', variables],
    ['state', state],
  ];
  for (const [root, values] of roots) {
    if (!values) continue;
    for (const [key, value] of Object.entries(values)) visit(value, `${root}.${key}`, key, undefined, 1);
  }

  if (mismatches.length === 0) return { ok: true, checked };
  const [first] = mismatches;
  const more = mismatches.length > 1 ? ` (and ${mismatches.length - 1} more)` : '';
  const reason = `${first!.field} is ${JSON.stringify(first!.actual)} but the resolved entity is ${JSON.stringify(expected)}${more}`;
  return { ok: false, reason, mismatches, checked };
}

/** `cust_` of `cust_123`: the part up to and including the first `_`, when there is one. */
export function idPrefix(entityId: string): string | undefined {
  const match = /^([A-Za-z0-9]+_)./.exec(entityId);
  return match?.[1];
}

function refersToResolvedKind(
  key: string,
  parentKey: string | undefined,
  value: unknown,
  kind: { typeKey: string | undefined; typeName: string | undefined; prefix: string | undefined },
): boolean {
  if (typeof value !== 'string' && typeof value !== 'number') return false;
  const name = key.toLowerCase();
  if (name === 'entity_id') return true;
  if (kind.typeKey !== undefined && name === kind.typeKey) return true;
  if (kind.typeName !== undefined && name === 'id' && parentKey?.toLowerCase() === kind.typeName) return true;
  const idLike = name === 'id' || name.endsWith('_id');
  return idLike && kind.prefix !== undefined && typeof value === 'string' && value.startsWith(kind.prefix);
}
