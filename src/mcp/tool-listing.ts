import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import type { CapabilityCard } from '../tools/types.ts';
import { APPROVAL_STATUS_TOOL, mcpToolName } from './tool-names.ts';

/** Risks whose side effects are taken as destructive (MCP's `destructiveHint`); lower ones as additive. */
const DESTRUCTIVE_RISKS: ReadonlySet<string> = new Set(['high', 'critical']);

/** MCP requires an object schema; a card whose schema names no type takes any object. */
function objectSchema(schema: Record<string, unknown>): Tool['inputSchema'] {
  return { ...schema, type: 'object' };
}

/**
 * A capability card as an MCP tool. The hints come from the card: read-only when the tool has no
 * side effects, destructive when it has them at high or critical risk, idempotent as the card
 * says. The description names the risk, so a model knows a call may wait for a human.
 */
export function mcpToolFor(card: CapabilityCard, riskNeedsApproval: boolean): Tool | null {
  const name = mcpToolName(card.key);
  if (name === null) return null;
  const approval = riskNeedsApproval ? ' Calls wait for a human approval (in Slack) before they run.' : '';
  const description = [card.description.trim(), `Risk: ${card.risk}.${card.side_effects ? '' : ' Read-only.'}${approval}`].filter(Boolean).join('\n\n');
  return {
    name,
    title: card.name,
    description,
    inputSchema: objectSchema(card.input_schema),
    annotations: {
      title: card.name,
      readOnlyHint: !card.side_effects,
      destructiveHint: card.side_effects && DESTRUCTIVE_RISKS.has(card.risk),
      idempotentHint: card.idempotent,
      openWorldHint: true,
    },
    _meta: { 'invoke/key': card.key, 'invoke/risk': card.risk },
  };
}

/** The gateway's own tool, listed beside the cards. */
export function approvalStatusTool(maxWaitSeconds: number): Tool {
  return {
    name: APPROVAL_STATUS_TOOL,
    title: 'Approval status',
    description:
      'The status of an approval a call of yours is waiting for, and the final answer of that call once it is decided. ' +
      `Use the approval_id a call answered with; wait_seconds (up to ${maxWaitSeconds}) waits for the decision before answering.`,
    inputSchema: {
      type: 'object',
      properties: {
        approval_id: { type: 'string', minLength: 1, maxLength: 200, description: 'The approval id a call answered with.' },
        wait_seconds: { type: 'integer', minimum: 0, maximum: maxWaitSeconds, default: 0, description: 'How long to wait for a decision before answering.' },
      },
      required: ['approval_id'],
      additionalProperties: false,
    },
    annotations: { title: 'Approval status', readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  };
}
