import type { Kysely } from 'kysely';
import type { ApprovalService, ApprovalView } from '../approvals/approval-service.ts';
import { CALL_STATUSES } from '../calls/call-types.ts';
import type { CallsRepository } from '../calls/calls-repository.ts';
import type { Database } from '../db/schema.ts';
import { NotFoundError } from '../errors.ts';
import type { ToolRegistry } from '../tools/tool-registry.ts';
import type { TraceEvent } from '../traces/trace-recorder.ts';
import type { CallSummary, TracesRepository } from '../traces/traces-repository.ts';
import type { SlackMessage } from './card-types.ts';

/**
 * `/invoke <text>`: read-only queries over calls, traces, approvals and tools, answered as one
 * ephemeral Block Kit message. Argument errors are answers, never exceptions; only a failing
 * store throws (the Slack app turns that into a generic reply).
 */

export interface InvokeCommandDeps {
  db: Kysely<Database>;
  traces: TracesRepository;
  calls: CallsRepository;
  approvals: ApprovalService;
  registry: ToolRegistry;
  /** Workspace URL for card links (`https://acme.slack.com`); Slack redirects from the default. */
  slackTeamUrl?: string;
}

export interface InvokeCommand {
  run(text: string, now: Date): Promise<SlackMessage>;
}

const TRACES_DEFAULT = 10;
const TRACES_MAX = 50;
const APPROVALS_SHOWN = 25;
const WINDOWS = { '24h': 24 * 3_600_000, '7d': 7 * 24 * 3_600_000 } as const;
type StatsWindow = keyof typeof WINDOWS;
const KNOWN_CALL_STATUSES: readonly string[] = [...CALL_STATUSES, 'in_flight'];

const USAGE: Array<[string, string]> = [
  ['traces [agent:X] [tool:Y] [status:Z] [last:N]', `recent calls, newest first (N defaults to ${TRACES_DEFAULT}, at most ${TRACES_MAX})`],
  ['trace <call_id>', 'the timeline of one call: each step, its status and time, and the final answer'],
  ['approvals', 'pending approvals, oldest first, with links to their cards'],
  ['approval <id>', "one approval's details: status, tool, params, decision"],
  ['stats [24h|7d]', 'calls by outcome, retries, reconciliations, replayed duplicates, approvals by decision (default 24h)'],
  ['tools', 'the registered tools: key, risk, side effects'],
  ['help', 'this help'],
];

const CALL_EMOJI: Record<string, string> = {
  executed: ':white_check_mark:',
  blocked: ':no_entry:',
  pending_approval: ':hourglass_flowing_sand:',
  failed: ':x:',
  escalated: ':arrow_double_up:',
  outcome_reconciled: ':arrows_counterclockwise:',
  replan_required: ':leftwards_arrow_with_hook:',
  unknown_outcome: ':grey_question:',
  rejected: ':no_entry_sign:',
  cancelled: ':heavy_multiplication_x:',
  in_flight: ':arrows_clockwise:',
};

const APPROVAL_EMOJI: Record<string, string> = {
  pending: ':hourglass_flowing_sand:',
  approved: ':arrows_clockwise:',
  executed: ':white_check_mark:',
  failed: ':x:',
  rejected: ':no_entry_sign:',
  expired: ':alarm_clock:',
  cancelled: ':heavy_multiplication_x:',
  blocked: ':no_entry:',
  invalidated: ':leftwards_arrow_with_hook:',
  escalated: ':arrow_double_up:',
};

const RISK_EMOJI: Record<string, string> = {
  low: ':large_green_circle:',
  medium: ':large_yellow_circle:',
  high: ':large_orange_circle:',
  critical: ':red_circle:',
};

// ---------------------------------------------------------------------------------------------
// Text and blocks (own small builders: Slack's limits are enforced here, not by the caller)
// ---------------------------------------------------------------------------------------------

type Block = Record<string, unknown>;

const LIMITS = {
  sectionText: 3000,
  blocks: 50,
  /** Slack refuses messages of roughly 13k characters (`msg_blocks_too_long`): stay well under. */
  totalText: 11_000,
} as const;
const ELLIPSIS = '…';

/**
 * Escapes Slack's control characters (`&`, `<`, `>`) and cuts the result to `max` characters
 * (ending with "…"), never inside an entity or a surrogate pair.
 */
