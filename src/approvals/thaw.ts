import type { KeyIdentity } from '../auth/keyring.ts';
import type { ApprovedCall, CallService } from '../calls/call-service.ts';
import { httpStatusFor, type CallAnswer } from '../calls/call-types.ts';
import type { CallsRepository } from '../calls/calls-repository.ts';
import { checkEntityResolution, type EntityMismatch } from '../calls/entity-check.ts';
import type { StateReader } from '../calls/state-reader.ts';
import { computeDrift, type DriftReport } from '../calls/state-verify.ts';
import type { Transact, Trx } from '../db/transact.ts';
import { AppError, UnprocessableError } from '../errors.ts';
import type { ToolRegistry } from '../tools/tool-registry.ts';
import type { StateRefetch } from '../tools/types.ts';
import type { TracesRepository } from '../traces/traces-repository.ts';
import type { TraceEvent } from '../traces/trace-recorder.ts';
import type { ParamEdit } from '../calls/param-edit.ts';
import { compileExpression, type ExpressionContext } from '../policy/expression.ts';
import type { Approval } from './approval.ts';
import type { ApprovalNotifier } from './approval-notifier.ts';
import type { ApprovalsRepository } from './approvals-repository.ts';
import type { CallbackOutbox } from './callback-outbox.ts';
import { actionDigest, type Checkpoint } from './checkpoint.ts';
import type { PreparedEdit } from './edit.ts';
import type { DecisionResult, Settlement } from './settle.ts';

/*
 * Thawing an approved checkpoint, top to bottom:
 *   1. decideThaw: the pure verdict from the checkpoint and live state;
 *   2. thaw: live state, verdict, then end without running, requeue, or
 *   3. claim the approval and mark the call in flight (one commit), run it once,
 *   4. recordApprovedOutcome: the answer and the approval's outcome in one commit.
 * Expiry is not the verdict's business: the claim's conditional update (by the database clock)
 * decides it, and a lost claim on a still-pending approval expires it.
 */

/**
 * What approving a checkpoint should do, decided from the checkpoint and live state alone.
 * Order matters: the rule's allowed action, then the entity, then drift.
 */
export type ThawVerdict =
  | { outcome: 'cancelled'; reason: string }
  | { outcome: 'blocked'; reason: string; mismatches: EntityMismatch[] }
  | { outcome: 'requeued'; reason: string; drift: DriftReport }
  | { outcome: 'replan_required'; reason: string; drift: DriftReport | null }
  | { outcome: 'execute'; drift: DriftReport | null };

export interface ThawInput {
  checkpoint: Checkpoint;
  liveState: Record<string, unknown>;
}

export function decideThaw({ checkpoint, liveState }: ThawInput): ThawVerdict {
  for (const [who, allowed] of [
    ['rule', checkpoint.policy_rule?.allowed_action],
    ['contract', checkpoint.contract?.allowed_action],
  ] as const) {
    if (allowed !== undefined && allowed !== checkpoint.action) {
      return {
        outcome: 'cancelled',
        reason: `the ${who} allows the action ${JSON.stringify(allowed)}, but the frozen call's action is ${JSON.stringify(checkpoint.action)}`,
      };
    }
  }

  if (checkpoint.entity_resolution) {
    const entity = checkEntityResolution(checkpoint.entity_resolution, checkpoint.params, checkpoint.variables, liveState);
    if (!entity.ok) return { outcome: 'blocked', reason: entity.reason, mismatches: entity.mismatches };
  }

  const failed = failedDomainCondition(checkpoint, liveState);
  if (failed !== null) return { outcome: 'replan_required', reason: `the condition ${JSON.stringify(failed)} does not hold on live state`, drift: null };

  const contract = checkpoint.contract;
  if (!contract || Object.keys(contract.conditions).length === 0) return { outcome: 'execute', drift: null };
  const drift = computeDrift(checkpoint.frozen_state ?? {}, liveState, contract.conditions, contract.threshold);
  if (!drift.drifted) return { outcome: 'execute', drift };
  const fields = drift.fields.filter((f) => !f.satisfied || (contract.threshold === 'strict' && f.changed)).map((f) => f.field);
  const reason = `live state drifted since the freeze (${contract.threshold}): ${fields.join(', ')}`;
  return contract.on_mismatch === 'replan' ? { outcome: 'replan_required', reason, drift } : { outcome: 'requeued', reason, drift };
}

