import { canonicalJson } from './fingerprint.ts';

/** One field an approver changed: a dotted path into the params, with the value before and after. */
export type ParamChange =
  { path: string; change: 'added'; new: unknown } | { path: string; change: 'removed'; old: unknown } | { path: string; change: 'changed'; old: unknown; new: unknown };

/** Provenance of params an approver edited before approving: shown in the trace, the card and the answer. */
export interface ParamEdit {
  /** The approver who edited (and approved). */
  by: string;
  at: string;
  original_params: Record<string, unknown>;
  params: Record<string, unknown>;
  diff: ParamChange[];
  /** The action digest frozen with the call, and the one recomputed for the edited call. */
  original_digest: string;
  action_digest: string;
}

// Params are JSON from a request; the cap only stops pathological nesting.
const MAX_DEPTH = 32;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * Field-level difference between two params objects. Objects are walked key by key (paths
 * `a.b.c`); arrays and scalars are compared whole, since an index-by-index diff of a list that
 * gained an element in front reads as every element changed.
 */
export function diffParams(before: Record<string, unknown>, after: Record<string, unknown>): ParamChange[] {
  const changes: ParamChange[] = [];
  const walk = (old: Record<string, unknown>, next: Record<string, unknown>, prefix: string, depth: number): void => {
    const keys = [...new Set([...Object.keys(old), ...Object.keys(next)])].sort();
    for (const key of keys) {
      const path = prefix === '' ? key : `${prefix}.${key}`;
      const inOld = Object.hasOwn(old, key);
      const inNext = Object.hasOwn(next, key);
      if (!inOld) changes.push({ path, change: 'added', new: next[key] });
      else if (!inNext) changes.push({ path, change: 'removed', old: old[key] });
      else if (isPlainObject(old[key]) && isPlainObject(next[key]) && depth < MAX_DEPTH) walk(old[key], next[key], path, depth + 1);
      else if (canonicalJson(old[key]) !== canonicalJson(next[key])) changes.push({ path, change: 'changed', old: old[key], new: next[key] });
    }
  };
  walk(before, after, '', 0);
  return changes;
}
