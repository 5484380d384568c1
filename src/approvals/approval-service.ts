import type { Kysely, Transaction } from 'kysely';
import { personForKeyId, type KeyIdentity } from '../auth/keyring.ts';
import type { CallAnswer, CallStatus } from '../calls/call-types.ts';
import { httpStatusFor } from '../calls/call-types.ts';
import type { ApprovedCall, CallService } from '../calls/call-service.ts';
import { finishLaterAnswer } from '../calls/call-service.ts';
import type { CallsRepository } from '../calls/calls-repository.ts';
import type { StateReader } from '../calls/state-reader.ts';
import { computeDrift, type DriftReport } from '../calls/state-verify.ts';
import type { Config } from '../config.ts';
import type { Database } from '../db/schema.ts';
import { AppError, ConflictError, ForbiddenError, NotFoundError, UnprocessableError } from '../errors.ts';
import type { ToolRegistry } from '../tools/tool-registry.ts';
import type { RiskLevel, StateRefetch } from '../tools/types.ts';
import { isSlackChannel } from './escalation.ts';
import { TraceRecorder } from '../traces/trace-recorder.ts';
import type { TracesRepository } from '../traces/traces-repository.ts';
import type { ApprovalNotifier } from './approval-notifier.ts';
import type { ApprovalRow, ApprovalsRepository, NewApproval } from './approvals-repository.ts';
import type { ApprovalWaiter } from './approval-waiter.ts';
import type { CallbackOutbox } from './callback-outbox.ts';
import { actionDigest, type Checkpoint } from './checkpoint.ts';
import { buildPendingApproval, type ApprovalSummary } from './freeze.ts';
import { decideThaw, type ThawVerdict } from './thaw.ts';

/**
 * The person who requested a call deciding on it (through any of their keys, or in Slack as the
 * user their key's `approver_id` names). Refetch is not a decision and stays open to them.
 */
export class SelfApprovalError extends AppError {
  constructor(message: string, details?: unknown) {
    super(403, 'self_approval', message, details);
  }
}

/** Who decides: through the API, the identity bound to the key; through Slack, the verified user. */
export interface ApproverActor {
  approver: string;
  /** The API key used, so a key cannot approve what it requested. */
  keyId?: string;
  via: 'api' | 'slack';
}

export interface ApprovalView {
  id: string;
  call_id: string;
  status: string;
  tool: string;
  agent_id: string;
  risk: string;
  reason: string;
  created_at: string;
  expires_at: string;
  decided_at: string | null;
  decision: unknown;
  approvals_required: number;
  approvals: Array<{ approver: string; at: string }>;
  previous_approval_id: string | null;
  checkpoint: Pick<Checkpoint, 'params' | 'action' | 'env' | 'workflow' | 'resource' | 'contract' | 'policy_rule' | 'entity_resolution' | 'frozen_state' | 'failure' | 'variables' | 'tool_outputs'>;
}

export interface DecisionResult {
  outcome: string;
  approval: ApprovalView;
  call?: CallAnswer;
  new_approval?: ApprovalSummary;
  drift?: DriftReport | null;
  reason?: string;
  approvals_received?: number;
}

export interface ApprovalServiceDeps {
  config: Config;
  db: Kysely<Database>;
  approvals: ApprovalsRepository;
  calls: CallsRepository;
  callService: CallService;
  traces: TracesRepository;
  registry: ToolRegistry;
  stateReader: StateReader;
  outbox: CallbackOutbox;
  waiter: ApprovalWaiter;
  notifier: ApprovalNotifier;
}

const FINAL = new Set(['executed', 'failed', 'rejected', 'expired', 'cancelled', 'blocked', 'invalidated', 'escalated']);

