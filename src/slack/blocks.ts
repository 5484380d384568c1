import type { ParamChange, ParamEdit } from '../calls/param-edit.ts';
import type { DriftField, DriftReport } from '../calls/state-verify.ts';
import { FINAL_APPROVAL_STATUSES } from '../vocabulary.ts';
import type { ApprovalCardInput, DecidedCardInput, SlackMessage } from './card-types.ts';
import { ELLIPSIS, SLACK_LIMITS, codeBlock, escapeMrkdwn, hasStatusEmoji, inlineCode, riskEmoji, slackDate, statusEmoji, truncate, truncateMrkdwn } from './mrkdwn.ts';

/**
 * Block Kit builders for approval cards, thread replies and the reject modal. Pure functions over
 * plain data: no I/O, no clock (dates come in as arguments), the same input gives the same blocks.
 * Every user-supplied string is escaped and every text is cut to Slack's limits before it leaves.
 */

type Block = Record<string, unknown>;

export const APPROVE_ACTION_ID = 'approval_approve';
export const REJECT_ACTION_ID = 'approval_reject';
export const REFETCH_ACTION_ID = 'approval_refetch';
/** Opens the approve modal with the params as fields (edit-modal.ts). */
export const EDIT_ACTION_ID = 'approval_edit';
/** Opens the approve modal with a comment only (cards whose params may not be edited). */
export const COMMENT_ACTION_ID = 'approval_comment';
export const REJECT_MODAL_CALLBACK_ID = 'approval_reject_modal';
export const REJECT_REASON_BLOCK_ID = 'reason';
export const REJECT_REASON_ACTION_ID = 'reason_input';
export const REJECT_PRESET_BLOCK_ID = 'reason_preset';
export const REJECT_PRESET_ACTION_ID = 'reason_preset_select';

/** The reasons an approver most often gives, offered as a pick before the free text. */
export const REJECT_PRESETS = [
  { value: 'wrong_parameters', label: 'Wrong parameters' },
  { value: 'not_authorised', label: 'Not authorised' },
  { value: 'needs_context', label: 'Needs more context' },
  { value: 'duplicate', label: 'Duplicate' },
] as const;

/** The reason a reject modal gives: the preset's label, the free text, or both; null for neither. */
export function rejectReasonOf(preset: string | null | undefined, text: string | null | undefined): string | null {
  const label = REJECT_PRESETS.find((p) => p.value === preset)?.label;
  const free = text?.trim() ?? '';
  if (label && free) return `${label}: ${free}`;
  return label ?? (free || null);
}

/** Smallest budget a shrinkable section is cut to when the whole message is too large. */
const MIN_PART_BUDGET = 300;
/** Values shown inline (conditions, drift) are cut to this, so a list shows several of them. */
const INLINE_VALUE_MAX = 300;

// ---------------------------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------------------------

/** JSON for display; never throws (BigInt, cycles) and never returns undefined. */
function displayJson(value: unknown, indent?: number): string {
  if (value === undefined) return '(missing)';
  try {
    return JSON.stringify(value, null, indent) ?? String(value);
  } catch {
    return String(value);
  }
}

/** A condition as written in the contract: a string expression as-is, anything else as JSON. */
function displayCondition(condition: unknown): string {
  return typeof condition === 'string' ? condition : displayJson(condition);
}

/**
 * Joins `heading` and `lines` into one text of at most `max` characters; lines that do not fit
 * are counted in a closing "… and N more" line. Each line must already be bounded.
 */
function fitLines(heading: string, lines: string[], max: number): string {
  let text = heading;
  for (let i = 0; i < lines.length; i++) {
    const candidate = `${text}\n${lines[i]!}`;
    const rest = lines.length - i - 1;
    const more = rest > 0 ? `\n${ELLIPSIS} and ${rest} more` : '';
    if (candidate.length + more.length > max) {
      return truncate(`${text}\n${ELLIPSIS} and ${lines.length - i} more`, max);
    }
    text = candidate;
  }
  return truncate(text, max);
}

