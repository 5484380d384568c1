import { z } from 'zod';
import { openObject } from '../http/error-schema.ts';

export const WORKFLOWS = ['safe-tool-execution'] as const;

export const executionRequestSchema = z
  .object({
    workflow: z.enum(WORKFLOWS),
    agent_id: z.string().min(1).max(200).default('anonymous'),
    input: z
      .object({
        tool: z.string().min(1).max(200).optional(),
        /** The original product's field for the tool to run. */
        action: z.string().min(1).max(200).optional(),
        params: z.record(z.string(), z.unknown()).default({}),
      })
      .passthrough(),
  })
  .strict();
export type ExecutionRequest = z.infer<typeof executionRequestSchema>;

export const executionViewSchema = openObject({
  execution_id: z.string(),
  workflow_id: z.string(),
  agent_id: z.string(),
  status: z.string(),
  idempotency_key: z.string(),
  final_outcome: z.string().nullable(),
  call_status: z.string().nullable(),
  call_id: z.string().nullable(),
  created_at: z.string(),
});

export const executionAnswerSchema = z.object({ success: z.boolean(), execution: executionViewSchema });
export const executionListQuery = z.object({ limit: z.coerce.number().int().min(1).max(500).default(50) });
export const executionIdParams = z.object({ id: z.string().min(1).max(100) });
