import { z } from 'zod';
import { openObject } from '../http/error-schema.ts';

export const traceListQuery = z
  .object({
    agent_id: z.string().max(200).optional(),
    tool: z.string().max(200).optional(),
    status: z.string().max(50).optional(),
    since: z.string().datetime({ offset: true }).optional(),
    limit: z.coerce.number().int().min(1).max(500).default(50),
    cursor: z.string().max(500).optional(),
  })
  .strict();

export const traceExportQuery = traceListQuery.omit({ limit: true, cursor: true }).extend({
  format: z.enum(['json', 'jsonl', 'langsmith', 'helicone']).default('json'),
  limit: z.coerce.number().int().min(1).max(1_000_000).default(100_000),
});

export const traceCallParams = z.object({ call_id: z.string().min(1).max(100) });

/** One call in the list. Open: summaries carry more columns than agents need to rely on. */
export const callSummarySchema = openObject({ call_id: z.string(), tool: z.string(), agent_id: z.string(), status: z.string() });
export const traceListAnswerSchema = z.object({ traces: z.array(callSummarySchema), next_cursor: z.string().nullable() });
export const traceDetailAnswerSchema = openObject({
  call_id: z.string(),
  request: z.unknown(),
  answer: z.unknown(),
  events: z.array(openObject({ step: z.string(), status: z.string(), at: z.string() })),
});