/** A Slack user id (`U…`, `W…`) becomes a mention; anything else is shown as escaped text. */
/** How many deciders a card names before it says "and N more". */
const DECIDERS_SHOWN = 20;

/** A decider as Slack shows them: a user or group mention, an API approver id as code. */
export function deciderMention(entry: string): string {
  if (/^[UW][A-Z0-9]{2,30}$/.test(entry)) return `<@${entry}>`;
  if (/^S[A-Z0-9]{2,30}$/.test(entry)) return `<!subteam^${entry}>`;
  return inlineCode(entry, 100);
}

/** "Who may decide: <@U1>, <!subteam^S1>, `ops-bot`" (the first twenty). */
function decidersLine(deciders: readonly string[]): string {
  const shown = deciders.slice(0, DECIDERS_SHOWN).map(deciderMention).join(', ');
  const more = deciders.length > DECIDERS_SHOWN ? ` and ${deciders.length - DECIDERS_SHOWN} more` : '';
  return `:bust_in_silhouette: Who may decide: ${shown}${more}`;
}

function actor(decidedBy: string): string {
  if (/^[UW][A-Z0-9]{2,30}$/.test(decidedBy)) return `<@${decidedBy}>`;
  return escapeMrkdwn(decidedBy, 200);
}

/**
 * The emoji for a decision's outcome. For an outcome without one, a final status stands in;
 * `pending` and `approved` do not, since they would read as "not decided yet" on a decided card.
 */
function outcomeEmoji(outcome: string, status?: string): string {
  if (hasStatusEmoji(outcome)) return statusEmoji(outcome);
  if (status !== undefined && (FINAL_APPROVAL_STATUSES as readonly string[]).includes(status)) return statusEmoji(status);
  return statusEmoji(outcome);
}

function humanize(s: string): string {
  const words = s.replace(/_/g, ' ').trim();
  return words.length === 0 ? words : words[0]!.toUpperCase() + words.slice(1);
}

function mrkdwn(text: string): Record<string, unknown> {
  return { type: 'mrkdwn', text };
}

function plainText(text: string): Record<string, unknown> {
  return { type: 'plain_text', text, emoji: true };
}

function section(blockId: string, text: string): Block {
  return { type: 'section', block_id: blockId, text: mrkdwn(truncate(text, SLACK_LIMITS.sectionText)) };
}

function blockSize(blocks: Block[]): number {
  return JSON.stringify(blocks).length;
}

// ---------------------------------------------------------------------------------------------
// Approval cards
// ---------------------------------------------------------------------------------------------

/** Text budgets of the sections that can grow with user data, shrunk in this order if needed. */
interface Budgets {
  params: number;
  edits: number;
  conditions: number;
  drift: number;
  live: number;
  reason: number;
}
const SHRINK_ORDER: Array<keyof Budgets> = ['params', 'edits', 'conditions', 'drift', 'live', 'reason'];

/**
 * Builds with full budgets, then, while the blocks' JSON is over the total limit, shrinks the
 * params first and the other long sections after, down to a floor that always fits.
 */
function fitTotal(build: (budgets: Budgets) => Block[]): Block[] {
  const full = SLACK_LIMITS.sectionText;
  let budgets: Budgets = { params: full, edits: full, conditions: full, drift: full, live: full, reason: full };
  let blocks = build(budgets);
  for (const part of SHRINK_ORDER) {
    // JSON escaping (quotes, newlines) makes the size shrink less than the budget: a few rounds.
    for (let round = 0; round < 6; round++) {
      const over = blockSize(blocks) - SLACK_LIMITS.totalChars;
      if (over <= 0 || budgets[part] <= MIN_PART_BUDGET) break;
      budgets = { ...budgets, [part]: Math.max(MIN_PART_BUDGET, budgets[part] - over - 100) };
      blocks = build(budgets);
    }
  }
  return blocks.slice(0, SLACK_LIMITS.blocks);
}

