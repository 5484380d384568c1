import type { CallService } from '../calls/call-service.ts';
import type { CallsRepository } from '../calls/calls-repository.ts';
import type { StateReader } from '../calls/state-reader.ts';
import { computeDrift, type DriftReport } from '../calls/state-verify.ts';
import type { Config } from '../config.ts';
import type { Transact } from '../db/transact.ts';
import { AppError } from '../errors.ts';
import type { ToolRegistry } from '../tools/tool-registry.ts';
import type { TracesRepository } from '../traces/traces-repository.ts';
import { FINAL_APPROVAL_STATUSES } from '../vocabulary.ts';
import type { Approval, ApprovalStatus } from './approval.ts';
import type { ApprovalNotifier } from './approval-notifier.ts';
import type { ApprovalsRepository } from './approvals-repository.ts';
import type { ApprovalWaiter } from './approval-waiter.ts';
import type { CallbackOutbox } from './callback-outbox.ts';
import { assertAmongDeciders, noGroups, type GroupDirectory } from './routing.ts';
import { createSettlement, type ApprovalView, type DecisionResult } from './settle.ts';
import { createApprovalEditing, type EditForm } from './edit.ts';
import { createThaw, type ThawRequest } from './thaw.ts';

export type { ApprovalView, DecisionResult };

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

/** What an approver sends with an approval; `reviewed_by` is a note, never who approved. */
export interface ApproveInput extends ThawRequest {
  /** Edited params (edit.ts): checked, then run instead of the frozen ones. */
  params?: Record<string, unknown>;
}

/** The original clients' `reviewed_by`, recorded beside the approver when sent. */
function reviewNote(reviewedBy: string | undefined): { reviewed_by?: string } {
  return reviewedBy === undefined ? {} : { reviewed_by: reviewedBy };
}

export interface ApprovalServiceDeps {
  config: Config;
  transact: Transact;
  approvals: ApprovalsRepository;
  calls: CallsRepository;
  callService: CallService;
  traces: TracesRepository;
  registry: ToolRegistry;
  stateReader: StateReader;
  outbox: CallbackOutbox;
  waiter: ApprovalWaiter;
  notifier: ApprovalNotifier;
  /** Slack user-group members, for approvers named as groups; none resolve without Slack. */
  groups?: GroupDirectory;
  /** A review link for an approval that replaces another (as the freezer gives the first one), when links are on. */
  reviewUrl?: ((approval: { id: string; expires_at: Date }) => string) | null;
}

/** How many of the oldest pending approvals a "what may I decide" list looks through (each is checked on its own). */
const DECIDABLE_SCANNED = 200;

