import type { Kysely } from 'kysely';
import type { ApprovalService, ApprovalView } from '../approvals/approval-service.ts';
import type { CallsRepository } from '../calls/calls-repository.ts';
import type { Database } from '../db/schema.ts';
import { NotFoundError } from '../errors.ts';
import type { ToolRegistry } from '../tools/tool-registry.ts';
import type { TracesRepository } from '../traces/traces-repository.ts';
import type { SlackMessage } from './card-types.ts';
import { createCommandQueriesRepository } from './command-queries-repository.ts';
import { STATS_WINDOWS, parseInvokeCommand, type StatsWindow, type TracesQuery } from './invoke-command-parse.ts';
import {
  renderApproval,
  renderCallList,
  renderCallTimeline,
  renderHelp,
  renderNotAnApprover,
  renderNotice,
  renderPendingApprovals,
  renderStats,
  renderTools,
} from './invoke-rendering.ts';
import { slackMessageLink } from './mrkdwn.ts';

/**
 * `/invoke <text>`: read-only queries over calls, traces, approvals and tools, answered as one
 * ephemeral Block Kit message. Parsing (`invoke-command-parse.ts`) and rendering
 * (`invoke-rendering.ts`) are pure; this file loads what the parsed request needs and hands it
 * over. Argument errors are answers, never exceptions; only a failing store throws (the Slack
 * app turns that into a generic reply).
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

/** Who runs the command, as the Slack app verified them. */
export interface CommandCaller {
  /** The Slack user id. */
  userId: string;
  /** Whether they are in the global approver list (SLACK_APPROVER_IDS), for the answer when nothing is theirs to decide. */
  isApprover: () => Promise<boolean>;
}

export interface InvokeCommand {
  run(text: string, now: Date, caller: CommandCaller): Promise<SlackMessage>;
}

const APPROVALS_SHOWN = 25;
export function createInvokeCommand(deps: InvokeCommandDeps): InvokeCommand {
  const { traces, calls, approvals, registry } = deps;
  const queries = createCommandQueriesRepository(deps.db);

  async function cardLinks(approvalIds: string[]): Promise<Map<string, string>> {
    const posts = await queries.cardPosts(approvalIds);
    return new Map([...posts].map(([id, post]) => [id, slackMessageLink(post.channel, post.ts, deps.slackTeamUrl)]));
  }

  async function callList(query: TracesQuery, now: Date): Promise<SlackMessage> {
    const rows = await traces.listCalls({ agent_id: query.agent, tool: query.tool, status: query.status, limit: query.last });
    return renderCallList(query, rows, now);
  }

  async function callTimeline(callId: string, now: Date): Promise<SlackMessage> {
    const detail = (await calls.findCallDetails([callId])).get(callId);
    if (!detail) return renderNotice(`No call ${callId}.`);
    return renderCallTimeline(detail.summary, detail.answer, detail.trace, now);
  }

  async function pendingApprovals(now: Date): Promise<SlackMessage> {
    const [pending, total] = await Promise.all([approvals.list('pending', APPROVALS_SHOWN), queries.countPendingApprovals()]);
    return renderPendingApprovals(pending, total, await cardLinks(pending.map((a) => a.id)), now);
  }

  async function approvalsForCaller(caller: CommandCaller, now: Date): Promise<SlackMessage> {
    // The decision check itself (routing, self-approval, quorum votes): what a click would be allowed.
    const { approvals: mine, scannedAll } = await approvals.pendingDecidableBy({ approver: caller.userId, via: 'slack' });
    if (mine.length === 0 && !(await caller.isApprover())) return renderNotAnApprover();
    const shown = mine.slice(0, APPROVALS_SHOWN);
    return renderPendingApprovals(shown, mine.length, await cardLinks(shown.map((a) => a.id)), now, {
      mine: true,
      scannedAll,
    });
  }

  async function oneApproval(approvalId: string, now: Date): Promise<SlackMessage> {
    let view: ApprovalView;
    try {
      view = await approvals.get(approvalId);
    } catch (error) {
      if (error instanceof NotFoundError) return renderNotice(`No approval ${approvalId}.`);
      throw error;
    }
    return renderApproval(view, (await cardLinks([view.id])).get(view.id), now);
  }

  async function stats(window: StatsWindow, now: Date): Promise<SlackMessage> {
    const since = new Date(now.getTime() - STATS_WINDOWS[window]);
    // This process's replay counts, held a second at most, count too.
    await calls.flushReplays();
    return renderStats(window, since, await queries.statsSince(since));
  }

  return {
    async run(text: string, now: Date, caller: CommandCaller): Promise<SlackMessage> {
      const request = parseInvokeCommand(text);
      switch (request.command) {
        case 'help':
          return renderHelp();
        case 'unknown':
          return renderHelp(request.name);
        case 'invalid':
          return renderNotice(request.message);
        case 'traces':
          return callList(request.query, now);
        case 'trace':
          return callTimeline(request.callId, now);
        case 'approvals':
          return request.mine ? approvalsForCaller(caller, now) : pendingApprovals(now);
        case 'approval':
          return oneApproval(request.approvalId, now);
        case 'stats':
          return stats(request.window, now);
        case 'tools':
          return renderTools(await registry.listCards());
      }
    },
  };
}