/** `approvalId.suffix.variant`: unique within a message, fresh for each version of a card. */
function blockIdMaker(approvalId: string, variant: string): (suffix: string) => string {
  const id = approvalId.slice(0, 200);
  return (suffix) => `${id}.${suffix}.${variant}`;
}

function factFields(input: ApprovalCardInput): Array<Record<string, unknown>> {
  const field = (label: string, value: string): Record<string, unknown> => mrkdwn(truncate(`*${label}*\n${value}`, SLACK_LIMITS.fieldText));
  const approvals = input.approvals_required > 1 ? `${input.approvals_received} of ${input.approvals_required}` : `${Math.max(1, input.approvals_required)} needed`;
  return [
    field('Tool', inlineCode(input.tool, 300)),
    field('Agent', inlineCode(input.agent_id, 300)),
    field('Risk', `${riskEmoji(input.risk)} ${escapeMrkdwn(input.risk, 20)}`),
    field('Entity', input.entity === null || input.entity === '' ? '_none_' : inlineCode(input.entity, 300)),
    field('Expires', slackDate(input.expires_at)),
    field('Approvals', approvals),
  ].slice(0, SLACK_LIMITS.sectionFields);
}

/** One drift line: "field: approved `x` → live `y`", plus why it matters when it no longer holds. */
function driftLine(f: DriftField): string {
  let line = `• ${inlineCode(f.field, 200)}: approved ${inlineCode(displayJson(f.frozen), INLINE_VALUE_MAX)} → live ${inlineCode(displayJson(f.live), INLINE_VALUE_MAX)}`;
  if (!f.satisfied) line += ` _(no longer satisfies ${inlineCode(displayCondition(f.condition), 200)})_`;
  return line;
}

/** Only fields that changed or no longer satisfy their condition are drift worth showing. */
function driftedFields(drift: DriftReport | null | undefined): DriftField[] {
  return (drift?.fields ?? []).filter((f) => f.changed || !f.satisfied);
}

/** The facts every version of the card shows: header, fields, reason, params, conditions, drift. */
function factBlocks(input: ApprovalCardInput, bid: (suffix: string) => string, budgets: Budgets, editHeading = 'Params edited by'): Block[] {
  const blocks: Block[] = [
    { type: 'header', block_id: bid('head'), text: plainText(escapeMrkdwn(input.intent, SLACK_LIMITS.headerText)) },
    { type: 'section', block_id: bid('facts'), fields: factFields(input) },
  ];

  const whyHeading = '*Why it needs approval*\n';
  blocks.push(section(bid('why'), whyHeading + escapeMrkdwn(input.reason, budgets.reason - whyHeading.length)));

  // Edited params are what runs: the card shows them, and the diff from the agent's below.
  const edited = input.edited ?? null;
  const paramsHeading = edited ? '*Params* (as edited)\n' : '*Params*\n';
  blocks.push(section(bid('params'), paramsHeading + codeBlock(displayJson(edited ? edited.params : input.params, 2), budgets.params - paramsHeading.length)));
  if (edited) blocks.push(section(bid('edits'), fitLines(`:pencil2: *${editHeading}* ${actor(edited.by)}`, editLines(edited.diff), budgets.edits)));

  if (input.conditions.length > 0) {
    const lines = input.conditions.map(
      (c) =>
        `• ${inlineCode(c.field, 200)} ${inlineCode(displayCondition(c.condition), INLINE_VALUE_MAX)} — was ${inlineCode(displayJson(c.frozen_value), INLINE_VALUE_MAX)} at freeze`,
    );
    blocks.push(section(bid('cond'), fitLines('*Conditions* (value at freeze)', lines, budgets.conditions)));
  }

  const drifted = driftedFields(input.drift);
  if (drifted.length > 0) {
    blocks.push(section(bid('drift'), fitLines(':warning: *State changed since the earlier approval*', drifted.map(driftLine), budgets.drift)));
  }

  if (input.review_url) {
    // The URL is ours (base64url token): only Slack's link delimiters would need escaping, and it has none.
    blocks.push({ type: 'context', block_id: bid('link'), elements: [mrkdwn(`:globe_with_meridians: <${input.review_url}|Review in browser> (sign in with your Invoke key)`)] });
  }
  if (input.previous_approval_id) {
    blocks.push({
      type: 'context',
      block_id: bid('prev'),
      elements: [mrkdwn(`Replaces ${inlineCode(input.previous_approval_id, 300)}`)],
    });
  }
  if (input.deciders && input.deciders.length > 0) {
    blocks.push({ type: 'context', block_id: bid('who'), elements: [mrkdwn(decidersLine(input.deciders))] });
  }
  return blocks;
}

