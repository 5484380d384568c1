import { CALL_STATUSES } from '../vocabulary.ts';

/**
 * What `/invoke <text>` asks for, read from its text alone: no store, no clock. A mistake in
 * the arguments is a request too (`invalid`, with the sentence to show), never an exception.
 */

export const TRACES_DEFAULT = 10;
export const TRACES_MAX = 50;

/** Stats windows and their length in milliseconds. */
export const STATS_WINDOWS = { '24h': 24 * 3_600_000, '7d': 7 * 24 * 3_600_000 } as const;
export type StatsWindow = keyof typeof STATS_WINDOWS;

/** A call still running has this status in the store, though no answer ever carries it. */
export const FILTERABLE_CALL_STATUSES: readonly string[] = [...CALL_STATUSES, 'in_flight'];

/** Each subcommand's usage and what it answers, in the order `/invoke help` lists them. */
export const USAGE: ReadonlyArray<readonly [usage: string, what: string]> = [
  ['traces [agent:X] [tool:Y] [status:Z] [last:N]', `recent calls, newest first (N defaults to ${TRACES_DEFAULT}, at most ${TRACES_MAX})`],
  ['trace <call_id>', 'the timeline of one call: each step, its status and time, and the final answer'],
  ['approvals [mine]', 'pending approvals, oldest first: intent, reason, agent, risk, params, expiry and a link to the card; with mine, only those you may decide'],
  ['approval <id>', "one approval's details: status, tool, params, decision"],
  ['stats [24h|7d]', 'calls by outcome, retries, reconciliations, replayed duplicates, approvals by decision (default 24h)'],
  ['tools', 'the registered tools: key, risk, side effects'],
  ['help', 'this help'],
];

export interface TracesQuery {
  agent?: string;
  tool?: string;
  status?: string;
  last: number;
  /** The reader asked for more than `TRACES_MAX`. */
  capped: boolean;
}

export type InvokeRequest =
  | { command: 'help' }
  | { command: 'unknown'; name: string }
  | { command: 'invalid'; message: string }
  | { command: 'traces'; query: TracesQuery }
  | { command: 'trace'; callId: string }
  /** `mine`: only the approvals the caller may decide. */
  | { command: 'approvals'; mine: boolean }
  | { command: 'approval'; approvalId: string }
  | { command: 'stats'; window: StatsWindow }
  | { command: 'tools' };

export function parseInvokeCommand(text: string): InvokeRequest {
  const [sub = '', ...args] = text.trim().split(/\s+/).filter(Boolean);
  switch (sub.toLowerCase()) {
    case '':
    case 'help':
      return { command: 'help' };
    case 'traces':
      return parseTraces(args);
    case 'trace':
      return parseOneId(args, {
        missing: 'Which call? Use /invoke trace <call_id> (the ids are in /invoke traces).',
        extra: 'trace takes one call id, as in /invoke trace call_123.',
        build: (callId) => ({ command: 'trace', callId }),
      });
    case 'approvals':
      return parseApprovals(args);
    case 'approval':
      return parseOneId(args, {
        missing: 'Which approval? Use /invoke approval <id> (the ids are in /invoke approvals).',
        extra: 'approval takes one approval id, as in /invoke approval apr_123.',
        build: (approvalId) => ({ command: 'approval', approvalId }),
      });
    case 'stats':
      return parseStats(args);
    case 'tools':
      return args.length > 0 ? invalid('tools takes no arguments.') : { command: 'tools' };
    default:
      return { command: 'unknown', name: sub };
  }
}

function invalid(message: string): InvokeRequest {
  return { command: 'invalid', message };
}

function parseOneId(args: string[], how: { missing: string; extra: string; build: (id: string) => InvokeRequest }): InvokeRequest {
  const [id, ...extra] = args;
  if (!id) return invalid(how.missing);
  if (extra.length > 0) return invalid(how.extra);
  return how.build(id);
}

function parseApprovals(args: string[]): InvokeRequest {
  if (args.length === 0) return { command: 'approvals', mine: false };
  if (args.length === 1 && args[0]!.toLowerCase() === 'mine') return { command: 'approvals', mine: true };
  return invalid('approvals takes at most one word, mine (only those you may decide); use /invoke approval <id> for one approval.');
}

function parseStats(args: string[]): InvokeRequest {
  if (args.length > 1) return invalid('stats takes at most one window: 24h or 7d.');
  const window = (args[0] ?? '24h').toLowerCase();
  if (!Object.hasOwn(STATS_WINDOWS, window)) return invalid(`Unknown window "${args[0]}": use 24h or 7d.`);
  return { command: 'stats', window: window as StatsWindow };
}

function parseTraces(args: string[]): InvokeRequest {
  const query: TracesQuery = { last: TRACES_DEFAULT, capped: false };
  for (const arg of args) {
    const colon = arg.indexOf(':');
    const key = colon > 0 ? arg.slice(0, colon).toLowerCase() : '';
    const value = colon > 0 ? arg.slice(colon + 1) : '';
    if (!['agent', 'tool', 'status', 'last'].includes(key)) {
      return invalid(`Unknown filter "${arg}": use agent:X, tool:Y, status:Z or last:N.`);
    }
    if (value === '') return invalid(`The filter ${key}: needs a value, as in ${key}:${key === 'last' ? '20' : 'x'}.`);
    if (key === 'agent') query.agent = value;
    else if (key === 'tool') query.tool = value;
    else if (key === 'status') {
      if (!FILTERABLE_CALL_STATUSES.includes(value)) return invalid(`Unknown status "${value}": use one of ${FILTERABLE_CALL_STATUSES.join(', ')}.`);
      query.status = value;
    } else {
      if (!/^\d+$/.test(value) || Number(value) < 1) return invalid(`last:${value} is not a number of calls: use a whole number from 1 to ${TRACES_MAX}.`);
      const n = Number(value);
      query.last = Math.min(n, TRACES_MAX);
      query.capped = n > TRACES_MAX;
    }
  }
  return { command: 'traces', query };
}
