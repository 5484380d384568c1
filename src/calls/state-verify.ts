import { ValidationError } from '../errors.ts';
import { assertValidConditions, evaluateCondition, evaluateConditions, jsonValuesEqual, readPath, type ConditionCheck } from '../policy/conditions.ts';

/**
 * State verification before acting (`/state/verify`) and drift between a frozen checkpoint and
 * live state (approval thaw).
 */

export interface StateVerifyInput {
  intent?: string;
  required_fields: string[];
  assumed_state: Record<string, unknown>;
  current_state: Record<string, unknown>;
  conditions?: Record<string, unknown>;
  on_mismatch?: 'replan' | 'block';
}

export interface StateMismatch {
  field: string;
  /** The assumed value, or the condition for a condition that fails. */
  assumed: unknown;
  current: unknown;
  reason?: string;
  /** Set when the current value could not be ordered against the condition (the check failed). */
  uncomparable?: ConditionCheck['uncomparable'];
}

export interface StateVerification {
  status: 'verified' | 'mismatch_detected';
  decision: 'proceed' | 'replan' | 'block';
  mismatches: StateMismatch[];
}

export interface DriftField {
  field: string;
  frozen: unknown;
  live: unknown;
  condition: unknown;
  changed: boolean;
  satisfied: boolean;
  /** Set when the live value could not be ordered against the condition (not satisfied). */
  uncomparable?: ConditionCheck['uncomparable'];
}

export interface DriftReport {
  drifted: boolean;
  fields: DriftField[];
}

/**
 * Compares assumed and current state: a required field that differs (deep equality) or is
 * missing now is a mismatch, and so is a condition that fails on current state.
 */
export function verifyState(input: StateVerifyInput): StateVerification {
  const conditions = input.conditions ?? {};
  if (input.required_fields.length === 0 && Object.keys(conditions).length === 0) {
    // "verified" over nothing would be a false assurance.
    throw new ValidationError('state verification needs required_fields or conditions', { field: 'required_fields' });
  }

  const mismatches: StateMismatch[] = [];
  for (const field of input.required_fields) {
    const assumed = readPath(input.assumed_state, field);
    const current = readPath(input.current_state, field);
    if (current === undefined) mismatches.push({ field, assumed, current, reason: 'missing from current state' });
    else if (assumed === undefined) mismatches.push({ field, assumed, current, reason: 'not in assumed state' });
    else if (!jsonValuesEqual(assumed, current)) mismatches.push({ field, assumed, current, reason: 'changed since it was assumed' });
  }
  for (const check of evaluateConditions(input.current_state, conditions)) {
    if (!check.ok) {
      const mismatch: StateMismatch = { field: check.field, assumed: check.expected, current: check.actual, reason: `condition failed: ${check.reason}` };
      if (check.uncomparable) mismatch.uncomparable = check.uncomparable;
      mismatches.push(mismatch);
    }
  }

  if (mismatches.length === 0) return { status: 'verified', decision: 'proceed', mismatches };
  return { status: 'mismatch_detected', decision: input.on_mismatch ?? 'replan', mismatches };
}

/**
 * Drift between the state frozen at checkpoint time and live state, for each condition field.
 * `strict`: the value must be unchanged since the freeze (for fields known at freeze time) and the
 * condition must still hold. `conditions`: only the condition must hold.
 */
export function computeDrift(frozen: Record<string, unknown>, live: Record<string, unknown>, conditions: Record<string, unknown>, threshold: 'strict' | 'conditions'): DriftReport {
  assertValidConditions(conditions);
  const fields = Object.entries(conditions).map(([field, condition]): DriftField => {
    const frozenValue = readPath(frozen, field);
    const liveValue = readPath(live, field);
    // A field unknown at freeze has nothing to have changed from; the condition alone judges it.
    const changed = frozenValue !== undefined && !jsonValuesEqual(frozenValue, liveValue);
    const result = evaluateCondition(liveValue, condition);
    const drift: DriftField = { field, frozen: frozenValue, live: liveValue, condition, changed, satisfied: result.ok };
    if (result.uncomparable) drift.uncomparable = result.uncomparable;
    return drift;
  });
  const drifted = fields.some((f) => !f.satisfied || (threshold === 'strict' && f.changed));
  return { drifted, fields };
}