/** One edited field: "`amount`: `120` → `80`", "`notify`: added `true`", "`note`: removed (was `x`)". */
function editLine(change: ParamChange): string {
  const path = inlineCode(change.path, 200);
  const value = (v: unknown) => inlineCode(displayJson(v), INLINE_VALUE_MAX);
  if (change.change === 'added') return `• ${path}: added ${value(change.new)}`;
  if (change.change === 'removed') return `• ${path}: removed (was ${value(change.old)})`;
  return `• ${path}: ${value(change.old)} → ${value(change.new)}`;
}

/** The diff of an edit as card lines; an edit back to the agent's params says so. */
export function editLines(diff: ParamChange[]): string[] {
  return diff.length === 0 ? ["_no change from the agent's params_"] : diff.map(editLine);
}

function actionsBlock(input: ApprovalCardInput, bid: (suffix: string) => string): Block {
  const approve: Record<string, unknown> = {
    type: 'button',
    action_id: APPROVE_ACTION_ID,
    text: plainText('Approve'),
    style: 'primary',
    value: input.approval_id,
  };
  if (input.risk === 'high' || input.risk === 'critical') {
    const tail = `\nInvoke runs ${inlineCode(input.tool, 80)} as soon as you approve.`;
    approve.confirm = {
      title: plainText(truncate(`Approve this ${input.risk}-risk action?`, SLACK_LIMITS.confirmTitle)),
      text: mrkdwn(truncate(`*${escapeMrkdwn(input.intent, SLACK_LIMITS.confirmText - tail.length - 2)}*${tail}`, SLACK_LIMITS.confirmText)),
      confirm: plainText('Approve'),
      deny: plainText('Cancel'),
      style: 'primary',
    };
  }
  return {
    type: 'actions',
    block_id: bid('actions'),
    elements: [
      approve,
      // No confirm on reject: the modal asking for the reason is the second step.
      { type: 'button', action_id: REJECT_ACTION_ID, text: plainText('Reject'), style: 'danger', value: input.approval_id },
      { type: 'button', action_id: REFETCH_ACTION_ID, text: plainText('Refetch state'), value: input.approval_id },
      // Opens a modal: the params as fields (or a comment only, when they may not be edited).
      input.editable === false
        ? { type: 'button', action_id: COMMENT_ACTION_ID, text: plainText('Approve with comment'), value: input.approval_id }
        : { type: 'button', action_id: EDIT_ACTION_ID, text: plainText('Edit & approve'), value: input.approval_id },
    ],
  };
}

function pendingText(input: ApprovalCardInput): string {
  return `Approval needed: ${escapeMrkdwn(input.intent, SLACK_LIMITS.headerText)} (${escapeMrkdwn(input.tool, 100)}, risk ${escapeMrkdwn(input.risk, 20)})`;
}

/** The card posted on freeze: the facts and three buttons, each carrying the approval id. */
export function approvalCard(input: ApprovalCardInput): SlackMessage {
  // The received count is in the variant so a partial approval's update gets fresh block_ids.
  const bid = blockIdMaker(input.approval_id, `p${input.approvals_received}`);
  const blocks = fitTotal((budgets) => [...factBlocks(input, bid, budgets), actionsBlock(input, bid)]);
  return { text: pendingText(input), blocks };
}

