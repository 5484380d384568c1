import type { ApprovalView } from '../approvals/approval-service.ts';
import type { CapabilityCard } from '../tools/types.ts';
import type { TraceEvent } from '../traces/trace-recorder.ts';
import type { CallSummary } from '../traces/traces-repository.ts';
import { CALL_STATUSES } from '../vocabulary.ts';
import type { SlackMessage } from './card-types.ts';
import type { CommandStats } from './command-queries-repository.ts';
import { TRACES_MAX, USAGE, type StatsWindow, type TracesQuery } from './invoke-command-parse.ts';
import { MessageBuilder } from './message-builder.ts';
import { bold, compactCodeBlock, escapeMrkdwn, inlineCode, riskEmoji, slackDate, statusEmoji, truncate } from './mrkdwn.ts';

/**
 * The answers of `/invoke`, as pure functions from data already loaded to one ephemeral Block
 * Kit message. `now` comes in as an argument, so the same data always reads the same.
 */

// ---------------------------------------------------------------------------------------------
// Small formats
// ---------------------------------------------------------------------------------------------

/** "42s", "5m", "3h 10m", "2d 4h". */
function span(ms: number): string {
  const s = Math.floor(Math.abs(ms) / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h}h ${m % 60}m` : `${h}h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d}d ${h % 24}h` : `${d}d`;
}

function ago(iso: string, now: Date): string {
  const ms = now.getTime() - Date.parse(iso);
  return ms < 1000 ? 'just now' : `${span(ms)} ago`;
}

function until(iso: string, now: Date): string {
  const ms = Date.parse(iso) - now.getTime();
  return ms <= 0 ? `expired ${span(ms)} ago` : `in ${span(ms)}`;
}

function utcTime(iso: string): string {
  return `${iso.slice(11, 23)} UTC`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function compactJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'null';
  } catch {
    return String(value);
  }
}

function asRecord(value: unknown): Record<string, unknown> | null {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

function str(value: unknown): string | null {
  return typeof value === 'string' && value.length > 0 ? value : null;
}

function presentLines(lines: Array<string | null>): string {
  return lines.filter((l): l is string => l !== null).join('\n');
}

// ---------------------------------------------------------------------------------------------
// Help and notices
// ---------------------------------------------------------------------------------------------

/** A mistake in the command: what is wrong, and where to look. */
export function renderNotice(text: string): SlackMessage {
  return new MessageBuilder(text)
    .section(`:warning: ${escapeMrkdwn(text, 500)}`)
    .context('Try `/invoke help` for the list of commands.')
    .build();
}

/** The list of commands; with `unknown`, first says that command does not exist. */
export function renderHelp(unknown?: string): SlackMessage {
  const b = new MessageBuilder(unknown ? `Unknown command: ${unknown}. Commands: ${USAGE.map(([u]) => u.split(' ')[0]).join(', ')}` : 'Invoke commands');
  if (unknown !== undefined) b.section(`:warning: Unknown command: ${inlineCode(unknown, 62)}`);
  b.section(bold('Invoke: query calls, traces, approvals and tools'));
  b.lines(USAGE.map(([usage, what]) => `• ${inlineCode(`/invoke ${usage}`)}: ${escapeMrkdwn(what)}`));
  b.context('Answers are visible only to you.');
  return b.build();
}

// ---------------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------------

function callLine(call: CallSummary, now: Date): string {
  return [
    `${statusEmoji(call.status)} ${inlineCode(call.tool, 82)}`,
    `agent ${inlineCode(call.agent_id, 62)}`,
    escapeMrkdwn(call.status),
    plural(call.attempts, 'attempt'),
    ago(call.created_at, now),
    inlineCode(call.call_id, 82),
  ].join(' · ');
}

/** `/invoke traces`: the calls found, newest first, with the filters that found them. */
export function renderCallList(query: TracesQuery, calls: CallSummary[], now: Date): SlackMessage {
  const filters = [
    query.agent !== undefined ? `agent ${inlineCode(query.agent, 62)}` : null,
    query.tool !== undefined ? `tool ${inlineCode(query.tool, 82)}` : null,
    query.status !== undefined ? `status ${inlineCode(query.status)}` : null,
  ].filter((f): f is string => f !== null);
  const title = `${bold('Recent calls')}${filters.length ? ` (${filters.join(', ')})` : ''}: ${calls.length === 0 ? 'none' : `newest first, ${plural(calls.length, 'call')}`}`;
  const b = new MessageBuilder(`Invoke: ${plural(calls.length, 'call')}`).section(title);
  if (calls.length === 0) b.section('No calls match.');
  else b.lines(calls.map((call) => callLine(call, now)));
  if (query.capped) b.context(`At most ${TRACES_MAX} calls are shown.`);
  b.context(`${inlineCode('/invoke trace <call_id>')} shows the timeline of one call.`);
  return b.build();
}

function eventLine(event: TraceEvent, first: TraceEvent | undefined): string {
  const offset = first ? Date.parse(event.at) - Date.parse(first.at) : 0;
  const parts = [`• ${utcTime(event.at)} (+${offset} ms)`, `${bold(escapeMrkdwn(event.step, 80))} ${escapeMrkdwn(event.status, 60)}`];
  if (event.duration_ms !== undefined) parts.push(`took ${event.duration_ms} ms`);
  const note = str(event.detail?.reason) ?? str(event.detail?.error);
  if (note) parts.push(`_${escapeMrkdwn(note, 200)}_`);
  return parts.join(' · ');
}

/** `/invoke trace <id>`: one call, its trace events in order, and the answer it got. */
export function renderCallTimeline(call: CallSummary, answer: unknown, events: TraceEvent[], now: Date): SlackMessage {
  const final = asRecord(answer);
  const b = new MessageBuilder(`Invoke: call ${call.call_id} ${call.status}`);
  b.section(`${statusEmoji(call.status)} ${bold('Call')} ${inlineCode(call.call_id, 82)} · ${escapeMrkdwn(call.status)}`);
  b.section(
    presentLines([
      `tool ${inlineCode(call.tool, 82)} · agent ${inlineCode(call.agent_id, 62)} · ${plural(call.attempts, 'attempt')}`,
      `started ${slackDate(call.created_at)} (${ago(call.created_at, now)})` +
        (call.finished_at ? ` · finished ${slackDate(call.finished_at)}` : '') +
        (call.duration_ms !== null ? ` · ${call.duration_ms} ms` : ''),
      call.idempotency_key ? `idempotency key ${inlineCode(call.idempotency_key, 82)}` : null,
    ]),
  );
  b.divider();
  b.section(bold(`Timeline (${plural(events.length, 'step')})`));
  if (events.length === 0) b.section('No trace events recorded.');
  else b.lines(events.map((e) => eventLine(e, events[0])));
  b.divider();
  if (final) {
    const status = str(final.status) ?? call.status;
    const why = str(final.reason) ?? str(final.error);
    b.section(`${bold('Final answer:')} ${statusEmoji(status)} ${escapeMrkdwn(status)}${why ? `: ${escapeMrkdwn(why, 500)}` : ''}`);
    const approval = asRecord(final.approval);
    if (status === 'pending_approval' && approval && str(approval.id)) {
      b.context(`Waiting on approval ${inlineCode(String(approval.id))}: \`/invoke approval ${escapeMrkdwn(String(approval.id).replace(/`/g, ''), 100)}\``);
    }
  } else {
    b.section(`${bold('Final answer:')} none yet (the call is ${escapeMrkdwn(call.status)})`);
  }
  return b.build();
}

