import type { ApprovedCall, CallService } from '../calls/call-service.ts';
import type { CallRequest } from '../calls/call-request.ts';
import { diffParams, type ParamEdit } from '../calls/param-edit.ts';
import type { Config } from '../config.ts';
import { AppError } from '../errors.ts';
import type { MatchedRule } from '../policy/policy.ts';
import type { ToolRegistry } from '../tools/tool-registry.ts';
import type { Approval } from './approval.ts';
import type { ApprovalsRepository } from './approvals-repository.ts';
import { actionDigest, actionOf, type Checkpoint } from './checkpoint.ts';
import { approvalsRequired, buildPendingApproval } from './freeze.ts';
import { assertAmongDeciders, resolveRouting, type DecisionDoor, type FrozenRouting, type GroupDirectory } from './routing.ts';
import type { DecisionResult, Settlement } from './settle.ts';

/*
 * Edit, then approve. An approver may change a pending call's params before approving it. The
 * edited call is checked as a new call would be, except that the approver's approval stands for
 * a `require_approval` rule it now matches:
 *   - the params must satisfy the tool's input schema (400 `validation_error`, every problem);
 *   - a deny rule matching the edited call refuses the edit (403 `edit_denied`), and the entity
 *     check on the edited params refuses an edit that points at another entity
 *     (409 `edit_entity_mismatch`); in both cases nothing runs and the approval stays pending;
 *   - the card (`editable: false`) or the approval contract (`editable: false`) may forbid edits
 *     (409 `not_editable`);
 *   - routing: when the edited call matches another `require_approval` rule than the frozen one,
 *     it answers to that rule's routing (approvers, channel, chain), and the editor must be among
 *     its deciders (403 `not_an_approver`): an edit never walks a call out of the hands a rule
 *     puts it in. Under the same rule the approval's own routing (an escalation level's, say) stands.
 * Quorum: an edit restarts the count. When the approval or the edited call needs more than one
 * approver, the edit replaces the pending approval with a fresh one holding the edited params
 * (same thread), on which the editor's vote is the first: those who voted before approved other
 * params. A fresh approval never needs fewer approvers than the one it replaces.
 */

/** An edit the approval's rules refuse; the approval stays pending. */
export class EditRefusedError extends AppError {}

/** An edit that passed its checks: the checkpoint to thaw instead of the frozen one. */
export interface PreparedEdit {
  provenance: ParamEdit;
  /** The frozen checkpoint with the edited params, request and digest. */
  checkpoint: Checkpoint;
  /** The rule the approval now answers to: the edited call's `require_approval` rule, else the frozen one. */
  policyRule: MatchedRule | null;
  /** How many approvers the edited call needs. */
  approvalsRequired: number;
  /** The edited call's routing when another rule routes it; null: the approval's own stands. */
  routing: FrozenRouting | null;
}

/** Who edits, through which door: the routing check depends on both. */
export interface Editor {
  approver: string;
  via: DecisionDoor;
}

/** Whether two matched rules are the same rule (a rule is not re-read between freeze and edit). */
function sameRule(a: MatchedRule | null | undefined, b: MatchedRule | null | undefined): boolean {
  return Boolean(a && b && a.source === b.source && a.index === b.index && a.when === b.when);
}

export interface ApprovalEditingDeps {
  config: Config;
  registry: ToolRegistry;
  callService: Pick<CallService, 'prepareApproved'>;
  approvals: Pick<ApprovalsRepository, 'addVote' | 'recordEvent'>;
  settlement: Pick<Settlement, 'settle' | 'requesterPersonOf'>;
  /** Slack user-group members, for the edited call's approvers named as groups. */
  groups: GroupDirectory;
}

/** What an edit form needs: the schema to build fields from and the params to fill them with. */
export interface EditForm {
  editable: boolean;
  input_schema: Record<string, unknown>;
  params: Record<string, unknown>;
}

