/**
 * Invoke as an MCP server: `tools/list` shows the tools a key may use, `tools/call` runs them
 * through the same call service as `POST /v1/call` (scopes, policy, idempotency, retries,
 * reconciliation, traces). A call that needs a human waits for the decision for a while,
 * reporting progress, and otherwise answers how to check again (`invoke.approval_status`).
 *
 * One low-level SDK `Server` per HTTP request, bound to the key that request authenticated:
 * nothing is kept between requests, so any replica can answer any request.
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { CallToolRequestSchema, ListToolsRequestSchema, type CallToolRequest, type CallToolResult, type ServerNotification } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { ApprovalService } from '../approvals/approval-service.ts';
import type { KeyIdentity } from '../auth/keyring.ts';
import { hasScope, mayUseTool } from '../auth/scopes.ts';
import { callRequestSchema } from '../calls/call-request.ts';
import type { CallService } from '../calls/call-service.ts';
import type { CallAnswer } from '../calls/call-types.ts';
import type { Config } from '../config.ts';
import { AppError, ForbiddenError, NotFoundError } from '../errors.ts';
import { parseInput } from '../http/validation.ts';
import { riskNeedsApproval } from '../policy/policy.ts';
import type { ToolRegistry } from '../tools/tool-registry.ts';
import { waitForDecision, type WaitOutcome, type WaitProgress } from './approval-wait.ts';
import { agentAnswer, callAnswerResult, errorResult, structuredResult } from './call-results.ts';
import { approvalStatusTool, mcpToolFor } from './tool-listing.ts';
import { APPROVAL_STATUS_TOOL, cardKeyOf } from './tool-names.ts';

const SERVER_INFO = { name: 'invoke', version: '0.1.0' };

const INSTRUCTIONS =
  'Tools called here run through Invoke: checked against policy, retried safely, traced, and frozen for a human approval (in Slack) when they are risky. ' +
  `A call that waits for approval answers with an approval_id: call ${APPROVAL_STATUS_TOOL} with it to learn the outcome, rather than repeating the call. ` +
  'Send _meta.idempotency_key with a call you might repeat, so a repeat replays the first answer instead of running twice.';

/** What a key's call may name in `_meta`, beside the tool's arguments. */
const CALL_META_FIELDS = ['agent_id', 'idempotency_key', 'env', 'workflow', 'action', 'resource'] as const;

/** The stored record of a call, as far as the gateway reads it. */
export interface CallRecord {
  api_key_id: string;
  answer: CallAnswer | null;
}

export interface McpGatewayDeps {
  config: Pick<Config, 'mcpApprovalWaitMs' | 'approvalWaitMaxMs' | 'requireApprovalAt' | 'slack'>;
  registry: Pick<ToolRegistry, 'listCards'>;
  calls: Pick<CallService, 'call'>;
  approvals: Pick<ApprovalService, 'get'>;
  callRecord: (callId: string) => Promise<CallRecord | null>;
  /** A link to the approval's Slack card, once it is posted. */
  cardLink: (approvalId: string) => Promise<string | null>;
  log: { warn: (obj: object, msg: string) => void };
}

type CallExtra = { signal: AbortSignal; sendNotification: (notification: ServerNotification) => Promise<void> };

const approvalStatusArgs = z
  .object({
    approval_id: z.string().min(1).max(200),
    wait_seconds: z.number().int().min(0).default(0),
  })
  .strict();

/** The agent a call is made for: named in `_meta`, else the one the key is bound to, else the key's name. */
function defaultAgentId(identity: KeyIdentity): string {
  const limits = identity.limits;
  const onlyAgent = limits?.agents?.length === 1 ? limits.agents[0] : undefined;
  return limits?.agent_id ?? onlyAgent ?? limits?.name ?? 'mcp';
}

/** The `/v1/call` body an MCP `tools/call` stands for: the arguments are the params, `_meta` names the rest. */
function callBodyOf(identity: KeyIdentity, params: CallToolRequest['params']): unknown {
  const meta: Record<string, unknown> = params._meta ?? {};
  const named = Object.fromEntries(CALL_META_FIELDS.filter((field) => meta[field] !== undefined).map((field) => [field, meta[field]]));
  return { tool: cardKeyOf(params.name), params: params.arguments ?? {}, agent_id: defaultAgentId(identity), ...named };
}

