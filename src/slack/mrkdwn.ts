import type { ApprovalStatus, CallStatus, RiskLevel } from '../vocabulary.ts';

/**
 * The one Slack mrkdwn toolkit: escaping, bold, inline code, code blocks, dates, truncation to
 * Slack's limits and the emoji for each status and risk. Approval cards (`blocks.ts`) and
 * `/invoke` answers (`invoke-rendering.ts`) both write their text with these, so the same status
 * looks the same and user text is escaped the same way everywhere.
 */

/** Slack's Block Kit limits, plus our own ceiling for the whole message (`msg_blocks_too_long`). */
export const SLACK_LIMITS = {
  headerText: 150,
  sectionText: 3000,
  sectionFields: 10,
  fieldText: 2000,
  contextElements: 10,
  actionsElements: 25,
  buttonText: 75,
  buttonValue: 2000,
  actionId: 255,
  blockId: 255,
  confirmTitle: 100,
  confirmText: 300,
  blocks: 50,
  /** Slack's undocumented limit is about 13k characters; we keep the blocks' JSON under this. */
  totalChars: 12_000,
} as const;

export const ELLIPSIS = '…';

// ---------------------------------------------------------------------------------------------
// Escaping and truncation
// ---------------------------------------------------------------------------------------------

/** Slack's escaping: `&`, `<` and `>` are its control characters (mentions, links, dates). */
export function escapeText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Cuts `s` to at most `max` characters, ending with "…" when cut; never splits a surrogate pair. */
export function truncate(s: string, max: number): string {
  if (s.length <= max) return s;
  if (max <= 0) return '';
  let cut = max - 1;
  if (cut > 0 && isHighSurrogate(s.charCodeAt(cut - 1))) cut -= 1;
  return s.slice(0, cut) + ELLIPSIS;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

interface FitOptions {
  /** Inside a code block: break runs of backticks so user text cannot close the block. */
  code?: boolean;
}

/**
 * Length of the longest prefix of `raw` whose escaped form fits in `budget` characters. Counts
 * entities whole and surrogate pairs whole, so a cut never leaves `&am` or half an emoji.
 */
function fittingPrefix(raw: string, budget: number, options: FitOptions = {}): number {
  let used = 0;
  let i = 0;
  while (i < raw.length) {
    const ch = raw[i]!;
    const width = isHighSurrogate(raw.charCodeAt(i)) && i + 1 < raw.length ? 2 : 1;
    let cost = width;
    if (ch === '&') cost = 5;
    else if (ch === '<' || ch === '>') cost = 4;
    else if (options.code && ch === '`' && raw[i + 1] === '`') cost = 2;
    if (used + cost > budget) break;
    used += cost;
    i += width;
  }
  return i;
}

/** Escapes for a code block: a zero-width space between backticks keeps "```" from closing it. */
function escapeCode(raw: string): string {
  return escapeText(raw).replace(/`(?=`)/g, '`\u200b');
}

/** User text for mrkdwn: escaped, then cut to `max` characters (ending with "…" when cut). */
export function escapeMrkdwn(raw: string, max = Infinity): string {
  const whole = escapeText(raw);
  if (whole.length <= max) return whole;
  if (max <= 0) return '';
  return escapeText(raw.slice(0, fittingPrefix(raw, max - 1))) + ELLIPSIS;
}

/** Cuts mrkdwn we composed without leaving half an entity (`&am`) or half a `<…>` sequence. */
export function truncateMrkdwn(text: string, max: number): string {
  if (text.length <= max) return text;
  let head = truncate(text, max).slice(0, -1);
  const openAngle = head.lastIndexOf('<');
  if (openAngle > head.lastIndexOf('>')) head = head.slice(0, openAngle);
  const amp = head.lastIndexOf('&');
  if (amp !== -1 && head.indexOf(';', amp) === -1 && head.length - amp <= 5) head = head.slice(0, amp);
  return head + ELLIPSIS;
}

// ---------------------------------------------------------------------------------------------
// Markup
// ---------------------------------------------------------------------------------------------

/** Bold around text that is already mrkdwn (escaped by the caller). */
export function bold(mrkdwn: string): string {
  return `*${mrkdwn}*`;
}

/**
 * Inline code for a user value. A backtick would end the span early, so it is shown as the
 * look-alike "ˋ" (U+02CB); the value is escaped and cut to `max` characters, ticks included.
 */
