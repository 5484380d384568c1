import type { ApprovalNotifier } from '../approvals/approval-notifier.ts';
import type { ApprovalService } from '../approvals/approval-service.ts';
import type { ApprovalsRepository } from '../approvals/approvals-repository.ts';
import type { CallRequest } from '../calls/call-request.ts';
import { finishLaterAnswer, type CallService } from '../calls/call-service.ts';
import { httpStatusFor, type CallAnswer, type CallStatus } from '../calls/call-types.ts';
import type { CallsRepository } from '../calls/calls-repository.ts';
import { decideReconciliation } from '../calls/reconcile-decision.ts';
import type { StateReader } from '../calls/state-reader.ts';
import type { Transact } from '../db/transact.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { TraceRecorder } from '../traces/trace-recorder.ts';
import type { TracesRepository } from '../traces/traces-repository.ts';

export interface CallRecoveryDeps {
  transact: Transact;
  callService: CallService;
  calls: CallsRepository;
  traces: TracesRepository;
  approvals: Pick<ApprovalsRepository, 'findRunningFor'>;
  approvalService: Pick<ApprovalService, 'recordApprovedOutcome'>;
  stateReader: StateReader;
  notifier: ApprovalNotifier;
  metrics: Metrics;
  /** Who the approval's audit names for a recovered outcome. */
  actor: string;
}

/** The recovery sweep's step for one call whose process died mid-call. */
export function createCallRecovery(deps: CallRecoveryDeps) {
  const { transact, callService, calls, traces, approvals, approvalService, stateReader, notifier, metrics, actor } = deps;

  /**
   * A call left in flight by a process that died: the request may have reached the tool, so it
   * is never retried blindly. With a state_refetch and conditions it is reconciled against live
   * state; without, it becomes `unknown_outcome` and a human is told. Returns the stored answer.
   */
  async function recoverInterrupted(call: { id: string; api_key_id: string; request: unknown }): Promise<{ answer: CallAnswer; needsAttention: boolean }> {
    const request = call.request as CallRequest;
    const trace = new TraceRecorder();
    trace.record('recovery_started', 'unknown', { reason: 'the process running this call stopped before it finished' });
    const prepared = (await callService.prepareApproved(request, call.api_key_id, 'recovery').catch(() => null))?.prepared ?? null;
    const bindings = { params: request.params, variables: request.execution_state?.variables ?? {} };
    let status: CallStatus;
    let fields: Partial<CallAnswer>;
    let needsAttention = false;
    let retrySafe = false;
    if (prepared && !prepared.tool.card.side_effects) {
      // A read can simply be repeated: free the key so the agent's retry runs.
      status = 'failed';
      fields = { error: 'interrupted', reason: 'The process running this read-only call stopped; repeat it' };
      retrySafe = true;
    } else if (!prepared?.reconcile) {
      status = 'unknown_outcome';
      fields = {
        error: 'interrupted',
        reason: 'The process running this call stopped after the request may have reached the tool, and there is no state_refetch with conditions to reconcile it',
      };
      needsAttention = true;
    } else {
      const plan = prepared.reconcile;
      const started = performance.now();
      const read = await stateReader.read(plan.tool, plan.refetch, bindings);
      trace.record(
        'state_refetched',
        read.ok ? 'completed' : 'failed',
        { source: plan.source, purpose: 'recovery', error: read.ok ? undefined : read.error },
        performance.now() - started,
      );
      if (!read.ok) {
        status = 'unknown_outcome';
        fields = { error: 'interrupted', reason: `Could not read live state from ${plan.source} to reconcile: ${read.error}` };
        needsAttention = true;
      } else {
        const decision = decideReconciliation({ action: { tool: request.tool, params: request.params }, current_state: read.state, conditions: plan.conditions });
        const reconciliation = { decision: decision.decision, reason: decision.reason, current_state: read.state };
        trace.record('outcome_reconciled', decision.decision, { reason: decision.reason });
        metrics.reconciliations.inc({ decision: decision.decision });
        if (decision.decision === 'do_not_retry') {
          status = 'outcome_reconciled';
          fields = { result: read.state, reason: decision.reason, reconciliation };
        } else if (decision.decision === 'replan') {
          status = 'replan_required';
          fields = { reason: decision.reason, reconciliation };
        } else {
          status = 'failed';
          fields = { error: 'interrupted', reason: `Live state shows the call did not take effect (${decision.reason}); it is safe to repeat`, reconciliation };
          retrySafe = true;
        }
      }
    }
    const answer = await finishLaterAnswer(traces, call.id, request, trace, status, fields);
    // A call that was running after its approval: the approval records how it ended, with the answer.
    const approval = await approvals.findRunningFor(call.id);
    await transact(async (trx) => {
      await traces.appendEvents(call.id, trace.takePending(), trx);
      if (retrySafe) await calls.forgetIdempotencyKey(trx, call.id);
      if (needsAttention) await notifier.needsAttention(trx, { callId: call.id, tool: request.tool, agentId: request.agent_id, reason: fields.reason ?? 'unknown outcome' });
      if (approval) await approvalService.recordApprovedOutcome(trx, approval, answer, actor, { recovered: true });
      await calls.writeAnswer(trx, call.id, httpStatusFor(answer), answer, null);
    });
    metrics.calls.inc({ status: answer.status });
    return { answer, needsAttention };
  }

  return { recoverInterrupted };
}
export type CallRecovery = ReturnType<typeof createCallRecovery>;
