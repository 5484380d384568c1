import { ValidationError } from '../errors.ts';
import { describeValue, evaluateConditions, jsonValuesEqual, readPath, valuesMatch, type ConditionCheck } from '../policy/conditions.ts';

/**
 * After an UNKNOWN outcome (timeout after send, dropped connection) read live state before
 * anything else, then decide: `do_not_retry` (it took effect), `retry_allowed` (it did not) or
 * `replan` (state cannot tell, or it describes a different action). When in doubt, replan: a
 * duplicate charge is worse than a second look.
 */

export interface ReconcileInput {
  action: { intent?: string; tool?: string; params?: Record<string, unknown> };
  current_state: Record<string, unknown>;
  conditions: Record<string, unknown>;
}

/** A param the state also holds, with another value: the state is about another entity or amount. */
export interface ParamContradiction {
  field: string;
  param: unknown;
  current: unknown;
}

export interface ReconcileDecision {
  decision: 'do_not_retry' | 'retry_allowed' | 'replan';
  reason: string;
  status: 'reconciled';
  checks: { contradictions: ParamContradiction[]; conditions: ConditionCheck[] };
}

export function decideReconciliation(input: ReconcileInput): ReconcileDecision {
  const { conditions, current_state: state } = input;
  if (conditions === null || typeof conditions !== 'object' || Object.keys(conditions).length === 0) {
    // Without conditions there is no evidence either way; never assume it already succeeded.
    throw new ValidationError('reconciliation needs conditions: the state fields that show the action took effect', { field: 'conditions' });
  }

  const conditionChecks = evaluateConditions(state, conditions);
  const contradictions = findContradictions(input.action.params ?? {}, state, Object.keys(conditions));
  const checks = { contradictions, conditions: conditionChecks };

  if (contradictions.length > 0) {
    const described = contradictions.map((c) => `${c.field} is ${describeValue(c.current)} in current state but ${describeValue(c.param)} in params`);
    return { decision: 'replan', reason: `current state contradicts the action's params: ${described.join('; ')}`, status: 'reconciled', checks };
  }

  const missing = conditionChecks.filter((c) => c.missing).map((c) => c.field);
  if (missing.length > 0) {
    const reason = `current state has no ${missing.join(', ')}: it cannot confirm whether the action took effect, so replan rather than risk a duplicate`;
    return { decision: 'replan', reason, status: 'reconciled', checks };
  }

  const failing = conditionChecks.filter((c) => !c.ok);
  if (failing.length === 0) {
    const fields = conditionChecks.map((c) => c.field);
    return { decision: 'do_not_retry', reason: `${fields.join(', ')} ${plural(fields.length, 'condition')} satisfied in current state`, status: 'reconciled', checks };
  }
  const described = failing.map((c) => `${c.field} (${c.reason})`);
  return {
    decision: 'retry_allowed',
    reason: `${plural(failing.length, 'condition')} not satisfied in current state: ${described.join('; ')}`,
    status: 'reconciled',
    checks,
  };
}

/**
 * Params (walked to their leaves, as dotted paths) that current state also holds with another
 * value. Fields the conditions judge are skipped: they are the action's effect, not its identity.
 */
function findContradictions(params: Record<string, unknown>, state: Record<string, unknown>, conditionFields: string[]): ParamContradiction[] {
  // A condition on `invoice` covers `invoice.id`; a condition on `items.0.sku` is part of `items`.
  const coveredByCondition = (path: string) => conditionFields.some((field) => field === path || path.startsWith(`${field}.`));
  const holdsConditionField = (path: string) => conditionFields.some((field) => field.startsWith(`${path}.`));

  const contradictions: ParamContradiction[] = [];
  const visit = (value: unknown, path: string): void => {
    if (coveredByCondition(path)) return;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      for (const [key, child] of Object.entries(value)) visit(child, `${path}.${key}`);
      return;
    }
    if (value === undefined || holdsConditionField(path)) return;
    const current = readPath(state, path);
    // Only like with like: a scalar param says nothing against an object in state.
    // A field the state leaves empty says nothing either way (a lookup of a payment that never
    // happened has no amount); only a different value is a contradiction.
    if (current === undefined || current === null || (typeof current === 'object' && !Array.isArray(value))) return;
    const same = Array.isArray(value) ? jsonValuesEqual(value, current) : valuesMatch(current, value);
    if (!same) contradictions.push({ field: path, param: value, current });
  };
  for (const [key, value] of Object.entries(params)) visit(value, key);
  return contradictions;
}

function plural(count: number, word: string): string {
  return count === 1 ? word : `${word}s`;
}