export function createMcpGateway(deps: McpGatewayDeps) {
  const { config, registry, calls, approvals, log } = deps;
  const maxWaitSeconds = Math.floor(config.mcpApprovalWaitMs / 1000);
  const waitDeps = {
    approvals,
    answerOf: async (callId: string) => (await deps.callRecord(callId))?.answer ?? null,
    longPollMaxMs: config.approvalWaitMaxMs,
  };

  async function listTools(identity: KeyIdentity) {
    const cards = (await registry.listCards()).filter((card) => mayUseTool(identity, card));
    const tools = cards.flatMap((card) => mcpToolFor(card, riskNeedsApproval(card.risk, config.requireApprovalAt)) ?? []);
    if (hasScope(identity, 'tools:call') || hasScope(identity, 'approvals:read')) tools.push(approvalStatusTool(maxWaitSeconds));
    return { tools };
  }

  /** Progress reports while waiting, when the client asked for them (sent a progress token). */
  function progressReporter(request: CallToolRequest, extra: CallExtra): (progress: WaitProgress) => Promise<void> {
    const token = request.params._meta?.progressToken;
    let last = -1;
    return async ({ approval, waitedMs, totalMs }) => {
      if (token === undefined) return;
      // Progress must grow with each report.
      last = Math.max(waitedMs / 1000, last + 0.001);
      const message = `Waiting for approval ${approval.id} (${approval.status}) of ${approval.tool}: ${Math.round(waitedMs / 1000)} s of ${Math.round(totalMs / 1000)} s`;
      await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: last, total: totalMs / 1000, message } }).catch(() => {});
    };
  }

  /** Where the approval is decided, and how the agent checks again: the answer of a call still waiting. */
  async function stillWaiting(outcome: WaitOutcome, first: CallAnswer): Promise<CallToolResult> {
    const { approval } = outcome;
    const current = approval.id === first.approval?.id ? first : ((await waitDeps.answerOf(approval.call_id)) ?? first);
    const cardUrl = config.slack ? await deps.cardLink(approval.id) : null;
    const where = config.slack
      ? cardUrl
        ? `An approver decides it in Slack: ${cardUrl}`
        : 'Its approval card is being posted in Slack, where an approver decides it.'
      : 'An approver decides it through the Invoke API or dashboard.';
    const checkAgain = { tool: APPROVAL_STATUS_TOOL, arguments: { approval_id: approval.id, wait_seconds: maxWaitSeconds } };
    const preface =
      `This call is waiting for a human approval (approval ${approval.id}, expires ${approval.expires_at}). ${where} ` +
      `It runs once approved; do not repeat it. Check its outcome with the ${APPROVAL_STATUS_TOOL} tool and ${JSON.stringify(checkAgain.arguments)}.`;
    const waiting = {
      approval_id: approval.id,
      status: approval.status,
      expires_at: approval.expires_at,
      slack: Boolean(config.slack),
      card_url: cardUrl,
      check_again: checkAgain,
    };
    return structuredResult({ ...agentAnswer(current), waiting_for_approval: waiting }, false, preface);
  }

  async function runCall(identity: KeyIdentity, request: CallToolRequest, extra: CallExtra, closed: AbortSignal): Promise<CallToolResult> {
    const body = parseInput(callRequestSchema, callBodyOf(identity, request.params), 'tools/call');
    const { answer } = await calls.call(identity, body);
    const approvalId = answer.approval?.id;
    const waits = (answer.status === 'pending_approval' || answer.status === 'escalated') && approvalId !== undefined;
    if (!waits) return callAnswerResult(answer);
    const signal = AbortSignal.any([extra.signal, closed]);
    const outcome = await waitForDecision(waitDeps, approvalId, config.mcpApprovalWaitMs, signal, progressReporter(request, extra));
    return outcome.answer ? callAnswerResult(outcome.answer) : stillWaiting(outcome, answer);
  }

  async function approvalStatus(identity: KeyIdentity, request: CallToolRequest, extra: CallExtra, closed: AbortSignal): Promise<CallToolResult> {
    if (!hasScope(identity, 'tools:call') && !hasScope(identity, 'approvals:read')) {
      throw new ForbiddenError('This API key lacks the scope tools:call (or approvals:read)', { missing_scope: 'tools:call' });
    }
    const args = parseInput(approvalStatusArgs, request.params.arguments, 'arguments');
    const first = await approvals.get(args.approval_id);
    // A key sees the approvals of its own calls; reading others' takes approvals:read.
    const record = await deps.callRecord(first.call_id);
    if (!hasScope(identity, 'approvals:read') && record?.api_key_id !== identity.id) {
      throw new NotFoundError(`No approval ${args.approval_id}`, { approval_id: args.approval_id });
    }
    const waitMs = Math.min(args.wait_seconds, maxWaitSeconds) * 1000;
    const signal = AbortSignal.any([extra.signal, closed]);
    const outcome = await waitForDecision(waitDeps, first.id, waitMs, signal, progressReporter(request, extra));
    const { approval, answer } = outcome;
    const shown = { id: approval.id, call_id: approval.call_id, tool: approval.tool, status: approval.status, expires_at: approval.expires_at, decided_at: approval.decided_at };
    if (answer) return structuredResult({ approval: shown, decided: true, call: agentAnswer(answer) }, false);
    const cardUrl = config.slack ? await deps.cardLink(approval.id) : null;
    return structuredResult({ approval: shown, decided: false, card_url: cardUrl, call: null }, false, `Approval ${approval.id} is still ${approval.status}.`);
  }

  return {
    /** An MCP server for one request of one key; `closed` aborts when that request's connection closes. */
    serverFor(identity: KeyIdentity, closed: AbortSignal): Server {
      const server = new Server(SERVER_INFO, { capabilities: { tools: { listChanged: false } }, instructions: INSTRUCTIONS });
      server.setRequestHandler(ListToolsRequestSchema, () => listTools(identity));
      server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
        try {
          if (request.params.name === APPROVAL_STATUS_TOOL) return await approvalStatus(identity, request, extra, closed);
          return await runCall(identity, request, extra, closed);
        } catch (error) {
          if (!(error instanceof AppError)) log.warn({ err: error, tool: request.params.name }, 'MCP tools/call failed');
          return errorResult(error);
        }
      });
      return server;
    },
  };
}
export type McpGateway = ReturnType<typeof createMcpGateway>;