/** The card once decided: the same facts, no buttons, and who decided, when, with what outcome. */
export function decidedCard(input: DecidedCardInput): SlackMessage {
  const bid = blockIdMaker(input.approval_id, 'd');
  const who = actor(input.decided_by);
  const status =
    `${outcomeEmoji(input.outcome, input.status)} *${escapeMrkdwn(humanize(input.outcome), 100)}*` +
    ` · ${escapeMrkdwn(input.status, 100)} by ${who}, ${slackDate(input.decided_at)}`;
  const blocks = fitTotal((budgets) => {
    // An approval that ran edited params was approved with edits; one an edit replaced was only edited.
    const editHeading = input.outcome === 'edited' ? 'Params edited by' : 'Approved with edits by';
    const out = [...factBlocks(input, bid, budgets, editHeading), section(bid('status'), status)];
    if (input.detail) out.push(section(bid('detail'), escapeMrkdwn(input.detail, budgets.live)));
    return out;
  });
  const text = `Approval ${escapeMrkdwn(input.outcome, 100)}: ${escapeMrkdwn(input.intent, SLACK_LIMITS.headerText)} (${escapeMrkdwn(input.tool, 100)}), decided by ${who}`;
  return { text, blocks };
}

/**
 * The pending card after a refetch: buttons kept, fresh block_ids (the variant is `now`), and the
 * live state's drift from the freeze. Decides nothing.
 */
export function refetchedCard(input: ApprovalCardInput, live: { state_source: string; drift: DriftReport | null }, now: Date): SlackMessage {
  const stamp = Number.isNaN(now.getTime()) ? '0' : now.getTime().toString(36);
  const bid = blockIdMaker(input.approval_id, `r${stamp}`);
  const drifted = driftedFields(live.drift);
  const source = `from ${inlineCode(live.state_source, 200)}, ${slackDate(now)}`;
  const blocks = fitTotal((budgets) => {
    const liveText =
      drifted.length === 0
        ? truncate(`:mag: *Live state* (${source})\nNo drift since the freeze`, budgets.live)
        : fitLines(`:warning: *Live state differs from the freeze* (${source})`, drifted.map(driftLine), budgets.live);
    return [...factBlocks(input, bid, budgets), section(bid('live'), liveText), actionsBlock(input, bid)];
  });
  return { text: pendingText(input), blocks };
}

// ---------------------------------------------------------------------------------------------
// Thread replies, modal, ephemeral answers
// ---------------------------------------------------------------------------------------------

export interface ThreadReplyOutcome {
  status: string;
  outcome: string;
  decided_by: string;
  reason?: string | null;
  result_summary?: string | null;
  new_approval_id?: string | null;
  /** The approver edited the params: the reply lists the diff. */
  edited?: ParamEdit | null;
  /** The approver's comment on approving. */
  comment?: string | null;
}

/** A user's reason as a block quote; our own ">" is markup, theirs is escaped. */
function quoted(reason: string, max: number): string {
  return escapeMrkdwn(reason, max)
    .split('\n')
    .map((line) => `>${line}`)
    .join('\n');
}