export function escapeMrkdwn(s: string, max = Infinity): string {
  const escaped = s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  if (escaped.length <= max) return escaped;
  let out = '';
  for (const ch of s) {
    const piece = ch === '&' ? '&amp;' : ch === '<' ? '&lt;' : ch === '>' ? '&gt;' : ch;
    if (out.length + piece.length > max - ELLIPSIS.length) break;
    out += piece;
  }
  return out + ELLIPSIS;
}

/** Inline code: backticks inside would end the span, so they become look-alikes. */
function code(s: string, max = 120): string {
  return '`' + escapeMrkdwn(s.replace(/`/g, 'ˋ'), max) + '`';
}

function codeBlock(s: string, max: number): string {
  return '```' + escapeMrkdwn(s.replace(/```/g, 'ˋˋˋ'), max) + '```';
}

function bold(s: string): string {
  return `*${s}*`;
}

function section(text: string): Block {
  return { type: 'section', text: { type: 'mrkdwn', text } };
}

/**
 * A message from parts: every list of lines is packed into as few sections as fit (3000 characters
 * each), within 50 blocks and a total text budget; lines that do not fit are counted in a final
 * "… N more" line instead of being dropped silently.
 */
class MessageBuilder {
  private readonly blocks: Block[] = [];
  private used = 0;
  private readonly fallback: string;

  /** `fallback` is plain text (Slack parses the top-level text as mrkdwn too, so it is escaped). */
  constructor(fallback: string) {
    this.fallback = escapeMrkdwn(fallback, 1000);
  }

  section(text: string): this {
    return this.lines([text]);
  }

  context(text: string): this {
    if (this.blocks.length < LIMITS.blocks && this.used + text.length <= LIMITS.totalText + 500) {
      this.blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: text.slice(0, LIMITS.sectionText) }] });
      this.used += text.length;
    }
    return this;
  }

  divider(): this {
    if (this.blocks.length < LIMITS.blocks - 1) this.blocks.push({ type: 'divider' });
    return this;
  }

  lines(lines: string[]): this {
    const more = (n: number) => `${ELLIPSIS} and ${n} more not shown`;
    const reserve = more(lines.length).length + 1;
    let current: string[] = [];
    let length = 0;
    const flush = () => {
      if (current.length === 0) return;
      const text = current.join('\n');
      this.blocks.push(section(text));
      this.used += text.length;
      current = [];
      length = 0;
    };
    for (let i = 0; i < lines.length; i++) {
      // Builders keep each line short; this only guards a pathological one.
      const line = (lines[i] ?? '').slice(0, LIMITS.sectionText - reserve - 1);
      const need = line.length + 1 + (i < lines.length - 1 ? reserve : 0);
      // One block is kept free for a closing context.
      const blocksAfter = this.blocks.length + (current.length > 0 ? 2 : 1);
      if (length + need > LIMITS.sectionText && current.length > 0 && blocksAfter <= LIMITS.blocks - 1) flush();
      if (length + need <= LIMITS.sectionText && this.used + length + need <= LIMITS.totalText && this.blocks.length < LIMITS.blocks - 1) {
        current.push(line);
        length += line.length + 1;
        continue;
      }
      current.push(more(lines.length - i));
      break;
    }
    if (this.blocks.length < LIMITS.blocks) flush();
    return this;
  }

  build(): SlackMessage {
    return { text: this.fallback, blocks: this.blocks.slice(0, LIMITS.blocks) };
  }
}

// ---------------------------------------------------------------------------------------------
// Formatting helpers
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

/** Slack renders this in the reader's time zone; the ISO text is the fallback. */
function slackDate(iso: string): string {
  const unix = Math.floor(Date.parse(iso) / 1000);
  return `<!date^${unix}^{date_short_pretty} {time}|${escapeMrkdwn(iso)}>`;
}

