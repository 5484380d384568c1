import type { TraceRecorder } from '../traces/trace-recorder.ts';
import type { AttemptOutcome } from '../tools/types.ts';
import { decideReconciliation } from './reconcile-decision.ts';

/**
 * Runs one call under its failure policy: bounded retry with backoff, reconciliation of unknown
 * outcomes before any retry, and one fallback. Plain TypeScript: tools and state reads come in as
 * functions, so every path is testable without a network.
 */

export type ReadStateResult = { ok: true; state: Record<string, unknown> } | { ok: false; error: string };

export interface ReconcilePlan {
  /** Reads live state from the source of truth (a tool without side effects). */
  readState: () => Promise<ReadStateResult>;
  conditions: Record<string, unknown>;
  source: string;
}

export interface FailurePolicyRun {
  toolKey: string;
  params: Record<string, unknown>;
  sideEffects: boolean;
  /** Retries after the first attempt, already clamped to the server cap. */
  retries: number;
  invoke: () => Promise<AttemptOutcome>;
  reconcile?: ReconcilePlan;
  /** Check a success against live state too (with `reconcile`): disagreement answers replan_required. */
  verifySuccess?: boolean;
  fallback?: { toolKey: string; invoke: () => Promise<AttemptOutcome> };
  backoffMs: (retryNumber: number) => number;
  sleep: (ms: number) => Promise<void>;
  trace: TraceRecorder;
  /** Called once, right before the first request leaves for the tool. */
  beforeFirstAttempt?: () => Promise<void>;
}

export interface ExecutionOutcome {
  status: 'executed' | 'failed' | 'outcome_reconciled' | 'replan_required' | 'unknown_outcome';
  attempts: number;
  result?: unknown;
  error?: string;
  reason?: string;
  reconciliation?: Record<string, unknown>;
  fallback?: { tool: string; used: boolean };
}

export async function runUnderFailurePolicy(run: FailurePolicyRun): Promise<ExecutionOutcome> {
  const { trace } = run;
  let attempts = 0;
  let lastError = 'no attempt was made';
  await run.beforeFirstAttempt?.();

  for (let retry = 0; retry <= run.retries; retry++) {
    if (retry > 0) {
      const wait = run.backoffMs(retry);
      trace.record('retry_scheduled', 'waiting', { retry, of: run.retries, backoff_ms: wait });
      await run.sleep(wait);
    }
    attempts++;
    trace.record('attempt_started', 'running', { attempt: attempts, tool: run.toolKey });
    const started = performance.now();
    const outcome = await run.invoke();
    const took = performance.now() - started;

    if (outcome.kind === 'ok') {
      trace.record('attempt_succeeded', 'completed', { attempt: attempts, http_status: outcome.http_status }, took);
      if (run.verifySuccess && run.reconcile) return { ...(await verifyReportedSuccess(run, run.reconcile, outcome.result)), attempts };
      return { status: 'executed', attempts, result: outcome.result };
    }

    if (outcome.kind === 'failed') {
      lastError = outcome.error;
      trace.record('attempt_failed', 'failed', { attempt: attempts, error: outcome.error, retryable: outcome.retryable, http_status: outcome.http_status }, took);
      if (!outcome.retryable) break;
      continue;
    }

    // Unknown: the request may have reached the tool.
    lastError = outcome.error;
    trace.record('outcome_unknown', 'unknown', { attempt: attempts, error: outcome.error, side_effects: run.sideEffects }, took);
    if (!run.sideEffects) continue; // A read can be repeated safely.
    if (!run.reconcile) {
      return {
        status: 'unknown_outcome',
        attempts,
        error: outcome.error,
        reason: 'The tool has side effects and the outcome is unknown; without reconciliation config Invoke does not retry blindly',
      };
    }
    const verdict = await reconcileUnknownOutcome(run, run.reconcile);
    if (verdict.status !== 'retry') return { ...verdict.outcome, attempts };
    // Live state shows the action did not take effect: a retry is safe.
  }

  if (run.fallback) {
    trace.record('fallback_started', 'running', { tool: run.fallback.toolKey });
    const started = performance.now();
    const outcome = await run.fallback.invoke();
    const took = performance.now() - started;
    if (outcome.kind === 'ok') {
      trace.record('fallback_succeeded', 'completed', { tool: run.fallback.toolKey }, took);
      return { status: 'executed', attempts, result: outcome.result, fallback: { tool: run.fallback.toolKey, used: true } };
    }
    trace.record('fallback_failed', 'failed', { tool: run.fallback.toolKey, error: outcome.error }, took);
    return {
      status: 'failed',
      attempts,
      error: lastError,
      reason: `fallback ${run.fallback.toolKey} failed too: ${outcome.error}`,
      fallback: { tool: run.fallback.toolKey, used: true },
    };
  }
  return { status: 'failed', attempts, error: lastError };
}

/** The tool said it worked; does the source of truth agree? */
async function verifyReportedSuccess(run: FailurePolicyRun, plan: ReconcilePlan, result: unknown): Promise<Omit<ExecutionOutcome, 'attempts'>> {
  const { trace } = run;
  const started = performance.now();
  const read = await plan.readState();
  if (!read.ok) {
    trace.record('state_refetched', 'failed', { source: plan.source, purpose: 'verify_success', error: read.error }, performance.now() - started);
    return { status: 'executed', result, reason: `the tool reported success; live state could not be read to confirm it: ${read.error}` };
  }
  trace.record('state_refetched', 'completed', { source: plan.source, purpose: 'verify_success' }, performance.now() - started);
  const decision = decideReconciliation({ action: { tool: run.toolKey, params: run.params }, current_state: read.state, conditions: plan.conditions });
  const verification = { decision: decision.decision, reason: decision.reason, current_state: read.state };
  trace.record('success_verified', decision.decision === 'do_not_retry' ? 'confirmed' : 'disputed', { reason: decision.reason });
  if (decision.decision === 'do_not_retry') return { status: 'executed', result, reconciliation: verification };
  return {
    status: 'replan_required',
    result,
    reason: `the tool reported success, but the source of truth (${plan.source}) disagrees: ${decision.reason}`,
    reconciliation: verification,
  };
}

type ReconcileVerdict = { status: 'retry' } | { status: 'stop'; outcome: Omit<ExecutionOutcome, 'attempts'> };

async function reconcileUnknownOutcome(run: FailurePolicyRun, plan: ReconcilePlan): Promise<ReconcileVerdict> {
  const { trace } = run;
  const started = performance.now();
  const read = await plan.readState();
  if (!read.ok) {
    trace.record('state_refetched', 'failed', { source: plan.source, error: read.error }, performance.now() - started);
    return {
      status: 'stop',
      outcome: { status: 'unknown_outcome', error: read.error, reason: `could not read live state from ${plan.source} to reconcile` },
    };
  }
  trace.record('state_refetched', 'completed', { source: plan.source }, performance.now() - started);
  const decision = decideReconciliation({ action: { tool: run.toolKey, params: run.params }, current_state: read.state, conditions: plan.conditions });
  const reconciliation = { decision: decision.decision, reason: decision.reason, current_state: read.state };
  trace.record('outcome_reconciled', decision.decision, { reason: decision.reason });
  if (decision.decision === 'do_not_retry') {
    return { status: 'stop', outcome: { status: 'outcome_reconciled', result: read.state, reason: decision.reason, reconciliation } };
  }
  if (decision.decision === 'replan') {
    return { status: 'stop', outcome: { status: 'replan_required', reason: decision.reason, reconciliation } };
  }
  return { status: 'retry' };
}