export function inlineCode(raw: string, max = 120): string {
  return '`' + escapeMrkdwn(raw.replace(/`/g, '\u02cb'), Math.max(1, max - 2)) + '`';
}

/**
 * A fenced code block on its own lines whose whole text (fences and the truncation note
 * included) fits in `max`. When cut, a visible note says how many characters were left out.
 */
export function codeBlock(raw: string, max: number): string {
  const open = '```\n';
  const close = '\n```';
  const whole = open + escapeCode(raw) + close;
  if (whole.length <= max) return whole;
  const note = (n: number): string => `\n_${ELLIPSIS} (truncated, ${n} more characters)_`;
  // The note's length depends on N; reserve room for the longest N it could be.
  const budget = Math.max(0, max - open.length - close.length - note(raw.length).length);
  const shown = fittingPrefix(raw, budget, { code: true });
  return open + escapeCode(raw.slice(0, shown)) + close + note(raw.length - shown);
}

/**
 * A code block on one line (```{"a":1}```) for short values in list answers; at most `max`
 * characters, fences included, ending with "…" inside the fences when cut.
 */
export function compactCodeBlock(raw: string, max: number): string {
  const fence = '```';
  // A backtick next to a fence would merge with it: pad it with a zero-width space.
  const pad = (escaped: string): string => escaped.replace(/^`/, '\u200b`').replace(/`$/, '`\u200b');
  const whole = fence + pad(escapeCode(raw)) + fence;
  if (whole.length <= max) return whole;
  const shown = fittingPrefix(raw, Math.max(0, max - 2 * fence.length - ELLIPSIS.length - 2), { code: true });
  return fence + pad(escapeCode(raw.slice(0, shown))) + ELLIPSIS + fence;
}

/** Slack date formatting: rendered in the reader's time zone, ISO 8601 as the fallback. */
export function slackDate(when: Date | string): string {
  const date = typeof when === 'string' ? new Date(when) : when;
  const ms = date.getTime();
  if (Number.isNaN(ms)) return 'an unknown time';
  return `<!date^${Math.floor(ms / 1000)}^{date_short_pretty} {time}|${date.toISOString()}>`;
}

/** Slack's permalink shape; the workspace URL, when known, avoids a redirect. */
export function slackMessageLink(channel: string, ts: string, teamUrl = 'https://slack.com'): string {
  return `${teamUrl.replace(/(?<!\/)\/+$/, '')}/archives/${encodeURIComponent(channel)}/p${encodeURIComponent(ts.replace('.', ''))}`;
}

// ---------------------------------------------------------------------------------------------
// Emoji: one per risk, one per status, wherever it is shown
// ---------------------------------------------------------------------------------------------

export const RISK_EMOJI: Readonly<Record<RiskLevel, string>> = {
  low: ':large_green_circle:',
  medium: ':large_yellow_circle:',
  high: ':large_orange_circle:',
  critical: ':red_circle:',
};

/** Words that are statuses of calls or approvals, or outcomes of a decision, with their emoji. */
export const STATUS_EMOJI: Readonly<Record<CallStatus | ApprovalStatus | 'in_flight' | 'requeued', string>> = {
  pending: ':hourglass_flowing_sand:',
  pending_approval: ':hourglass_flowing_sand:',
  in_flight: ':arrows_clockwise:',
  // Approved and its thaw under way: not yet executed.
  approved: ':arrows_clockwise:',
  executed: ':white_check_mark:',
  failed: ':x:',
  rejected: ':no_entry_sign:',
  expired: ':alarm_clock:',
  cancelled: ':heavy_multiplication_x:',
  blocked: ':no_entry:',
  escalated: ':arrow_double_up:',
  replan_required: ':leftwards_arrow_with_hook:',
  // Both name one event: state drifted, the approval was set aside and a fresh one posted.
  requeued: ':repeat:',
  invalidated: ':repeat:',
  outcome_reconciled: ':arrows_counterclockwise:',
  unknown_outcome: ':grey_question:',
};

/** Shown for a status or outcome Invoke has no emoji for (a newer word read by older code). */
export const UNKNOWN_STATUS_EMOJI = ':information_source:';

export function hasStatusEmoji(status: string): status is keyof typeof STATUS_EMOJI {
  return Object.hasOwn(STATUS_EMOJI, status);
}

export function statusEmoji(status: string): string {
  return hasStatusEmoji(status) ? STATUS_EMOJI[status] : UNKNOWN_STATUS_EMOJI;
}

export function riskEmoji(risk: string): string {
  return Object.hasOwn(RISK_EMOJI, risk) ? RISK_EMOJI[risk as RiskLevel] : ':white_circle:';
}