/** Deciding approvals: the same code for the API, Slack and the sweeps. */
export function createApprovalService(deps: ApprovalServiceDeps) {
  const { config, db, approvals, calls, callService, traces, registry, stateReader, outbox, waiter, notifier } = deps;

  async function view(row: ApprovalRow): Promise<ApprovalView> {
    const cp = row.checkpoint as Checkpoint;
    const votes = await approvals.votesFor(row.id);
    return {
      id: row.id,
      call_id: row.call_id,
      status: row.status,
      tool: row.tool,
      agent_id: row.agent_id,
      risk: row.risk,
      reason: row.reason,
      created_at: row.created_at.toISOString(),
      expires_at: row.expires_at.toISOString(),
      decided_at: row.decided_at ? row.decided_at.toISOString() : null,
      decision: row.decision,
      approvals_required: row.approvals_required,
      approvals: votes.map((v) => ({ approver: v.approver, at: v.at.toISOString() })),
      previous_approval_id: row.previous_approval_id,
      checkpoint: {
        params: cp.params,
        action: cp.action,
        env: cp.env,
        workflow: cp.workflow,
        resource: cp.resource,
        contract: cp.contract,
        policy_rule: cp.policy_rule,
        entity_resolution: cp.entity_resolution,
        frozen_state: cp.frozen_state,
        failure: cp.failure,
        variables: cp.variables,
        tool_outputs: cp.tool_outputs,
      },
    };
  }

  async function load(id: string): Promise<ApprovalRow> {
    const row = await approvals.findApproval(id);
    if (!row) throw new NotFoundError(`No approval ${id}`, { approval_id: id });
    return row;
  }

  function alreadyDecided(row: Pick<ApprovalRow, 'id' | 'status'>): ConflictError {
    return new ConflictError('approval_already_decided', `Approval ${row.id} is already ${row.status}`, { approval_id: row.id, status: row.status });
  }

  /** The person who requested the call; derived from the key for approvals stored before it was recorded. */
  function requesterPersonOf(row: ApprovalRow): string {
    return row.requester_person ?? personForKeyId(config, row.api_key_id);
  }

  function assertMayDecide(row: ApprovalRow, actor: ApproverActor): void {
    const requester = requesterPersonOf(row);
    if (actor.keyId !== undefined && actor.keyId === row.api_key_id) {
      throw new SelfApprovalError('A key may not decide an approval for a call it requested', { reason: 'requester', requester });
    }
    if (actor.approver === requester) {
      throw new SelfApprovalError(`${requester} requested this call and may not decide on it; another approver must`, { reason: 'requester', requester });
    }
    if (actor.approver === row.agent_id) {
      throw new SelfApprovalError('The requesting agent may not decide its own approval', { reason: 'requesting_agent', requester: row.agent_id });
    }
    // An escalation may name people and channels; the channels say where the card goes, not who decides.
    const addressedTo = ((row.approvers as string[] | null) ?? []).filter((entry) => !isSlackChannel(entry));
    const allowed = addressedTo.length > 0 ? addressedTo : actor.via === 'api' && config.approvers.length > 0 ? config.approvers : null;
    if (allowed && !allowed.includes(actor.approver)) {
      throw new ForbiddenError(`${actor.approver} is not an allowed approver for this approval`, { missing_scope: 'approver', approver: actor.approver });
    }
  }

  /** Live state for a thaw: the approver's, else a fresh read, else the state frozen with the call. */
  async function liveStateFor(row: ApprovalRow, given: Record<string, unknown> | undefined): Promise<{ state: Record<string, unknown>; source: string }> {
    if (given) return { state: given, source: 'approver' };
    const cp = row.checkpoint as Checkpoint;
    let refetch: StateRefetch | undefined = cp.contract?.state_refetch;
    if (!refetch) refetch = (await registry.getTool(cp.tool).catch(() => undefined))?.card.state_refetch;
    if (!refetch) return { state: cp.frozen_state ?? {}, source: 'frozen' };
    const system: KeyIdentity = { id: row.api_key_id, name: 'thaw', fullAccess: true };
    const tool = await stateReader.resolveReadTool(system, refetch, { agent_id: cp.agent_id }, 'state_refetch');
    const read = await stateReader.read(tool, refetch, { params: cp.params, variables: cp.variables });
    if (!read.ok) throw new UnprocessableError('state_refetch_failed', `Could not read live state with ${refetch.tool}: ${read.error}`, { approval_id: row.id });
    return { state: read.state, source: refetch.tool };
  }

  /** The call's answer after a decision that did not run it. */
  async function callAnswerFor(row: ApprovalRow, status: CallStatus, fields: Partial<CallAnswer>, trace: TraceRecorder): Promise<CallAnswer> {
    const cp = row.checkpoint as Checkpoint;
    return finishLaterAnswer(traces, row.call_id, cp.request, trace, status, fields);
  }

  function callbackPayload(row: ApprovalRow, status: string, actor: string, answer: CallAnswer) {
    return { event: 'approval.decided', approval_id: row.id, call_id: row.call_id, status, decided_by: actor, decided_at: new Date().toISOString(), call: answer };
  }

  interface Settlement {
    status: string;
    decision: Record<string, unknown>;
    answer: CallAnswer;
    trace: TraceRecorder;
    actor: string;
    /** Final outcomes go to the agent's callback; a requeue or escalation is not final. */
    final: boolean;
    unexpiredOnly?: boolean;
    /** An approval that replaces this one (requeue, escalation), created in the same transaction. */
    replacement?: { row: NewApproval; drift?: DriftReport | null };
    outcome: string;
    reason?: string | null;
    drift?: DriftReport | null;
  }

  /**
   * One decision, atomically: the conditional update of the pending row, the call's answer (so a
   * repeated call replays it), the audit and trace events, the callback, the wake-up.
   */
  async function settle(row: ApprovalRow, s: Settlement): Promise<boolean> {
    const cp = row.checkpoint as Checkpoint;
    return db.transaction().execute(async (trx) => {
      const won = await approvals.decidePending(trx, row.id, s.status, s.decision, { unexpiredOnly: s.unexpiredOnly });
      if (!won) return false;
      await calls.writeAnswer(trx, row.call_id, httpStatusFor(s.answer), s.answer, null);
      await traces.appendEvents(row.call_id, s.trace.takePending(), trx);
      await approvals.recordEvent(s.status, row.id, s.actor, s.decision, trx);
      if (s.final && cp.callback_url) await outbox.enqueue(trx, cp.callback_url, callbackPayload(row, s.status, s.actor, s.answer));
      if (s.replacement) await approvals.insertApproval(trx, s.replacement.row);
      await notifier.decided(trx, {
        approvalId: row.id,
        status: s.status,
        outcome: s.outcome,
        actor: s.actor,
        reason: s.reason ?? null,
        answer: s.answer,
        drift: s.drift ?? null,
        newApprovalId: s.replacement?.row.id ?? null,
      });
      if (s.replacement) await notifier.created(trx, { approval: s.replacement.row, replaces: row.id, drift: s.replacement.drift ?? null });
      await approvals.notifyDecided(trx, row.id);
      return true;
    });
  }

  /** Creates the approval that replaces `row` (after drift, or an escalation on expiry). */
  async function replacement(row: ApprovalRow, reason: string, frozenState: Record<string, unknown> | null, approvers: string[] | null, expiresAt?: Date) {
    const cp = row.checkpoint as Checkpoint;
    const card = (await registry.getTool(cp.tool)).card;
    return buildPendingApproval(config, {
      request: cp.request,
      card,
      callId: row.call_id,
      requester: row.api_key_id,
      // The same person asked for the fresh approval: they still may not decide it.
      requesterPerson: requesterPersonOf(row),
      reason,
      policyRule: cp.policy_rule,
      frozenState,
      failure: cp.failure ?? undefined,
      previousApprovalId: row.id,
      approvers,
      expiresAt,
    });
  }

  /** Expiry: cancel, or (on_expire: escalate) hand it to a fresh approval for `escalate_to`. */
  async function expire(row: ApprovalRow, actor: string): Promise<DecisionResult> {
    const cp = row.checkpoint as Checkpoint;
    const trace = new TraceRecorder();
    const onExpire = cp.contract?.on_expire ?? cp.policy_rule?.on_expire ?? 'cancel';
    const escalateTo = cp.contract?.escalate_to ?? cp.policy_rule?.escalate_to;
    // Escalate once: an escalation that expires too is cancelled, not escalated again.
    const fresh =
      onExpire === 'escalate' && !(await wasEscalated(row))
        ? await replacement(
            row,
            `escalated after expiry: ${row.reason}`,
            cp.frozen_state,
            escalateTo === undefined ? null : Array.isArray(escalateTo) ? escalateTo : [escalateTo],
            new Date(Date.now() + config.approvalTtlMs[row.risk as RiskLevel]),
          ).catch((error: unknown) => {
            // The tool is gone: nothing to escalate, so cancel. Anything else: retry next pass.
            if (error instanceof AppError) return null;
            throw error;
          })
        : null;
    if (fresh) {
      const approvers = fresh.row.approvers;
      trace.record('approval_decided', 'escalated', { approval_id: row.id, new_approval_id: fresh.row.id, escalate_to: approvers });
      const answer = await callAnswerFor(row, 'pending_approval', { reason: fresh.row.reason, approval: fresh.summary }, trace);
      const won = await settle(row, {
        status: 'escalated',
        decision: { outcome: 'escalated', new_approval_id: fresh.row.id, escalate_to: approvers },
        answer,
        trace,
        actor,
        final: false,
        outcome: 'escalated',
        reason: `expired; escalated to ${approvers?.join(', ') ?? 'the approvers'}`,
        replacement: { row: fresh.row },
      });
      if (!won) throw alreadyDecided(await load(row.id));
      return { outcome: 'escalated', approval: await view(await load(row.id)), new_approval: fresh.summary, call: answer };
    }
    trace.record('approval_decided', 'expired', { approval_id: row.id });
    const answer = await callAnswerFor(row, 'cancelled', { reason: 'the approval expired before it was approved' }, trace);
    const won = await settle(row, { status: 'expired', decision: { outcome: 'cancelled', reason: 'expired' }, answer, trace, actor, final: true, outcome: 'cancelled', reason: 'the approval expired' });
    if (!won) throw alreadyDecided(await load(row.id));
    return { outcome: 'cancelled', reason: 'expired', approval: await view(await load(row.id)), call: answer };
  }

  /**
   * The expiry sweep's bulk path: up to `limit` approvals that cancel on expiry, expired in one
   * transaction of a few set-based statements (the decision, the calls' answers and traces, the
   * audit, the callbacks, the Slack posts, the wake-up), the same writes `expire` makes one by one.
   * Returns how many expired.
   */
  async function expireDue(limit: number, actor: string): Promise<number> {
    return db.transaction().execute(async (trx) => {
      const decision = { outcome: 'cancelled', reason: 'expired' };
      const rows = await approvals.expireDue(trx, limit, decision);
      if (rows.length === 0) return 0;
      const reason = 'the approval expired before it was approved';
      const expired = rows.map((row) => {
        const cp = row.checkpoint as Checkpoint;
        const trace = new TraceRecorder();
        trace.record('approval_decided', 'expired', { approval_id: row.id });
        trace.record('execution_completed', 'cancelled', { reason });
        return { row, cp, events: trace.events };
      });
      // The answers are built in the statement; only those a callback carries come back.
      const answers = await calls.endCallsUnrun(
        trx,
        'cancelled',
        reason,
        expired.map(({ row, cp, events }) => ({ id: row.call_id, events, answerWanted: Boolean(cp.callback_url) })),
      );
      await approvals.recordEvents(
        trx,
        expired.map(({ row }) => ({ kind: 'expired', approvalId: row.id, actor, detail: decision })),
      );
      for (const { row, cp } of expired) {
        const answer = answers.get(row.call_id);
        if (cp.callback_url && answer) await outbox.enqueue(trx, cp.callback_url, callbackPayload(row, 'expired', actor, answer));
      }
      await notifier.decidedInBulk(
        trx,
        expired.map(({ row }) => ({ row, event: { approvalId: row.id, status: 'expired', outcome: 'cancelled', actor, reason: 'the approval expired' } })),
      );
      await approvals.notifyDecidedMany(
        trx,
        rows.map((row) => row.id),
      );
      return rows.length;
    });
  }

  /** Drift: the approval becomes invalidated and a fresh one with the live state takes its place (same Slack thread). */
  async function requeue(
    row: ApprovalRow,
    verdict: { reason: string; drift: DriftReport },
    liveState: Record<string, unknown>,
    seen: Record<string, unknown>,
    actor: string,
  ): Promise<DecisionResult> {
    const fresh = await replacement(row, `requeued after drift: ${verdict.reason}`, liveState, row.approvers as string[] | null);
    const trace = new TraceRecorder();
    trace.record('approval_decided', 'requeued', { approval_id: row.id, actor, new_approval_id: fresh.row.id, reason: verdict.reason });
    const answer = await callAnswerFor(row, 'pending_approval', { reason: fresh.row.reason, approval: fresh.summary }, trace);
    const won = await settle(row, {
      status: 'invalidated',
      decision: { outcome: 'requeued', reason: verdict.reason, drift: verdict.drift, new_approval_id: fresh.row.id, ...seen },
      answer,
      trace,
      actor,
      final: false,
      outcome: 'requeued',
      reason: verdict.reason,
      drift: verdict.drift,
      replacement: { row: fresh.row, drift: verdict.drift },
    });
    if (!won) throw alreadyDecided(await load(row.id));
    return { outcome: 'requeued', reason: verdict.reason, drift: verdict.drift, new_approval: fresh.summary, approval: await view(await load(row.id)), call: answer };
  }

  /** A thaw verdict that ends the approval without running anything. */
  async function endWithout(row: ApprovalRow, verdict: Extract<ThawVerdict, { outcome: 'cancelled' | 'blocked' | 'replan_required' }>, seen: Record<string, unknown>, actor: string): Promise<DecisionResult> {
    const trace = new TraceRecorder();
    const fields: Partial<CallAnswer> = { reason: verdict.reason };
    if (verdict.outcome === 'blocked') fields.mismatches = verdict.mismatches;
    trace.record('approval_decided', verdict.outcome, { approval_id: row.id, actor, reason: verdict.reason });
    const answer = await callAnswerFor(row, verdict.outcome, fields, trace);
    const drift = verdict.outcome === 'replan_required' ? verdict.drift : null;
    const won = await settle(row, {
      status: verdict.outcome === 'replan_required' ? 'invalidated' : verdict.outcome,
      decision: { outcome: verdict.outcome, reason: verdict.reason, drift, ...seen },
      answer,
      trace,
      actor,
      final: true,
      outcome: verdict.outcome,
      reason: verdict.reason,
      drift,
    });
    if (!won) throw alreadyDecided(await load(row.id));
    return { outcome: verdict.outcome, reason: verdict.reason, drift, approval: await view(await load(row.id)), call: answer };
  }

  /**
   * An approved call finished (or was reconciled after a crash): the approval records what ran,
   * and everyone hears, inside the transaction that stores the call's answer.
   */
  async function writeApprovedOutcome(trx: Transaction<Database>, row: ApprovalRow, ran: CallAnswer, actor: string, detail: Record<string, unknown>): Promise<void> {
    const cp = row.checkpoint as Checkpoint;
    const final = ran.status === 'executed' || ran.status === 'outcome_reconciled' ? 'executed' : 'failed';
    // Someone else (the recovery sweep, or the run it took for dead) recorded the outcome first.
    if (!(await approvals.recordExecution(trx, row.id, final, { outcome: ran.status, ...detail, result: ran.result ?? null, error: ran.error ?? null }))) return;
    await approvals.recordEvent(final, row.id, actor, { call_status: ran.status }, trx);
    if (cp.callback_url) await outbox.enqueue(trx, cp.callback_url, callbackPayload(row, final, actor, ran));
    await notifier.decided(trx, { approvalId: row.id, status: final, outcome: ran.status, actor, reason: ran.reason ?? ran.error ?? null, answer: ran, drift: (detail['drift'] as DriftReport | null) ?? null });
    await approvals.notifyDecided(trx, row.id);
  }

  /** Escalate once: walks back through requeues to see whether this approval is already an escalation. */
  async function wasEscalated(row: ApprovalRow): Promise<boolean> {
    let previousId = row.previous_approval_id;
    for (let hops = 0; previousId && hops < 50; hops++) {
      const previous = await approvals.findApproval(previousId);
      if (!previous) return false;
      if (previous.status === 'escalated') return true;
      previousId = previous.previous_approval_id;
    }
    return false;
  }

  async function pendingOrConflict(id: string): Promise<ApprovalRow> {
    const row = await load(id);
    if (row.status !== 'pending') throw alreadyDecided(row);
    return row;
  }

  return {
    view,

    async list(status: string | undefined, limit: number): Promise<ApprovalView[]> {
      return Promise.all((await approvals.listApprovals(status, limit)).map(view));
    },

    /** The audit trail of one approval: every transition, who made it, what they saw. */
    async audit(id: string) {
      await load(id);
      return (await approvals.eventsFor(id)).map((e) => ({ kind: e.kind, actor: e.actor, detail: e.detail, at: e.at.toISOString() }));
    },

    /** Throws when `actor` may not decide this approval (before asking them for a reason, say). */
    async assertMayDecide(actor: ApproverActor, id: string): Promise<void> {
      assertMayDecide(await load(id), actor);
    },

    /** One approval; with `waitMs`, waits (bounded) until it is decided. */
    async get(id: string, waitMs = 0): Promise<ApprovalView> {
      let row = await load(id);
      const wait = Math.min(waitMs, config.approvalWaitMaxMs);
      if (wait > 0 && !FINAL.has(row.status)) {
        await waiter.waitUntil(id, wait, async () => {
          row = await load(id);
          return FINAL.has(row.status);
        });
      }
      return view(row);
    },

    async refetch(id: string): Promise<{ approval: ApprovalView; live_state: Record<string, unknown>; state_source: string; drift: DriftReport | null }> {
      const row = await load(id);
      const cp = row.checkpoint as Checkpoint;
      const live = await liveStateFor(row, undefined);
      const conditions = cp.contract?.conditions ?? {};
      const drift = Object.keys(conditions).length ? computeDrift(cp.frozen_state ?? {}, live.state, conditions, cp.contract?.threshold ?? 'strict') : null;
      await approvals.recordEvent('refetched', row.id, 'system', { state_source: live.source, drifted: drift?.drifted ?? false });
      return { approval: await view(row), live_state: live.state, state_source: live.source, drift };
    },

    async reject(actor: ApproverActor, id: string, reason: string): Promise<DecisionResult> {
      const row = await pendingOrConflict(id);
      assertMayDecide(row, actor);
      const trace = new TraceRecorder();
      trace.record('approval_decided', 'rejected', { approval_id: row.id, approver: actor.approver, reason });
      const answer = await callAnswerFor(row, 'rejected', { reason: `rejected by ${actor.approver}: ${reason}` }, trace);
      const won = await settle(row, { status: 'rejected', decision: { outcome: 'rejected', approver: actor.approver, reason }, answer, trace, actor: actor.approver, final: true, outcome: 'rejected', reason });
      if (!won) throw alreadyDecided(await load(id));
      return { outcome: 'rejected', reason, approval: await view(await load(id)), call: answer };
    },

    async approve(actor: ApproverActor, id: string, input: { current_state?: Record<string, unknown>; comment?: string }): Promise<DecisionResult> {
      let row = await pendingOrConflict(id);
      assertMayDecide(row, actor);
      const cp = row.checkpoint as Checkpoint;

      if (row.approvals_required > 1) {
        const received = await approvals.addVote(row.id, actor.approver);
        await approvals.recordEvent('approval_recorded', row.id, actor.approver, { received, required: row.approvals_required, comment: input.comment ?? null });
        if (received < row.approvals_required) {
          return { outcome: 'awaiting_approvals', approvals_received: received, approval: await view(row) };
        }
        row = await pendingOrConflict(id);
      }

      if (row.expires_at.getTime() <= Date.now()) return expire(row, actor.approver);
      const live = await liveStateFor(row, input.current_state);
      const digestOk = actionDigest(cp.request) === row.action_digest;
      const verdict: ThawVerdict = digestOk
        ? decideThaw({ checkpoint: cp, liveState: live.state, expired: false })
        : { outcome: 'blocked', reason: 'the checkpoint no longer matches the action that was approved', mismatches: [] };
      const seen = { approver: actor.approver, state_source: live.source, live_state: live.state, comment: input.comment ?? null };

      switch (verdict.outcome) {
        case 'expired':
          return expire(row, actor.approver);
        case 'cancelled':
        case 'blocked':
        case 'replan_required':
          return endWithout(row, verdict, seen, actor.approver);
        case 'requeued':
          return requeue(row, verdict, live.state, seen, actor.approver);
        case 'execute': {
          let runnable: ApprovedCall;
          try {
            runnable = await callService.prepareApproved(cp.request, row.api_key_id);
          } catch (error) {
            if (!(error instanceof AppError)) throw error;
            return endWithout(row, { outcome: 'cancelled', reason: `the frozen call can no longer run: ${error.message}` }, seen, actor.approver);
          }
          // Policy as it is now: a server deny added since the freeze wins over the approval.
          if (runnable.policy.effect === 'deny') {
            return endWithout(row, { outcome: 'blocked', reason: `policy now denies this call: ${runnable.policy.reason}`, mismatches: [] }, seen, actor.approver);
          }
          // Claim first (a pending row, unexpired by the database clock), then run, once.
          const claimed = await db.transaction().execute(async (trx) => {
            const won = await approvals.decidePending(trx, row.id, 'approved', { outcome: 'executing', drift: verdict.drift, ...seen }, { unexpiredOnly: true });
            if (!won) return false;
            await approvals.recordEvent('approved', row.id, actor.approver, { drift: verdict.drift, ...seen }, trx);
            // In flight with a lease in the same commit: if this process dies from here on, the
            // recovery sweep finds the call and finishes the approval.
            await calls.markInFlight(row.call_id, runnable.leaseMs, trx);
            await traces.appendEvents(
              row.call_id,
              [{ step: 'approval_decided', status: 'approved', at: new Date().toISOString(), detail: { approval_id: row.id, approver: actor.approver } }],
              trx,
            );
            return true;
          });
          if (!claimed) {
            const now = await load(id);
            if (now.status === 'pending') return expire(now, actor.approver);
            throw alreadyDecided(now);
          }
          const result = await callService.runApproved(runnable, row.call_id, row.id, (trx, ran) =>
            writeApprovedOutcome(trx, row, ran, actor.approver, { drift: verdict.drift, ...seen }),
          );
          return { outcome: result.answer.status, drift: verdict.drift, approval: await view(await load(id)), call: result.answer };
        }
      }
    },

    /** Used by sweeps: expire one pending approval past its expiry. */
    expire,
    expireDue,

    /** Used by the recovery sweep: an approved call whose process died was reconciled. */
    writeApprovedOutcome,

    /**
     * Used by sweeps: read live state for a pending approval and, on drift under its contract,
     * requeue it (or end it with replan_required) exactly as an approver's click would.
     * Returns what happened, or null when nothing changed.
     */
    async revalidate(row: ApprovalRow, actor: string): Promise<DecisionResult | null> {
      const cp = row.checkpoint as Checkpoint;
      if (!cp.contract || Object.keys(cp.contract.conditions).length === 0) return null;
      const live = await liveStateFor(row, undefined);
      if (live.source === 'frozen') return null;
      const verdict = decideThaw({ checkpoint: cp, liveState: live.state, expired: false });
      const seen = { approver: actor, state_source: live.source, live_state: live.state, comment: null };
      // Only a change since the freeze is news: a condition that failed at freeze and still
      // fails would requeue the same state on every pass.
      const news = verdict.outcome === 'requeued' && verdict.drift.fields.some((f) => f.changed || (f.frozen === undefined && !f.satisfied));
      if (verdict.outcome === 'requeued') return news ? requeue(row, verdict, live.state, seen, actor) : null;
      if (verdict.outcome === 'replan_required' || verdict.outcome === 'blocked') return endWithout(row, verdict, seen, actor);
      return null;
    },
  };
}
export type ApprovalService = ReturnType<typeof createApprovalService>;