// ---------------------------------------------------------------------------------------------
// Approvals
// ---------------------------------------------------------------------------------------------

/** What the approval is for, as the agent's contract or the matched policy rule names it. */
function intentOf(a: ApprovalView): string | null {
  return str(a.checkpoint.contract?.intent) ?? str(a.checkpoint.policy_rule?.intent);
}

/** Params as `key: value` pairs, each value cut short, so one long value cannot hide the others. */
function paramsPreview(params: unknown): string {
  const record = asRecord(params);
  if (!record) return compactJson(params ?? {});
  const pairs = Object.entries(record).map(([key, value]) => `${truncate(key, 30)}: ${truncate(compactJson(value), 40)}`);
  return pairs.length ? pairs.join(', ') : '{}';
}

/**
 * One pending approval in a list: enough to tell two calls of one tool apart (intent, reason,
 * params) without opening the card. Each user text is escaped and cut, so an entry stays short.
 */
function approvalEntry(a: ApprovalView, link: string | undefined, now: Date): string {
  const intent = intentOf(a);
  return presentLines([
    [
      `${riskEmoji(a.risk)} ${inlineCode(a.tool, 82)}`,
      intent ? `intent ${bold(escapeMrkdwn(intent, 100))}` : 'no intent given',
      `agent ${inlineCode(a.agent_id, 62)}`,
      `risk ${escapeMrkdwn(a.risk)}`,
      inlineCode(a.id, 82),
      link ? `<${link}|open card>` : 'no card',
    ].join(' · '),
    `   why: ${escapeMrkdwn(a.reason, 200)}`,
    `   params ${inlineCode(paramsPreview(a.checkpoint.params), 160)} · expires ${slackDate(a.expires_at)} (${until(a.expires_at, now)})`,
  ]);
}

