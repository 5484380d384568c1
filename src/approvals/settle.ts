import { personForKeyId } from '../auth/keyring.ts';
import { finishLaterAnswer } from '../calls/call-service.ts';
import { httpStatusFor, type ApprovalSummary, type CallAnswer, type CallStatus } from '../calls/call-types.ts';
import type { CallsRepository } from '../calls/calls-repository.ts';
import type { DriftReport } from '../calls/state-verify.ts';
import type { ParamEdit } from '../calls/param-edit.ts';
import type { Config } from '../config.ts';
import type { Transact, Trx } from '../db/transact.ts';
import { AppError, ConflictError, NotFoundError } from '../errors.ts';
import type { ToolRegistry } from '../tools/tool-registry.ts';
import { TraceRecorder } from '../traces/trace-recorder.ts';
import type { TracesRepository } from '../traces/traces-repository.ts';
import type { Approval, ApprovalStatus } from './approval.ts';
import type { ApprovalNotifier } from './approval-notifier.ts';
import type { ApprovalsRepository } from './approvals-repository.ts';
import type { CallbackOutbox } from './callback-outbox.ts';
import type { Checkpoint } from './checkpoint.ts';
import { buildPendingApproval, type PendingApproval } from './freeze.ts';
import { isEscalationChain } from '../policy/routing-fields.ts';
import { entriesOfLevel, type EscalationLevel } from './routing.ts';