/**
 * The first domain-policy condition (the rule's, then the contract's) that is not true on live
 * state, or null. Live state's fields are names in the expression, beside the call's own
 * (`action`, `params`, ...); a value that cannot be compared counts as not true.
 */
function failedDomainCondition(checkpoint: Checkpoint, liveState: Record<string, unknown>): string | null {
  const context: ExpressionContext = {
    ...liveState,
    action: checkpoint.action ?? undefined,
    tool: checkpoint.tool,
    agent_id: checkpoint.agent_id,
    env: checkpoint.env ?? undefined,
    workflow: checkpoint.workflow ?? undefined,
    params: checkpoint.params,
    variables: checkpoint.variables,
  };
  for (const condition of [checkpoint.policy_rule?.condition, checkpoint.contract?.condition]) {
    if (condition !== undefined && compileExpression(condition).evaluate(context).value !== true) return condition;
  }
  return null;
}

export interface ThawDeps {
  transact: Transact;
  approvals: ApprovalsRepository;
  calls: CallsRepository;
  callService: CallService;
  traces: TracesRepository;
  registry: ToolRegistry;
  stateReader: StateReader;
  outbox: CallbackOutbox;
  notifier: ApprovalNotifier;
  settlement: Settlement;
}

/** What an approver sends with an approval. */
export interface ThawRequest {
  current_state?: Record<string, unknown>;
  comment?: string;
  /** A free-text note from the original clients: recorded, never the approver. */
  reviewed_by?: string;
}

/** What the decider saw: recorded with the decision. */
type Seen = { approver: string; state_source: string; live_state: Record<string, unknown>; comment: string | null; reviewed_by?: string; edited?: ParamEdit };

/** The trace of an edit made with this approval (an edit that restarted a quorum was traced then). */
function editEvents(row: Approval, edited: ParamEdit | undefined, at: string): TraceEvent[] {
  if (!edited || row.checkpoint.edited) return [];
  const { by, diff, original_digest, action_digest } = edited;
  return [{ step: 'params_edited', status: 'completed', at, detail: { approval_id: row.id, by, diff, original_digest, action_digest } }];
}

