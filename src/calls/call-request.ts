import { z } from 'zod';
import { ValidationError } from '../errors.ts';
import { MAX_EXPRESSION_LENGTH } from '../policy/expression.ts';
import { requestRuleSchema } from '../policy/policy.ts';
import { stateRefetchSchema } from '../tools/schemas.ts';

const shortText = z.string().min(1).max(200);
const record = z.record(z.string(), z.unknown());

export const entityResolutionSchema = z
  .object({
    entity_id: z.string().min(1).max(500),
    entity_type: z.string().min(1).max(100).optional(),
    source: z.string().max(500).optional(),
    resolved_at: z.string().max(100).optional(),
  })
  .strict();

export const reconcileConfigSchema = z
  .object({
    action: z.string().max(200).optional(),
    state_refetch: stateRefetchSchema.optional(),
    conditions: record.refine((c) => Object.keys(c).length > 0, 'needs at least one condition'),
    /** Also check a reported success against live state: a tool can say "ok" while the source of truth disagrees. */
    verify_success: z.boolean().default(false),
  })
  .strict();

export const failurePolicySchema = z
  .object({
    retry: z.number().int().min(0).max(1000).default(0),
    fallback: shortText.optional(),
    on_failure: z.enum(['fail', 'escalate']).default('fail'),
    reconcile: reconcileConfigSchema.optional(),
  })
  .strict();
export type FailurePolicy = z.infer<typeof failurePolicySchema>;

export const approvalContractSchema = z
  .object({
    intent: shortText,
    conditions: record.default({}),
    /** The domain policy form: an expression checked on live state at thaw (false: re-plan). */
    condition: z.string().min(1).max(MAX_EXPRESSION_LENGTH).optional(),
    /** The domain policy form: the only action the approval may run (another is cancelled at thaw). */
    allowed_action: shortText.optional(),
    threshold: z.enum(['strict', 'conditions']).default('strict'),
    expires_at: z.string().datetime({ offset: true }).optional(),
    state_refetch: stateRefetchSchema.optional(),
    on_mismatch: z.enum(['requeue', 'replan']).default('requeue'),
    approvals_required: z.number().int().min(1).max(10).optional(),
    on_expire: z.enum(['cancel', 'escalate']).optional(),
    escalate_to: z.union([z.string(), z.array(z.string())]).optional(),
    callback_url: z.string().url().max(2000).optional(),
    /** False: the approver may approve or reject, not edit the params first. */
    editable: z.boolean().optional(),
  })
  .strict();
export type ApprovalContract = z.infer<typeof approvalContractSchema>;

export const callRequestSchema = z
  .object({
    tool: shortText,
    params: record.default({}),
    agent_id: shortText,
    idempotency_key: z.string().optional(),
    action: shortText.optional(),
    env: shortText.optional(),
    workflow: shortText.optional(),
    resource: z.string().min(1).max(500).optional(),
    entity_resolution: entityResolutionSchema.optional(),
    failure_policy: failurePolicySchema.optional(),
    policy: z
      .object({ rules: z.array(requestRuleSchema).max(100).default([]) })
      .strict()
      .optional(),
    execution_state: z
      .object({ variables: record.default({}), tool_outputs: record.default({}) })
      .strict()
      .optional(),
    approval_contract: approvalContractSchema.optional(),
    callback_url: z.string().url().max(2000).optional(),
  })
  .strict();
export type CallRequest = z.infer<typeof callRequestSchema>;

/** C0 controls and DEL, checked by code so no regular expression carries raw control characters. */
function hasControlChars(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code <= 0x1f || code === 0x7f) return true;
  }
  return false;
}

/** The key from the body or the `Idempotency-Key` header (they must agree), checked for shape. */
export function resolveIdempotencyKey(bodyKey: string | undefined, headerKey: string | undefined): string | undefined {
  if (bodyKey !== undefined && headerKey !== undefined && bodyKey !== headerKey) {
    throw new ValidationError('The idempotency_key field and the Idempotency-Key header differ', { field: 'idempotency_key' });
  }
  const key = bodyKey ?? headerKey;
  if (key === undefined) return undefined;
  if (key.length === 0) throw new ValidationError('The idempotency key is empty', { field: 'idempotency_key' });
  if (key.length > 255) throw new ValidationError('The idempotency key is longer than 255 characters', { field: 'idempotency_key' });
  if (hasControlChars(key)) throw new ValidationError('The idempotency key contains control characters', { field: 'idempotency_key' });
  return key;
}
