import { z } from 'zod';
import { openObject } from '../http/error-schema.ts';
import { stateRefetchSchema } from '../tools/schemas.ts';
import { callRequestSchema } from './call-request.ts';
import { CALL_STATUSES } from './call-types.ts';

export { callRequestSchema };

const record = z.record(z.string(), z.unknown());

/** One step of a call's trace. Open: each step carries its own detail fields. */
export const traceEventSchema = openObject({ step: z.string(), status: z.string(), at: z.string() });

/** Who edited a call's params before approving it, and what changed (param-edit.ts). */
export const paramEditSchema = z.object({
  by: z.string(),
  at: z.string(),
  original_params: record,
  params: record,
  /** One entry per changed path: `old` and/or `new` as the change is removed, added or changed. */
  diff: z.array(z.object({ path: z.string(), change: z.enum(['added', 'removed', 'changed']), old: z.unknown().optional(), new: z.unknown().optional() })),
  original_digest: z.string(),
  action_digest: z.string(),
});

/** The pending approval a frozen (202) answer carries; the agent waits on its `id`. */
export const approvalSummarySchema = openObject({
  id: z.string(),
  status: z.string(),
  reason: z.string(),
  risk: z.string(),
  expires_at: z.string(),
  approvals_required: z.number(),
  frozen_state: record.nullable(),
  previous_approval_id: z.string().optional(),
  /** A signed, single-use link to the approval's review page, when INVOKE_LINK_SECRET is set. */
  review_url: z.string().optional(),
});

/**
 * What `/v1/call` answers (200 decided, 202 waiting for a human). Open: `result` is whatever
 * the tool returned, and outcome-specific fields (approval, reconciliation, fallback...) come
 * and go with the status.
 */
export const callAnswerSchema = openObject({
  status: z.enum(CALL_STATUSES),
  call_id: z.string(),
  tool: z.string(),
  agent_id: z.string(),
  attempts: z.number(),
  result: z.unknown().optional(),
  error: z.string().optional(),
  reason: z.string().optional(),
  approval: approvalSummarySchema.optional(),
  mismatches: z.array(z.unknown()).optional(),
  reconciliation: record.optional(),
  fallback: z.object({ tool: z.string(), used: z.boolean() }).optional(),
  /** Set when an approver edited the params before approving: what ran is `edited.params`. */
  edited: paramEditSchema.optional(),
  trace: z.array(traceEventSchema),
});

export const verifyRequestSchema = z
  .object({
    intent: z.string().min(1).max(200),
    required_fields: z.array(z.string().min(1).max(200)).max(200).default([]),
    assumed_state: record.default({}),
    current_state: record.optional(),
    state_refetch: stateRefetchSchema.optional(),
    conditions: record.default({}),
    on_mismatch: z.enum(['replan', 'block']).default('replan'),
    agent_id: z.string().min(1).max(200).optional(),
  })
  .strict();
export type VerifyRequest = z.infer<typeof verifyRequestSchema>;

export const verifyAnswerSchema = openObject({
  status: z.enum(['verified', 'mismatch_detected']),
  decision: z.string(),
  mismatches: z.array(z.unknown()),
  intent: z.string(),
  state_source: z.string(),
  current_state: record,
});

export const reconcileRequestSchema = z
  .object({
    action: z.object({ intent: z.string().max(200).optional(), tool: z.string().max(200).optional(), params: record.default({}) }).strict(),
    outcome: z.literal('UNKNOWN'),
    current_state: record.optional(),
    state_refetch: stateRefetchSchema.optional(),
    conditions: record.refine((c) => Object.keys(c).length > 0, 'reconciliation needs at least one condition'),
    agent_id: z.string().min(1).max(200).optional(),
  })
  .strict();
export type ReconcileRequest = z.infer<typeof reconcileRequestSchema>;

export const reconcileAnswerSchema = openObject({
  decision: z.enum(['do_not_retry', 'retry_allowed', 'replan']),
  reason: z.string(),
  status: z.literal('reconciled'),
  state_source: z.string(),
});