export function createThaw(deps: ThawDeps) {
  const { transact, approvals, calls, callService, traces, registry, stateReader, outbox, notifier, settlement } = deps;
  const { settle, replacement, view, load, lost } = settlement;

  /**
   * The thaw of a pending approval that has all its votes: check, then end, requeue, or run it
   * once. With `edit` (edit.ts), the edited checkpoint is what is checked and run; the frozen
   * one must still match its digest.
   */
  async function thaw(row: Approval, approver: string, input: ThawRequest, edit: PreparedEdit | null = null): Promise<DecisionResult> {
    const target: Approval = edit ? { ...row, checkpoint: edit.checkpoint } : row;
    const cp = target.checkpoint;
    if (row.expires_at.getTime() <= Date.now()) return settlement.expire(row, approver);
    const live = await liveStateFor(target, input.current_state);
    const verdict: ThawVerdict =
      actionDigest(row.checkpoint.request) === row.action_digest
        ? decideThaw({ checkpoint: cp, liveState: live.state })
        : { outcome: 'blocked', reason: 'the checkpoint no longer matches the action that was approved', mismatches: [] };
    const seen: Seen = { approver, state_source: live.source, live_state: live.state, comment: input.comment ?? null };
    if (input.reviewed_by !== undefined) seen.reviewed_by = input.reviewed_by;
    // An edit now, or the one that created this approval (a restarted quorum).
    const edited = edit?.provenance ?? row.checkpoint.edited ?? undefined;
    if (edited) seen.edited = edited;
    if (verdict.outcome === 'requeued') return requeue(row, verdict, live.state, seen, approver);
    if (verdict.outcome !== 'execute') return endWithout(row, verdict, seen, approver);

    let runnable: ApprovedCall;
    try {
      runnable = await callService.prepareApproved(cp.request, row.api_key_id);
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      return endWithout(row, { outcome: 'cancelled', reason: `the frozen call can no longer run: ${error.message}` }, seen, approver);
    }
    // Policy as it is now: a server deny added since the freeze wins over the approval.
    if (runnable.policy.effect === 'deny') {
      return endWithout(row, { outcome: 'blocked', reason: `policy now denies this call: ${runnable.policy.reason}`, mismatches: [] }, seen, approver);
    }
    if (!(await claim(row, runnable, verdict.drift, seen))) return lost(row.id, approver, true);
    const answer = await run(row, runnable, { drift: verdict.drift, ...seen }, approver);
    return { outcome: answer.status, drift: verdict.drift, approval: await view(await load(row.id)), call: answer };
  }

  /** Live state for a thaw: the approver's, else a fresh read, else the state frozen with the call. */
  async function liveStateFor(row: Approval, given: Record<string, unknown> | undefined): Promise<{ state: Record<string, unknown>; source: string }> {
    if (given) return { state: given, source: 'approver' };
    const cp = row.checkpoint;
    let refetch: StateRefetch | undefined = cp.contract?.state_refetch;
    if (!refetch) refetch = (await registry.getTool(cp.tool).catch(() => undefined))?.card.state_refetch;
    if (!refetch) return { state: cp.frozen_state ?? {}, source: 'frozen' };
    const system: KeyIdentity = { id: row.api_key_id, name: 'thaw', fullAccess: true };
    const tool = await stateReader.resolveReadTool(system, refetch, { agent_id: cp.agent_id }, 'state_refetch');
    const read = await stateReader.read(tool, refetch, { params: cp.params, variables: cp.variables });
    if (!read.ok) throw new UnprocessableError('state_refetch_failed', `Could not read live state with ${refetch.tool}: ${read.error}`, { approval_id: row.id });
    return { state: read.state, source: refetch.tool };
  }

  /** A thaw verdict that ends the approval without running anything. */
  async function endWithout(
    row: Approval,
    verdict: Extract<ThawVerdict, { outcome: 'cancelled' | 'blocked' | 'replan_required' }>,
    seen: Seen,
    actor: string,
  ): Promise<DecisionResult> {
    const fields: Partial<CallAnswer> = { reason: verdict.reason };
    if (verdict.outcome === 'blocked') fields.mismatches = verdict.mismatches;
    const drift = verdict.outcome === 'replan_required' ? verdict.drift : null;
    return settle(row, {
      status: verdict.outcome === 'replan_required' ? 'invalidated' : verdict.outcome,
      outcome: verdict.outcome,
      decision: { outcome: verdict.outcome, reason: verdict.reason, drift, ...seen },
      actor,
      call: { status: verdict.outcome, fields },
      trace: { status: verdict.outcome, detail: { approval_id: row.id, actor, reason: verdict.reason } },
      final: true,
      notice: verdict.reason,
      drift,
      unexpiredOnly: true,
      shown: { reason: verdict.reason, drift },
    });
  }

  /** Drift: the approval becomes invalidated and a fresh one with the live state takes its place (same Slack thread). */
  async function requeue(row: Approval, verdict: { reason: string; drift: DriftReport }, liveState: Record<string, unknown>, seen: Seen, actor: string): Promise<DecisionResult> {
    const fresh = await replacement(row, `requeued after drift: ${verdict.reason}`, liveState, row.approvers);
    return settle(row, {
      status: 'invalidated',
      outcome: 'requeued',
      decision: { outcome: 'requeued', reason: verdict.reason, drift: verdict.drift, new_approval_id: fresh.row.id, ...seen },
      actor,
      call: { status: 'pending_approval', fields: { reason: fresh.row.reason, approval: fresh.summary } },
      trace: { status: 'requeued', detail: { approval_id: row.id, actor, new_approval_id: fresh.row.id, reason: verdict.reason } },
      final: false,
      notice: verdict.reason,
      drift: verdict.drift,
      replacement: { pending: fresh, drift: verdict.drift },
      unexpiredOnly: true,
      shown: { reason: verdict.reason, drift: verdict.drift, new_approval: fresh.summary },
    });
  }

  /** Claims the approval (pending, unexpired by the database clock) and puts its call in flight, in one commit. */
  async function claim(row: Approval, runnable: ApprovedCall, drift: DriftReport | null, seen: Seen): Promise<boolean> {
    return transact(async (trx) => {
      if (!(await approvals.decidePending(trx, row.id, 'approved', { outcome: 'executing', drift, ...seen }, { unexpiredOnly: true }))) return false;
      await approvals.recordEvent('approved', row.id, seen.approver, { drift, ...seen }, trx);
      // In flight with a lease in the same commit: if this process dies from here on, the
      // recovery sweep finds the call and finishes the approval.
      await calls.markInFlight(row.call_id, runnable.leaseMs, trx, seen.edited ? runnable.prepared.request : undefined);
      const at = new Date().toISOString();
      await traces.appendEvents(
        row.call_id,
        [...editEvents(row, seen.edited, at), { step: 'approval_decided', status: 'approved', at, detail: { approval_id: row.id, approver: seen.approver } }],
        trx,
      );
      return true;
    });
  }

  /** Runs the claimed call once; its answer and the approval's outcome commit together. */
  async function run(row: Approval, runnable: ApprovedCall, detail: Record<string, unknown>, actor: string): Promise<CallAnswer> {
    const ran = await callService.runApproved(runnable, row.call_id, row.id);
    const { events } = ran;
    const edited = detail['edited'] as ParamEdit | undefined;
    const answer: CallAnswer = edited ? { ...ran.answer, edited } : ran.answer;
    await transact(async (trx) => {
      await traces.appendEvents(row.call_id, events, trx);
      await recordApprovedOutcome(trx, row, answer, actor, detail);
      await calls.writeAnswer(trx, row.call_id, httpStatusFor(answer), answer, null);
    });
    return answer;
  }

  /**
   * An approved call finished (or was reconciled after a crash): the approval records what ran,
   * and everyone hears, inside the transaction that stores the call's answer.
   */
  async function recordApprovedOutcome(trx: Trx, row: Approval, ran: CallAnswer, actor: string, detail: Record<string, unknown>): Promise<void> {
    const cp = row.checkpoint;
    const final = ran.status === 'executed' || ran.status === 'outcome_reconciled' ? 'executed' : 'failed';
    // Someone else (the recovery sweep, or the run it took for dead) recorded the outcome first.
    if (!(await approvals.recordExecution(trx, row.id, final, { outcome: ran.status, ...detail, result: ran.result ?? null, error: ran.error ?? null }))) return;
    await approvals.recordEvent(final, row.id, actor, { call_status: ran.status }, trx);
    if (cp.callback_url) await outbox.enqueue(trx, cp.callback_url, settlement.callbackPayload(row, final, actor, ran));
    await notifier.decided(trx, {
      approvalId: row.id,
      status: final,
      outcome: ran.status,
      actor,
      reason: ran.reason ?? ran.error ?? null,
      answer: ran,
      drift: (detail['drift'] as DriftReport | null) ?? null,
      edited: (detail['edited'] as ParamEdit | undefined) ?? null,
      comment: (detail['comment'] as string | null | undefined) ?? null,
    });
    await approvals.notifyDecided(trx, row.id);
  }

  /**
   * Used by sweeps: read live state for a pending approval and, on drift under its contract,
   * requeue it (or end it with replan_required) exactly as an approver's click would.
   * Returns what happened, or null when nothing changed.
   */
  async function revalidate(row: Approval, actor: string): Promise<DecisionResult | null> {
    const cp = row.checkpoint;
    if (!cp.contract || Object.keys(cp.contract.conditions).length === 0) return null;
    const live = await liveStateFor(row, undefined);
    if (live.source === 'frozen') return null;
    const verdict = decideThaw({ checkpoint: cp, liveState: live.state });
    const seen: Seen = { approver: actor, state_source: live.source, live_state: live.state, comment: null };
    // Only a change since the freeze is news: a condition that failed at freeze and still
    // fails would requeue the same state on every pass.
    const news = verdict.outcome === 'requeued' && verdict.drift.fields.some((f) => f.changed || (f.frozen === undefined && !f.satisfied));
    if (verdict.outcome === 'requeued') return news ? requeue(row, verdict, live.state, seen, actor) : null;
    if (verdict.outcome === 'replan_required' || verdict.outcome === 'blocked') return endWithout(row, verdict, seen, actor);
    return null;
  }

  return { thaw, liveStateFor, revalidate, recordApprovedOutcome };
}
export type Thaw = ReturnType<typeof createThaw>;