/** Deciding approvals: the same code for the API, Slack and the sweeps. */
export function createApprovalService(deps: ApprovalServiceDeps) {
  const { config, approvals, waiter } = deps;
  const groups = deps.groups ?? noGroups;
  const settlement = createSettlement(deps);
  const thaw = createThaw({ ...deps, settlement });
  const { view, load, alreadyDecided, requesterPersonOf, settle } = settlement;
  const editing = createApprovalEditing({ ...deps, settlement, groups });

  /** Never the requester (by key or person) nor the requesting agent; then only the approval's deciders (routing.ts). */
  async function assertMayDecide(row: Approval, actor: ApproverActor): Promise<void> {
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
    await assertAmongDeciders(config, groups, row.approvers, actor.approver, actor.via);
  }

  async function pendingOrConflict(id: string): Promise<Approval> {
    const row = await load(id);
    if (row.status !== 'pending') throw alreadyDecided(row);
    return row;
  }

  return {
    view,

    async list(status: ApprovalStatus | undefined, limit: number): Promise<ApprovalView[]> {
      return Promise.all((await approvals.listApprovals(status, limit)).map(view));
    },

    /** The latest decisions, newest first. */
    async recentlyDecided(limit: number): Promise<ApprovalView[]> {
      return Promise.all((await approvals.listRecentlyDecided(limit)).map(view));
    },

    /** The audit trail of one approval: every transition, who made it, what they saw. */
    async audit(id: string) {
      await load(id);
      return (await approvals.eventsFor(id)).map((e) => ({ kind: e.kind, actor: e.actor, detail: e.detail, at: e.at.toISOString() }));
    },

    /** Throws when `actor` may not decide this approval (before asking them for a reason, say). */
    async assertMayDecide(actor: ApproverActor, id: string): Promise<void> {
      await assertMayDecide(await load(id), actor);
    },

    /**
     * The pending approvals `actor` may decide now (what `/invoke approvals mine` and App Home
     * list): the decision check itself on each row, and not twice for a quorum. Looks through the
     * oldest DECIDABLE_SCANNED pending approvals; `scannedAll` is false when more are pending.
     */
    async pendingDecidableBy(actor: ApproverActor): Promise<{ approvals: ApprovalView[]; scannedAll: boolean }> {
      const rows = await approvals.listApprovals('pending', DECIDABLE_SCANNED);
      const allowed = await Promise.all(
        rows.map((row) =>
          assertMayDecide(row, actor).then(
            () => true,
            (error: unknown) => {
              if (error instanceof AppError) return false;
              throw error;
            },
          ),
        ),
      );
      const views = await Promise.all(rows.filter((_, i) => allowed[i]).map(view));
      return { approvals: views.filter((v) => !v.approvals.some((vote) => vote.approver === actor.approver)), scannedAll: rows.length < DECIDABLE_SCANNED };
    },

    /** Throws unless `actor` is among the approval's deciders (refetch: not a decision, open to the requester). */
    async assertAddressedTo(actor: ApproverActor, id: string): Promise<void> {
      await assertAmongDeciders(config, groups, (await load(id)).approvers, actor.approver, actor.via);
    },

    /** One approval; with `waitMs`, waits (bounded) until it is decided. */
    async get(id: string, waitMs = 0): Promise<ApprovalView> {
      let row = await load(id);
      const wait = Math.min(waitMs, config.approvalWaitMaxMs);
      if (wait > 0 && !FINAL_APPROVAL_STATUSES.includes(row.status)) {
        await waiter.waitUntil(id, wait, async () => {
          row = await load(id);
          return FINAL_APPROVAL_STATUSES.includes(row.status);
        });
      }
      return view(row);
    },

    async refetch(id: string): Promise<{ approval: ApprovalView; live_state: Record<string, unknown>; state_source: string; drift: DriftReport | null }> {
      const row = await load(id);
      const cp = row.checkpoint;
      const live = await thaw.liveStateFor(row, undefined);
      const conditions = cp.contract?.conditions ?? {};
      const drift = Object.keys(conditions).length ? computeDrift(cp.frozen_state ?? {}, live.state, conditions, cp.contract?.threshold ?? 'strict') : null;
      await approvals.recordEvent('refetched', row.id, 'system', { state_source: live.source, drifted: drift?.drifted ?? false });
      return { approval: await view(row), live_state: live.state, state_source: live.source, drift };
    },

    /**
     * A rejection past the approval's expiry (by the database clock) is no rejection: the approval
     * expires as the sweep would expire it (outcome `cancelled`), exactly as an approve click does.
     */
    async reject(actor: ApproverActor, id: string, reason: string, reviewedBy?: string): Promise<DecisionResult> {
      const row = await pendingOrConflict(id);
      await assertMayDecide(row, actor);
      return settle(row, {
        status: 'rejected',
        outcome: 'rejected',
        decision: { outcome: 'rejected', approver: actor.approver, reason, ...reviewNote(reviewedBy) },
        actor: actor.approver,
        call: { status: 'rejected', fields: { reason: `rejected by ${actor.approver}: ${reason}` } },
        trace: { status: 'rejected', detail: { approval_id: row.id, approver: actor.approver, reason } },
        final: true,
        notice: reason,
        unexpiredOnly: true,
        shown: { reason },
      });
    },

    /**
     * What an edit form shows, for someone who may decide this pending approval: whether its
     * params may be edited, the tool's schema and the pending params.
     */
    async editForm(actor: ApproverActor, id: string): Promise<EditForm & { approval: ApprovalView }> {
      const row = await pendingOrConflict(id);
      await assertMayDecide(row, actor);
      return { ...(await editing.form(row)), approval: await view(row) };
    },

    /** Checks edited params as `approve` would, deciding nothing (a modal shows the problems before it closes). */
    async checkEdit(actor: ApproverActor, id: string, params: Record<string, unknown>): Promise<void> {
      const row = await pendingOrConflict(id);
      await assertMayDecide(row, actor);
      await editing.prepare(row, actor, params);
    },

    /**
     * One vote; the last vote a quorum needs thaws the call (thaw.ts). With edited `params`
     * (edit.ts), the edited call is checked again and runs instead; under a quorum the edit
     * restarts the count on a fresh approval.
     */
    async approve(actor: ApproverActor, id: string, input: ApproveInput): Promise<DecisionResult> {
      let row = await pendingOrConflict(id);
      await assertMayDecide(row, actor);
      const edit = input.params === undefined ? null : await editing.prepare(row, actor, input.params);
      if (edit && editing.restartsQuorum(row, edit)) return editing.restartQuorum(row, actor.approver, edit, input.comment ?? null);
      if (row.approvals_required > 1) {
        const received = await approvals.addVote(row.id, actor.approver);
        await approvals.recordEvent('approval_recorded', row.id, actor.approver, {
          received,
          required: row.approvals_required,
          comment: input.comment ?? null,
          ...reviewNote(input.reviewed_by),
        });
        if (received < row.approvals_required) {
          return { outcome: 'awaiting_approvals', approvals_received: received, approval: await view(row) };
        }
        row = await pendingOrConflict(id);
      }
      return thaw.thaw(row, actor.approver, input, edit);
    },

    /** Used by sweeps: expire one pending approval past its expiry. */
    expire: settlement.expire,
    expireDue: settlement.expireDue,
    /** Used by the recovery sweep: an approved call whose process died was reconciled. */
    recordApprovedOutcome: thaw.recordApprovedOutcome,
    revalidate: thaw.revalidate,
  };
}
export type ApprovalService = ReturnType<typeof createApprovalService>;