/**
 * `/invoke approvals [mine]`: the oldest pending approvals (of `total`), each with its intent,
 * reason, params and card link; `mine` when they are the ones the caller may decide.
 */
export function renderPendingApprovals(
  pending: ApprovalView[],
  total: number,
  links: Map<string, string>,
  now: Date,
  scope: { mine: boolean; scannedAll: boolean } = { mine: false, scannedAll: true },
): SlackMessage {
  const count = Math.max(total, pending.length);
  const what = scope.mine ? 'pending approval you may decide' : 'pending approval';
  const b = new MessageBuilder(`Invoke: ${plural(count, what)}`);
  b.section(`${bold(scope.mine ? 'Pending approvals you may decide' : 'Pending approvals')}: ${count === 0 ? 'none' : `${count}, oldest first`}`);
  if (pending.length === 0) b.section(scope.mine ? 'Nothing pending that you may decide.' : 'Nothing is waiting for a decision.');
  else b.lines(pending.map((a) => approvalEntry(a, links.get(a.id), now)));
  if (count > pending.length) b.context(`Showing the oldest ${pending.length} of ${count}.`);
  if (!scope.scannedAll) b.context('Only the oldest pending approvals were looked through; newer ones may be yours too.');
  if (scope.mine) b.context('Not listed: calls you requested, approvals addressed to others, and those you already approved.');
  return b.build();
}

/** `/invoke approvals mine` for someone who is no configured approver. */
export function renderNotAnApprover(): SlackMessage {
  return new MessageBuilder('You are not an Invoke approver, so there is nothing you may decide.')
    .section(':information_source: You are not an Invoke approver, so there is nothing you may decide.')
    .context(`${inlineCode('/invoke approvals')} lists every pending approval.`)
    .build();
}

function decisionLines(view: ApprovalView): string[] {
  const decision = asRecord(view.decision);
  if (!decision) return view.status === 'pending' ? ['Not decided yet.'] : [`No decision recorded (${escapeMrkdwn(view.status)}).`];
  const lines: string[] = [];
  const outcome = str(decision.outcome);
  const approver = str(decision.approver);
  const reason = str(decision.reason);
  const comment = str(decision.comment);
  if (outcome) lines.push(`outcome ${escapeMrkdwn(outcome, 80)}`);
  if (approver) lines.push(`by ${inlineCode(approver, 82)}`);
  if (view.decided_at) lines.push(`at ${slackDate(view.decided_at)}`);
  if (reason) lines.push(`reason: ${escapeMrkdwn(reason, 500)}`);
  if (comment) lines.push(`comment: ${escapeMrkdwn(comment, 300)}`);
  const newId = str(decision.new_approval_id);
  if (newId) lines.push(`replaced by ${inlineCode(newId)}`);
  if (lines.length === 0) lines.push(compactCodeBlock(compactJson(decision), 606));
  return lines;
}