function utcTime(iso: string): string {
  return `${iso.slice(11, 23)} UTC`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function callEmoji(status: string): string {
  return CALL_EMOJI[status] ?? ':grey_question:';
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

/** Slack's permalink shape; the workspace URL, when known, avoids a redirect. */
export function slackMessageLink(channel: string, ts: string, teamUrl = 'https://slack.com'): string {
  return `${teamUrl.replace(/(?<!\/)\/+$/, '')}/archives/${encodeURIComponent(channel)}/p${encodeURIComponent(ts.replace('.', ''))}`;
}

function notice(text: string): SlackMessage {
  return new MessageBuilder(text)
    .section(`:warning: ${escapeMrkdwn(text, 500)}`)
    .context('Try `/invoke help` for the list of commands.')
    .build();
}

function helpMessage(unknown?: string): SlackMessage {
  const b = new MessageBuilder(unknown ? `Unknown command: ${unknown}. Commands: ${USAGE.map(([u]) => u.split(' ')[0]).join(', ')}` : 'Invoke commands');
  if (unknown !== undefined) b.section(`:warning: Unknown command: ${code(unknown, 60)}`);
  b.section(bold('Invoke: query calls, traces, approvals and tools'));
  b.lines(USAGE.map(([usage, what]) => `• ${code(`/invoke ${usage}`)}: ${escapeMrkdwn(what)}`));
  b.context('Answers are visible only to you.');
  return b.build();
}

// ---------------------------------------------------------------------------------------------
// Argument parsing
// ---------------------------------------------------------------------------------------------

interface TracesQuery {
  agent?: string;
  tool?: string;
  status?: string;
  last: number;
  capped: boolean;
}

function parseTracesArgs(args: string[]): TracesQuery | { error: string } {
  const query: TracesQuery = { last: TRACES_DEFAULT, capped: false };
  for (const arg of args) {
    const colon = arg.indexOf(':');
    const key = colon > 0 ? arg.slice(0, colon).toLowerCase() : '';
    const value = colon > 0 ? arg.slice(colon + 1) : '';
    if (!['agent', 'tool', 'status', 'last'].includes(key)) {
      return { error: `Unknown filter "${arg}": use agent:X, tool:Y, status:Z or last:N.` };
    }
    if (value === '') return { error: `The filter ${key}: needs a value, as in ${key}:${key === 'last' ? '20' : 'x'}.` };
    if (key === 'agent') query.agent = value;
    else if (key === 'tool') query.tool = value;
    else if (key === 'status') {
      if (!KNOWN_CALL_STATUSES.includes(value)) return { error: `Unknown status "${value}": use one of ${KNOWN_CALL_STATUSES.join(', ')}.` };
      query.status = value;
    } else {
      if (!/^\d+$/.test(value) || Number(value) < 1) return { error: `last:${value} is not a number of calls: use a whole number from 1 to ${TRACES_MAX}.` };
      const n = Number(value);
      query.last = Math.min(n, TRACES_MAX);
      query.capped = n > TRACES_MAX;
    }
  }
  return query;
}

// ---------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------

export function createInvokeCommand(deps: InvokeCommandDeps): InvokeCommand {
  const { db, traces, calls, approvals, registry } = deps;

  async function cardLinks(ids: string[]): Promise<Map<string, string>> {
    const links = new Map<string, string>();
    if (ids.length === 0) return links;
    const rows = await db
      .selectFrom('approvals')
      .select(['id', 'slack_channel', 'slack_ts'])
      .where('id', 'in', ids)
      .where('slack_channel', 'is not', null)
      .where('slack_ts', 'is not', null)
      .execute();
    for (const row of rows) {
      if (row.slack_channel && row.slack_ts) links.set(row.id, slackMessageLink(row.slack_channel, row.slack_ts, deps.slackTeamUrl));
    }
    return links;
  }

  function callLine(call: CallSummary, now: Date): string {
    return [
      `${callEmoji(call.status)} ${code(call.tool, 80)}`,
      `agent ${code(call.agent_id, 60)}`,
      escapeMrkdwn(call.status),
      plural(call.attempts, 'attempt'),
      ago(call.created_at, now),
      code(call.call_id, 80),
    ].join(' · ');
  }

  async function tracesCommand(args: string[], now: Date): Promise<SlackMessage> {
    const query = parseTracesArgs(args);
    if ('error' in query) return notice(query.error);
    const rows = await traces.listCalls({ agent_id: query.agent, tool: query.tool, status: query.status, limit: query.last });
    const filters = [
      query.agent !== undefined ? `agent ${code(query.agent, 60)}` : null,
      query.tool !== undefined ? `tool ${code(query.tool, 80)}` : null,
      query.status !== undefined ? `status ${code(query.status)}` : null,
    ].filter((f): f is string => f !== null);
    const title = `${bold('Recent calls')}${filters.length ? ` (${filters.join(', ')})` : ''}: ${rows.length === 0 ? 'none' : `newest first, ${plural(rows.length, 'call')}`}`;
    const b = new MessageBuilder(`Invoke: ${plural(rows.length, 'call')}`).section(title);
    if (rows.length === 0) b.section('No calls match.');
    else b.lines(rows.map((row) => callLine(row, now)));
    if (query.capped) b.context(`At most ${TRACES_MAX} calls are shown.`);
    b.context(`${code('/invoke trace <call_id>')} shows the timeline of one call.`);
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

  async function traceCommand(args: string[], now: Date): Promise<SlackMessage> {
    const [id, ...extra] = args;
    if (!id) return notice('Which call? Use /invoke trace <call_id> (the ids are in /invoke traces).');
    if (extra.length > 0) return notice('trace takes one call id, as in /invoke trace call_123.');
    const detail = (await calls.findCallDetails([id])).get(id);
    if (!detail) return notice(`No call ${id}.`);
    const events = await traces.eventsFor(id);
    const call = detail.summary;
    const answer = asRecord(detail.answer);
    const b = new MessageBuilder(`Invoke: call ${call.call_id} ${call.status}`);
    b.section(`${callEmoji(call.status)} ${bold('Call')} ${code(call.call_id, 80)} · ${escapeMrkdwn(call.status)}`);
    b.section(
      [
        `tool ${code(call.tool, 80)} · agent ${code(call.agent_id, 60)} · ${plural(call.attempts, 'attempt')}`,
        `started ${slackDate(call.created_at)} (${ago(call.created_at, now)})` +
          (call.finished_at ? ` · finished ${slackDate(call.finished_at)}` : '') +
          (call.duration_ms !== null ? ` · ${call.duration_ms} ms` : ''),
        call.idempotency_key ? `idempotency key ${code(call.idempotency_key, 80)}` : null,
      ]
        .filter((l): l is string => l !== null)
        .join('\n'),
    );
    b.divider();
    b.section(bold(`Timeline (${plural(events.length, 'step')})`));
    if (events.length === 0) b.section('No trace events recorded.');
    else b.lines(events.map((e) => eventLine(e, events[0])));
    b.divider();
    if (answer) {
      const status = str(answer.status) ?? call.status;
      const why = str(answer.reason) ?? str(answer.error);
      b.section(`${bold('Final answer:')} ${callEmoji(status)} ${escapeMrkdwn(status)}${why ? `: ${escapeMrkdwn(why, 500)}` : ''}`);
      const approval = asRecord(answer.approval);
      if (status === 'pending_approval' && approval && str(approval.id)) {
        b.context(`Waiting on approval ${code(String(approval.id))}: \`/invoke approval ${escapeMrkdwn(String(approval.id).replace(/`/g, ''), 100)}\``);
      }
    } else {
      b.section(`${bold('Final answer:')} none yet (the call is ${escapeMrkdwn(call.status)})`);
    }
    return b.build();
  }

  function approvalLine(a: ApprovalView, link: string | undefined, now: Date): string {
    return [
      `${RISK_EMOJI[a.risk] ?? ':white_circle:'} ${code(a.tool, 80)}`,
      `agent ${code(a.agent_id, 60)}`,
      `risk ${escapeMrkdwn(a.risk)}`,
      `expires ${slackDate(a.expires_at)} (${until(a.expires_at, now)})`,
      code(a.id, 80),
      link ? `<${link}|open card>` : 'no card',
    ].join(' · ');
  }

  async function approvalsCommand(args: string[], now: Date): Promise<SlackMessage> {
    if (args.length > 0) return notice('approvals takes no arguments; use /invoke approval <id> for one approval.');
    const [pending, total] = await Promise.all([
      approvals.list('pending', APPROVALS_SHOWN),
      db
        .selectFrom('approvals')
        .select((eb) => eb.fn.countAll<number | string | bigint>().as('n'))
        .where('status', '=', 'pending')
        .executeTakeFirstOrThrow(),
    ]);
    const count = Math.max(Number(total.n), pending.length);
    const links = await cardLinks(pending.map((a) => a.id));
    const b = new MessageBuilder(`Invoke: ${plural(count, 'pending approval')}`);
    b.section(`${bold('Pending approvals')}: ${count === 0 ? 'none' : `${count}, oldest first`}`);
    if (pending.length === 0) b.section('Nothing is waiting for a decision.');
    else b.lines(pending.map((a) => approvalLine(a, links.get(a.id), now)));
    if (count > pending.length) b.context(`Showing the oldest ${pending.length} of ${count}.`);
    return b.build();
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
    if (approver) lines.push(`by ${code(approver, 80)}`);
    if (view.decided_at) lines.push(`at ${slackDate(view.decided_at)}`);
    if (reason) lines.push(`reason: ${escapeMrkdwn(reason, 500)}`);
    if (comment) lines.push(`comment: ${escapeMrkdwn(comment, 300)}`);
    const newId = str(decision.new_approval_id);
    if (newId) lines.push(`replaced by ${code(newId)}`);
    if (lines.length === 0) lines.push(codeBlock(compactJson(decision), 600));
    return lines;
  }

  async function approvalCommand(args: string[], now: Date): Promise<SlackMessage> {
    const [id, ...extra] = args;
    if (!id) return notice('Which approval? Use /invoke approval <id> (the ids are in /invoke approvals).');
    if (extra.length > 0) return notice('approval takes one approval id, as in /invoke approval apr_123.');
    let view: ApprovalView;
    try {
      view = await approvals.get(id);
    } catch (error) {
      if (error instanceof NotFoundError) return notice(`No approval ${id}.`);
      throw error;
    }
    const link = (await cardLinks([view.id])).get(view.id);
    const emoji = APPROVAL_EMOJI[view.status] ?? ':grey_question:';
    const b = new MessageBuilder(`Invoke: approval ${view.id} ${view.status}`);
    b.section(`${emoji} ${bold('Approval')} ${code(view.id, 80)} · ${escapeMrkdwn(view.status)}${link ? ` · <${link}|open card>` : ''}`);
    const intent = str(view.checkpoint.contract?.intent);
    b.section(
      [
        `tool ${code(view.tool, 80)} · agent ${code(view.agent_id, 60)} · risk ${RISK_EMOJI[view.risk] ?? ''} ${escapeMrkdwn(view.risk)}`,
        intent ? `intent ${escapeMrkdwn(intent, 200)}` : null,
        `why: ${escapeMrkdwn(view.reason, 500)}`,
        `call ${code(view.call_id, 80)} · requested ${slackDate(view.created_at)} (${ago(view.created_at, now)})`,
        view.status === 'pending' ? `expires ${slackDate(view.expires_at)} (${until(view.expires_at, now)})` : null,
        view.approvals_required > 1 ? `approvals ${view.approvals.length} of ${view.approvals_required}${view.approvals.length ? `: ${view.approvals.map((v) => code(v.approver, 60)).join(', ')}` : ''}` : null,
        view.previous_approval_id ? `replaces ${code(view.previous_approval_id, 80)}` : null,
      ]
        .filter((l): l is string => l !== null)
        .join('\n'),
    );
    b.section(`${bold('Params')}\n${codeBlock(compactJson(view.checkpoint.params ?? {}), 1200)}`);
    b.section(`${bold('Decision')}\n${decisionLines(view).join('\n')}`);
    return b.build();
  }

  async function statsCommand(args: string[], now: Date): Promise<SlackMessage> {
    if (args.length > 1) return notice('stats takes at most one window: 24h or 7d.');
    const window = (args[0] ?? '24h').toLowerCase();
    if (!(window in WINDOWS)) return notice(`Unknown window "${args[0]}": use 24h or 7d.`);
    const since = new Date(now.getTime() - WINDOWS[window as StatsWindow]);
    type Count = number | string | bigint;

    const [byStatus, callTotals, replays, approvalsByStatus] = await Promise.all([
      db
        .selectFrom('calls')
        .select(['status', (eb) => eb.fn.countAll<Count>().as('n')])
        .where('created_at', '>=', since)
        .groupBy('status')
        .execute(),
      db
        .selectFrom('calls')
        .select((eb) => [
          eb.fn.countAll<Count>().as('total'),
          eb.fn.countAll<Count>().filterWhere('attempts', '>', 1).as('retried'),
          eb.fn.countAll<Count>().filterWhere('status', '=', 'outcome_reconciled').as('reconciled'),
        ])
        .where('created_at', '>=', since)
        .executeTakeFirstOrThrow(),
      db
        .selectFrom('idempotency_keys')
        .select((eb) => eb.fn.coalesce(eb.fn.sum<Count>('replays'), eb.lit(0)).as('replayed'))
        .where('created_at', '>=', since)
        .executeTakeFirstOrThrow(),
      db
        .selectFrom('approvals')
        .select(['status', (eb) => eb.fn.countAll<Count>().as('n')])
        .where('created_at', '>=', since)
        .groupBy('status')
        .execute(),
    ]);

    const counts = new Map(byStatus.map((r) => [r.status, Number(r.n)]));
    const statuses = [...CALL_STATUSES, ...[...counts.keys()].filter((s) => !(CALL_STATUSES as readonly string[]).includes(s)).sort()];
    const total = Number(callTotals.total);
    const approvalCounts = approvalsByStatus.map((r) => ({ status: r.status, n: Number(r.n) })).sort((a, b) => b.n - a.n || a.status.localeCompare(b.status));
    const approvalTotal = approvalCounts.reduce((sum, r) => sum + r.n, 0);

    const b = new MessageBuilder(`Invoke stats, last ${window}: ${plural(total, 'call')}`);
    b.section(`${bold(`Stats for the last ${window}`)} (since ${slackDate(since.toISOString())})`);
    b.section(
      [`${bold('Calls')}: ${total}`, ...statuses.map((s) => `${callEmoji(s)} ${escapeMrkdwn(s)}: ${counts.get(s) ?? 0}`)].join('\n'),
    );
    b.section(
      [
        `:repeat: ${bold('Retried')} (more than one attempt): ${Number(callTotals.retried)}`,
        `:arrows_counterclockwise: ${bold('Reconciled')}: ${Number(callTotals.reconciled)}`,
        `:recycle: ${bold('Duplicates replayed')}: ${Number(replays.replayed)}`,
      ].join('\n'),
    );
    b.section(
      [
        `${bold('Approvals')} (requested in the window): ${approvalTotal}`,
        ...approvalCounts.map((r) => `${APPROVAL_EMOJI[r.status] ?? ':grey_question:'} ${escapeMrkdwn(r.status)}: ${r.n}`),
      ].join('\n'),
    );
    return b.build();
  }

  async function toolsCommand(args: string[]): Promise<SlackMessage> {
    if (args.length > 0) return notice('tools takes no arguments.');
    const cards = (await registry.listCards()).sort((a, b) => a.key.localeCompare(b.key));
    const b = new MessageBuilder(`Invoke: ${plural(cards.length, 'tool')}`);
    b.section(`${bold('Tools')}: ${cards.length === 0 ? 'none registered' : cards.length}`);
    b.lines(
      cards.map((card) =>
        [
          `${RISK_EMOJI[card.risk] ?? ':white_circle:'} ${code(card.key, 100)}`,
          `risk ${escapeMrkdwn(card.risk)}`,
          card.side_effects ? 'side effects' : 'no side effects',
          ...(card.idempotent ? ['idempotent'] : []),
          ...(card.description ? [escapeMrkdwn(card.description, 120)] : []),
        ].join(' · '),
      ),
    );
    return b.build();
  }

  return {
    async run(text: string, now: Date): Promise<SlackMessage> {
      const [sub = '', ...args] = text.trim().split(/\s+/).filter(Boolean);
      switch (sub.toLowerCase()) {
        case '':
        case 'help':
          return helpMessage();
        case 'traces':
          return tracesCommand(args, now);
        case 'trace':
          return traceCommand(args, now);
        case 'approvals':
          return approvalsCommand(args, now);
        case 'approval':
          return approvalCommand(args, now);
        case 'stats':
          return statsCommand(args, now);
        case 'tools':
          return toolsCommand(args);
        default:
          return helpMessage(sub);
      }
    },
  };
}