/** The short message posted in the card's thread once an approval's outcome is known. */
export function threadReply(outcome: ThreadReplyOutcome): SlackMessage {
  const who = actor(outcome.decided_by);
  const reason = outcome.reason ? outcome.reason : null;
  const summary = outcome.result_summary ? outcome.result_summary : null;
  const next = outcome.new_approval_id ? ` (${inlineCode(outcome.new_approval_id, 200)})` : '';
  const emoji = outcomeEmoji(outcome.outcome, outcome.status);

  let headline: string;
  switch (outcome.outcome) {
    case 'executed':
      headline = outcome.edited ? `${emoji} *Executed* with params edited by ${actor(outcome.edited.by)}, approved by ${who}.` : `${emoji} *Executed* after approval by ${who}.`;
      break;
    case 'edited':
      headline = `:pencil2: *Params edited* by ${who}; the count of approvals starts again on the edited call${next}.`;
      break;
    case 'rejected':
      headline = `${emoji} *Rejected* by ${who}${reason ? ':' : ' (no reason given).'}`;
      break;
    case 'cancelled':
    case 'expired':
      headline =
        outcome.status === 'expired' || outcome.outcome === 'expired'
          ? `${statusEmoji('expired')} *Cancelled*: the approval expired before anyone decided. Nothing ran.`
          : `${emoji} *Cancelled* by ${who}. Nothing ran.`;
      break;
    case 'blocked':
      headline = `${emoji} *Blocked* after approval by ${who}: a check failed before execution. Nothing ran.`;
      break;
    case 'replan_required':
      headline = `${emoji} *Replan required*: the state no longer fits what was approved; the agent has to plan again. Nothing ran.`;
      break;
    case 'requeued':
      headline = `${emoji} State changed since the approval; a fresh approval follows in this thread${next}.`;
      break;
    case 'escalated':
      headline = `${emoji} *Escalated* by ${who}; a fresh approval follows in this thread${next}.`;
      break;
    case 'failed':
      headline = `${emoji} *Failed*: the execution approved by ${who} did not succeed.`;
      break;
    default:
      headline = `${emoji} *${escapeMrkdwn(humanize(outcome.outcome), 100)}* (${escapeMrkdwn(outcome.status, 100)}), ${who}.`;
  }

  let body = headline;
  const room = (): number => SLACK_LIMITS.sectionText - body.length - 1;
  if (outcome.edited) body += `\n${fitLines('*Edits*', editLines(outcome.edited.diff), Math.min(1200, room()))}`;
  if (outcome.comment) body += `\n_Comment:_\n${quoted(outcome.comment, Math.min(1000, room()))}`;
  if (reason && outcome.outcome !== 'executed') body += `\n${quoted(reason, Math.min(2000, room()))}`;
  if (summary && (outcome.outcome === 'executed' || outcome.outcome === 'failed')) {
    body += `\n${codeBlock(summary, room())}`;
  }
  // Notifications show only `text`: carry the reason there too, on one line.
  let text = headline;
  if (reason && outcome.outcome !== 'executed') {
    text += `${headline.endsWith(':') ? ' ' : ' Reason: '}${escapeMrkdwn(reason.replace(/\s+/g, ' '), 300)}`;
  }
  return { text, blocks: [{ type: 'section', text: mrkdwn(truncate(body, SLACK_LIMITS.sectionText)) }] };
}

/** The `views.open` view asking why an approval is rejected; the approval id rides in metadata. */
export function rejectReasonModal(approvalId: string, intent: string): Record<string, unknown> {
  return {
    type: 'modal',
    callback_id: REJECT_MODAL_CALLBACK_ID,
    private_metadata: approvalId,
    title: plainText('Reject approval'),
    submit: plainText('Reject'),
    close: plainText('Cancel'),
    blocks: [
      { type: 'section', text: mrkdwn(`Rejecting: *${escapeMrkdwn(intent, 500)}*\nThe agent and the thread see your reason: pick one, write one, or both.`) },
      {
        type: 'input',
        block_id: REJECT_PRESET_BLOCK_ID,
        optional: true,
        label: plainText('Reason'),
        element: {
          type: 'static_select',
          action_id: REJECT_PRESET_ACTION_ID,
          placeholder: plainText('Pick a reason'),
          options: REJECT_PRESETS.map((p) => ({ text: plainText(p.label), value: p.value })),
        },
      },
      {
        type: 'input',
        block_id: REJECT_REASON_BLOCK_ID,
        optional: true,
        label: plainText('Details'),
        element: {
          type: 'plain_text_input',
          action_id: REJECT_REASON_ACTION_ID,
          multiline: true,
          max_length: 2000,
        },
      },
    ],
  };
}

/**
 * A one-section message for ephemeral answers. `text` is mrkdwn composed by the caller, who
 * escapes any user text in it (mentions and links must survive); it is only cut to the limit.
 */
export function ephemeralText(text: string): SlackMessage {
  const cut = truncateMrkdwn(text, SLACK_LIMITS.sectionText);
  return { text: cut, blocks: [{ type: 'section', text: mrkdwn(cut) }] };
}