export interface ApprovalView {
  id: string;
  call_id: string;
  status: ApprovalStatus;
  tool: string;
  agent_id: string;
  risk: string;
  /** `risk` under the name the original clients read. */
  risk_level: string;
  reason: string;
  created_at: string;
  expires_at: string;
  decided_at: string | null;
  decision: unknown;
  approvals_required: number;
  approvals: Array<{ approver: string; at: string }>;
  previous_approval_id: string | null;
  /** Who may decide, when routed (users, groups, API approver ids, and the card's channel); null: the global lists. */
  approvers: string[] | null;
  /** Set when the params were edited: on the decision of an approved edit, or on an approval an edit created. */
  edited?: ParamEdit;
  checkpoint: Pick<
    Checkpoint,
    'params' | 'action' | 'env' | 'workflow' | 'resource' | 'contract' | 'policy_rule' | 'entity_resolution' | 'frozen_state' | 'failure' | 'variables' | 'tool_outputs'
  >;
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

/** One decision that ends (or replaces) a pending approval without running its call. */
export interface Decision {
  /** The approval's new status. */
  status: ApprovalStatus;
  /** What it means, as the approver, the card and the answer say it. */
  outcome: string;
  decision: Record<string, unknown>;
  actor: string;
  /** The call's answer: its status and fields. */
  call: { status: CallStatus; fields: Partial<CallAnswer> };
  /** The `approval_decided` trace event. */
  trace: { status: string; detail: Record<string, unknown> };
  /** Final outcomes go to the agent's callback; a requeue or escalation is not final. */
  final: boolean;
  /** The reason on the Slack card and thread. */
  notice: string | null;
  drift?: DriftReport | null;
  /** Params an approver edited (shown on the card and in the thread). */
  edited?: ParamEdit | null;
  /** An approval that replaces this one (requeue, escalation), created in the same transaction. */
  replacement?: { pending: PendingApproval; drift?: DriftReport | null };
  /**
   * A person's decision (or a sweep's drift check) loses to the expiry: past it by the database
   * clock, the approval expires instead. Only the expiry itself settles an expired approval.
   */
  unexpiredOnly: boolean;
  /** Fields of the result beyond outcome, approval and call. */
  shown: Omit<DecisionResult, 'outcome' | 'approval' | 'call'>;
}

export interface SettleDeps {
  config: Config;
  transact: Transact;
  approvals: ApprovalsRepository;
  calls: CallsRepository;
  traces: TracesRepository;
  registry: ToolRegistry;
  outbox: CallbackOutbox;
  notifier: ApprovalNotifier;
  /** A review link for a replacement approval, when links are on. */
  reviewUrl?: ((approval: { id: string; expires_at: Date }) => string) | null;
}

/** The edit an approval carries: decided with edited params, or created by an edit. */
function editedOf(row: Approval): { edited?: ParamEdit } {
  const decided = (row.decision as { edited?: ParamEdit } | null)?.edited;
  const edited = decided ?? row.checkpoint.edited ?? undefined;
  return edited ? { edited } : {};
}

const SETTLED_EXPIRED = { outcome: 'cancelled', reason: 'expired' } as const;

/** The tool is gone: nothing to escalate, so the approval is cancelled. Anything else: retry next pass. */
function goneToolIsNull(error: unknown): null {
  if (error instanceof AppError) return null;
  throw error;
}

/**
 * Settling approvals: the one function every decision goes through (`settle`), the expiry (one
 * by one and set-based), and what a decision shows. Used by the service, the thaw and the sweeps.
 */
export function createSettlement(deps: SettleDeps) {
  const { config, transact, approvals, calls, traces, registry, outbox, notifier, reviewUrl } = deps;

  async function view(row: Approval): Promise<ApprovalView> {
    const cp = row.checkpoint;
    const votes = await approvals.votesFor(row.id);
    return {
      id: row.id,
      call_id: row.call_id,
      status: row.status,
      tool: row.tool,
      agent_id: row.agent_id,
      risk: row.risk,
      risk_level: row.risk,
      reason: row.reason,
      created_at: row.created_at.toISOString(),
      expires_at: row.expires_at.toISOString(),
      decided_at: row.decided_at ? row.decided_at.toISOString() : null,
      decision: row.decision,
      approvals_required: row.approvals_required,
      approvals: votes.map((v) => ({ approver: v.approver, at: v.at.toISOString() })),
      previous_approval_id: row.previous_approval_id,
      approvers: row.approvers,
      ...editedOf(row),
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

  async function load(id: string): Promise<Approval> {
    const row = await approvals.findApproval(id);
    if (!row) throw new NotFoundError(`No approval ${id}`, { approval_id: id });
    return row;
  }

  function alreadyDecided(row: Pick<Approval, 'id' | 'status'>): ConflictError {
    return new ConflictError('approval_already_decided', `Approval ${row.id} is already ${row.status}`, { approval_id: row.id, status: row.status });
  }

  /** The person who requested the call; derived from the key for approvals stored before it was recorded. */
  function requesterPersonOf(row: Approval): string {
    return row.requester_person ?? personForKeyId(config, row.api_key_id);
  }

  function callbackPayload(row: Pick<Approval, 'id' | 'call_id'>, status: ApprovalStatus, actor: string, answer: CallAnswer) {
    return { event: 'approval.decided', approval_id: row.id, call_id: row.call_id, status, decided_by: actor, decided_at: new Date().toISOString(), call: answer };
  }

  /**
   * One decision, atomically: the conditional update of the pending row, the call's answer (so a
   * repeated call replays it), the audit and trace events, the callback, the Slack posts, the
   * wake-up. Losing to another decision is a 409; losing to the expiry expires the approval.
   */
  async function settle(row: Approval, decision: Decision): Promise<DecisionResult> {
    const d = withReplacementLink(decision);
    const cp = row.checkpoint;
    const trace = new TraceRecorder();
    trace.record('approval_decided', d.trace.status, d.trace.detail);
    const answer = await finishLaterAnswer(traces, row.call_id, cp.request, trace, d.call.status, d.call.fields);
    const replacement = d.replacement?.pending.row;
    const won = await transact(async (trx) => {
      if (!(await approvals.decidePending(trx, row.id, d.status, d.decision, { unexpiredOnly: d.unexpiredOnly }))) return false;
      await calls.writeAnswer(trx, row.call_id, httpStatusFor(answer), answer, null);
      await traces.appendEvents(row.call_id, trace.takePending(), trx);
      await approvals.recordEvent(d.status, row.id, d.actor, d.decision, trx);
      if (d.final && cp.callback_url) await outbox.enqueue(trx, cp.callback_url, callbackPayload(row, d.status, d.actor, answer));
      if (replacement) await approvals.insertApproval(trx, replacement);
      await notifier.decided(trx, {
        approvalId: row.id,
        status: d.status,
        outcome: d.outcome,
        actor: d.actor,
        reason: d.notice,
        answer,
        drift: d.drift ?? null,
        newApprovalId: replacement?.id ?? null,
        edited: d.edited ?? null,
      });
      if (replacement) await notifier.created(trx, { approval: replacement, replaces: row.id, drift: d.replacement?.drift ?? null });
      await approvals.notifyDecided(trx, row.id);
      return true;
    });
    if (!won) return lost(row.id, d.actor, d.unexpiredOnly);
    return { outcome: d.outcome, ...d.shown, approval: await view(await load(row.id)), call: answer };
  }

  /**
   * A replacement (requeue, escalation, restarted edit) is shown to the agent as the approval it
   * now waits on: it gets its review link as the first approval got one from the freezer.
   */
  function withReplacementLink(d: Decision): Decision {
    const pending = d.replacement?.pending;
    if (!pending || !reviewUrl) return d;
    const linked = { ...pending.summary, review_url: reviewUrl(pending.row) };
    return {
      ...d,
      call: { ...d.call, fields: { ...d.call.fields, approval: linked } },
      shown: d.shown.new_approval ? { ...d.shown, new_approval: linked } : d.shown,
    };
  }

  /** A conditional update that changed nothing: someone decided first, or the approval is past its expiry. */
  async function lost(id: string, actor: string, unexpiredOnly: boolean): Promise<DecisionResult> {
    const now = await load(id);
    if (unexpiredOnly && now.status === 'pending') return expire(now, actor);
    throw alreadyDecided(now);
  }

  /** Creates the approval that replaces `row` (after drift, or an escalation on expiry). */
  async function replacement(
    row: Approval,
    reason: string,
    frozenState: Record<string, unknown> | null,
    approvers: string[] | null,
    expiresAt?: Date,
    escalationChain: EscalationLevel[] = row.checkpoint.escalation_chain ?? [],
  ): Promise<PendingApproval> {
    const cp = row.checkpoint;
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
      escalationChain,
      expiresAt,
    });
  }

  /** The deadline the agent set (contract or request rule), if any: past it, a chain stops. */
  function agentDeadlinePassed(row: Approval): boolean {
    const cp = row.checkpoint;
    const ruleDeadline = cp.policy_rule?.source === 'request' ? cp.policy_rule.expires_at : undefined;
    return [cp.contract?.expires_at, ruleDeadline].some((at) => at !== undefined && Date.parse(at) <= Date.now());
  }

  /**
   * The next level of an escalation chain, as the approval that replaces this one: addressed to
   * that level, lasting until the level after it takes over (or the risk's TTL at the last).
   */
  async function nextLevel(row: Approval): Promise<PendingApproval | null> {
    const [level, ...rest] = row.checkpoint.escalation_chain ?? [];
    if (!level || agentDeadlinePassed(row)) return null;
    const reason = `escalated after ${level.after_seconds}s undecided: ${baseReason(row.reason)}`;
    return replacement(row, reason, row.checkpoint.frozen_state, entriesOfLevel(level), undefined, rest);
  }

  /** The approval's reason without the prefixes earlier levels added. */
  function baseReason(reason: string): string {
    return reason.replace(/^(escalated after \d+s undecided: )+/, '');
  }

  /** Escalate once: walks back through requeues to see whether this approval is already an escalation. */
  async function wasEscalated(row: Approval): Promise<boolean> {
    let previousId = row.previous_approval_id;
    for (let hops = 0; previousId && hops < 50; hops++) {
      const previous = await approvals.findApproval(previousId);
      if (!previous) return false;
      if (previous.status === 'escalated') return true;
      previousId = previous.previous_approval_id;
    }
    return false;
  }

  /** Expiry: cancel, or (on_expire: escalate) hand it to a fresh approval for `escalate_to`. */
  async function expire(row: Approval, actor: string): Promise<DecisionResult> {
    const cp = row.checkpoint;
    const onExpire = cp.contract?.on_expire ?? cp.policy_rule?.on_expire ?? 'cancel';
    const named = cp.contract?.escalate_to ?? cp.policy_rule?.escalate_to;
    // A chain on the rule was recorded as the checkpoint's `escalation_chain` at freeze.
    const escalateTo = isEscalationChain(named) ? undefined : named;
    // A chain walks its levels; the single-step form escalates once: an escalation that
    // expires too is cancelled, not escalated again.
    const chained = row.checkpoint.escalation_chain?.length ? await nextLevel(row).catch(goneToolIsNull) : null;
    const fresh =
      chained ??
      (onExpire === 'escalate' && !isEscalationChain(named) && !row.checkpoint.escalation_chain?.length && !(await wasEscalated(row))
        ? await replacement(
            row,
            `escalated after expiry: ${row.reason}`,
            cp.frozen_state,
            escalateTo === undefined ? null : Array.isArray(escalateTo) ? escalateTo : [escalateTo],
            new Date(Date.now() + config.approvalTtlMs[row.risk]),
          ).catch(goneToolIsNull)
        : null);
    if (fresh) {
      const approvers = fresh.row.approvers;
      return settle(row, {
        status: 'escalated',
        outcome: 'escalated',
        decision: { outcome: 'escalated', new_approval_id: fresh.row.id, escalate_to: approvers },
        actor,
        call: { status: 'pending_approval', fields: { reason: fresh.row.reason, approval: fresh.summary } },
        trace: { status: 'escalated', detail: { approval_id: row.id, new_approval_id: fresh.row.id, escalate_to: approvers } },
        final: false,
        notice: `expired; escalated to ${approvers?.join(', ') ?? 'the approvers'}`,
        replacement: { pending: fresh },
        unexpiredOnly: false,
        shown: { new_approval: fresh.summary },
      });
    }
    return settle(row, {
      status: 'expired',
      outcome: 'cancelled',
      decision: { ...SETTLED_EXPIRED },
      actor,
      call: { status: 'cancelled', fields: { reason: 'the approval expired before it was approved' } },
      trace: { status: 'expired', detail: { approval_id: row.id } },
      final: true,
      notice: 'the approval expired',
      unexpiredOnly: false,
      shown: { reason: 'expired' },
    });
  }

  /**
   * The expiry sweep's bulk path: up to `limit` approvals that cancel on expiry, expired in one
   * transaction: one set-based statement (the decisions with their audit and wake-up, the calls'
   * answers and traces), then the callbacks and the Slack posts, the same writes `expire` makes
   * one by one. Returns how many expired.
   */
  async function expireDue(limit: number, actor: string): Promise<number> {
    return transact(async (trx: Trx) => {
      const reason = 'the approval expired before it was approved';
      // One set of events for the batch; the statement puts each approval's id in the first.
      const trace = new TraceRecorder();
      trace.record('approval_decided', 'expired', { approval_id: '' });
      trace.record('execution_completed', 'cancelled', { reason });
      const rows = await approvals.expireDue(trx, limit, { ...SETTLED_EXPIRED }, actor, { status: 'cancelled', reason, events: trace.events });
      if (rows.length === 0) return 0;
      for (const row of rows) {
        if (row.callback_url && row.answer) await outbox.enqueue(trx, row.callback_url, callbackPayload(row, 'expired', actor, row.answer));
      }
      await notifier.decidedInBulk(
        trx,
        rows.map((row) => ({ approvalId: row.id, status: 'expired', outcome: 'cancelled', actor, reason: 'the approval expired' })),
      );
      return rows.length;
    });
  }

  return { view, load, alreadyDecided, requesterPersonOf, callbackPayload, settle, lost, replacement, expire, expireDue };
}
export type Settlement = ReturnType<typeof createSettlement>;