export function createApprovalEditing(deps: ApprovalEditingDeps) {
  const { config, registry, callService, approvals, settlement, groups } = deps;

  /** The card is read as it is now: a tool that opted out since the freeze takes edits no more. */
  async function form(row: Approval): Promise<EditForm> {
    const card = (await registry.getTool(row.checkpoint.tool)).card;
    return { editable: row.checkpoint.editable !== false && card.editable !== false, input_schema: card.input_schema, params: row.checkpoint.params };
  }

  /**
   * Checks edited params for `row` and builds what the thaw runs instead; null when the params
   * are those already pending (an approval with nothing edited). Throws 400/403/409, see above.
   */
  async function prepare(row: Approval, editor: Editor, params: Record<string, unknown>): Promise<PreparedEdit | null> {
    const cp = row.checkpoint;
    if (!(await form(row)).editable) {
      throw new EditRefusedError(409, 'not_editable', `The params of this ${cp.tool} call may not be edited; approve or reject it as it is`, { approval_id: row.id });
    }
    if (diffParams(cp.params, params).length === 0) return null;
    // After a restarted quorum the pending params are already edited: provenance stays with the agent's.
    const originalParams = cp.edited?.original_params ?? cp.params;
    const originalDigest = cp.edited?.original_digest ?? row.action_digest;
    const request: CallRequest = { ...cp.request, params };
    // The same checks a new call meets (schema, policy, entity), against the tool as it is now.
    const runnable: ApprovedCall = await callService.prepareApproved(request, row.api_key_id, 'edited approval');
    if (runnable.policy.effect === 'deny') {
      throw new EditRefusedError(403, 'edit_denied', `Policy denies the edited call: ${runnable.policy.reason}`, { approval_id: row.id, rule: runnable.policy.rule ?? null });
    }
    const entity = runnable.prepared.entity;
    if (entity && !entity.ok) {
      throw new EditRefusedError(409, 'edit_entity_mismatch', `The edited params point at another entity: ${entity.reason}`, {
        approval_id: row.id,
        mismatches: entity.mismatches,
      });
    }
    const policyRule = runnable.policy.effect === 'require_approval' ? (runnable.policy.rule ?? null) : cp.policy_rule;
    const card = runnable.prepared.tool.card;
    const routing = sameRule(policyRule, cp.policy_rule) || policyRule === null ? null : resolveRouting(config, card, policyRule);
    if (routing) await assertAmongDeciders(config, groups, routing.entries, editor.approver, editor.via);
    const digest = actionDigest(request);
    const provenance: ParamEdit = {
      by: editor.approver,
      at: new Date().toISOString(),
      original_params: originalParams,
      params,
      diff: diffParams(originalParams, params),
      original_digest: originalDigest,
      action_digest: digest,
    };
    return {
      provenance,
      checkpoint: { ...cp, ...actionOf(request), request, action_digest: digest, edited: provenance },
      policyRule,
      approvalsRequired: Math.max(row.approvals_required, approvalsRequired(config, card, policyRule, request)),
      routing,
    };
  }

  /** Whether this edit restarts the count rather than running now. */
  function restartsQuorum(row: Approval, edit: PreparedEdit): boolean {
    return row.approvals_required > 1 || edit.approvalsRequired > 1;
  }

  /**
   * The edit replaces the pending approval with a fresh one holding the edited params, posted in
   * the same thread; the editor's vote is its first.
   */
  async function restartQuorum(row: Approval, editor: string, edit: PreparedEdit, comment: string | null): Promise<DecisionResult> {
    const cp = row.checkpoint;
    const card = (await registry.getTool(cp.tool)).card;
    const fresh = buildPendingApproval(config, {
      request: edit.checkpoint.request,
      card,
      callId: row.call_id,
      requester: row.api_key_id,
      requesterPerson: settlement.requesterPersonOf(row),
      reason: `params edited by ${editor}; the edited call needs ${edit.approvalsRequired} approvals: ${row.reason}`,
      policyRule: edit.policyRule,
      frozenState: cp.frozen_state,
      failure: cp.failure ?? undefined,
      previousApprovalId: row.id,
      // Rerouted: addressed, timed and escalated as that rule says. Otherwise as the pending one
      // was, down to the escalation levels still ahead of it.
      approvers: edit.routing ? edit.routing.entries : row.approvers,
      escalationChain: edit.routing ? edit.routing.chain : (cp.escalation_chain ?? []),
      ...(edit.routing ? {} : { expiresAt: row.expires_at }),
    });
    fresh.row.approvals_required = edit.approvalsRequired;
    fresh.summary.approvals_required = edit.approvalsRequired;
    fresh.row.checkpoint.edited = edit.provenance;
    fresh.row.checkpoint.editable = cp.editable;
    const { provenance } = edit;
    const result = await settlement.settle(row, {
      status: 'invalidated',
      outcome: 'edited',
      decision: { outcome: 'edited', approver: editor, comment, new_approval_id: fresh.row.id, edited: provenance },
      actor: editor,
      call: { status: 'pending_approval', fields: { reason: fresh.row.reason, approval: fresh.summary, edited: provenance } },
      trace: {
        status: 'edited',
        detail: {
          approval_id: row.id,
          new_approval_id: fresh.row.id,
          by: editor,
          diff: provenance.diff,
          original_digest: provenance.original_digest,
          action_digest: provenance.action_digest,
        },
      },
      final: false,
      // The thread reply says it, with the diff; the card shows the edit section.
      notice: null,
      edited: provenance,
      replacement: { pending: fresh },
      unexpiredOnly: true,
      shown: { new_approval: fresh.summary },
    });
    // The editor approved the edited params: theirs is the first vote on the fresh approval.
    const received = await approvals.addVote(fresh.row.id, editor);
    await approvals.recordEvent('approval_recorded', fresh.row.id, editor, { received, required: edit.approvalsRequired, comment, edited: true });
    return { ...result, approvals_received: received };
  }

  return { form, prepare, restartsQuorum, restartQuorum };
}
export type ApprovalEditing = ReturnType<typeof createApprovalEditing>;