/** `/invoke approval <id>`: one approval's facts, params and decision. */
export function renderApproval(view: ApprovalView, link: string | undefined, now: Date): SlackMessage {
  const b = new MessageBuilder(`Invoke: approval ${view.id} ${view.status}`);
  b.section(`${statusEmoji(view.status)} ${bold('Approval')} ${inlineCode(view.id, 82)} · ${escapeMrkdwn(view.status)}${link ? ` · <${link}|open card>` : ''}`);
  const intent = intentOf(view);
  b.section(
    presentLines([
      `tool ${inlineCode(view.tool, 82)} · agent ${inlineCode(view.agent_id, 62)} · risk ${riskEmoji(view.risk)} ${escapeMrkdwn(view.risk)}`,
      intent ? `intent ${escapeMrkdwn(intent, 200)}` : null,
      `why: ${escapeMrkdwn(view.reason, 500)}`,
      `call ${inlineCode(view.call_id, 82)} · requested ${slackDate(view.created_at)} (${ago(view.created_at, now)})`,
      view.status === 'pending' ? `expires ${slackDate(view.expires_at)} (${until(view.expires_at, now)})` : null,
      view.approvals_required > 1
        ? `approvals ${view.approvals.length} of ${view.approvals_required}${view.approvals.length ? `: ${view.approvals.map((v) => inlineCode(v.approver, 62)).join(', ')}` : ''}`
        : null,
      view.previous_approval_id ? `replaces ${inlineCode(view.previous_approval_id, 82)}` : null,
    ]),
  );
  b.section(`${bold('Params')}\n${compactCodeBlock(compactJson(view.checkpoint.params ?? {}), 1206)}`);
  b.section(`${bold('Decision')}\n${decisionLines(view).join('\n')}`);
  return b.build();
}

// ---------------------------------------------------------------------------------------------
// Stats and tools
// ---------------------------------------------------------------------------------------------

/** `/invoke stats`: every call status (zero included), then retries, reconciliations, replays, approvals. */
export function renderStats(window: StatsWindow, since: Date, stats: CommandStats): SlackMessage {
  const known: readonly string[] = CALL_STATUSES;
  const statuses = [...CALL_STATUSES, ...[...stats.callsByStatus.keys()].filter((s) => !known.includes(s)).sort()];
  const approvalCounts = [...stats.approvalsByStatus].map(([status, n]) => ({ status, n })).sort((a, b) => b.n - a.n || a.status.localeCompare(b.status));
  const approvalTotal = approvalCounts.reduce((sum, r) => sum + r.n, 0);

  const b = new MessageBuilder(`Invoke stats, last ${window}: ${plural(stats.calls, 'call')}`);
  b.section(`${bold(`Stats for the last ${window}`)} (since ${slackDate(since)})`);
  b.section([`${bold('Calls')}: ${stats.calls}`, ...statuses.map((s) => `${statusEmoji(s)} ${escapeMrkdwn(s)}: ${stats.callsByStatus.get(s) ?? 0}`)].join('\n'));
  b.section(
    [
      `:repeat: ${bold('Retried')} (more than one attempt): ${stats.retried}`,
      `:arrows_counterclockwise: ${bold('Reconciled')}: ${stats.reconciled}`,
      `:recycle: ${bold('Duplicates replayed')}: ${stats.replayed}`,
    ].join('\n'),
  );
  b.section(
    [`${bold('Approvals')} (requested in the window): ${approvalTotal}`, ...approvalCounts.map((r) => `${statusEmoji(r.status)} ${escapeMrkdwn(r.status)}: ${r.n}`)].join('\n'),
  );
  return b.build();
}

/** `/invoke tools`: the capability cards by key. */
export function renderTools(cards: CapabilityCard[]): SlackMessage {
  const sorted = [...cards].sort((a, b) => a.key.localeCompare(b.key));
  const b = new MessageBuilder(`Invoke: ${plural(sorted.length, 'tool')}`);
  b.section(`${bold('Tools')}: ${sorted.length === 0 ? 'none registered' : sorted.length}`);
  b.lines(
    sorted.map((card) =>
      [
        `${riskEmoji(card.risk)} ${inlineCode(card.key, 102)}`,
        `risk ${escapeMrkdwn(card.risk)}`,
        card.side_effects ? 'side effects' : 'no side effects',
        ...(card.idempotent ? ['idempotent'] : []),
        ...(card.description ? [escapeMrkdwn(card.description, 120)] : []),
      ].join(' · '),
    ),
  );
  return b.build();
}
