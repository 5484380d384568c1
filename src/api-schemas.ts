/**
 * The HTTP API's schemas in one place: the routes validate with them, `/openapi.json` is
 * generated from them, and an SDK imports them (or their `z.infer` types) from here rather
 * than copying shapes. Each capability keeps its schemas next to its code.
 */
export { errorResponseSchema, type ErrorResponse } from './http/error-schema.ts';
export { healthAnswerSchema, healthUnavailableSchema } from './http/health-routes.ts';
export {
  callRequestSchema,
  callAnswerSchema,
  approvalSummarySchema,
  traceEventSchema,
  verifyRequestSchema,
  verifyAnswerSchema,
  reconcileRequestSchema,
  reconcileAnswerSchema,
  type VerifyRequest,
  type ReconcileRequest,
} from './calls/call-schemas.ts';
export type { CallRequest } from './calls/call-request.ts';
export {
  approvalListQuery,
  approvalGetQuery,
  approvalIdParams,
  approveBodySchema,
  rejectBodySchema,
  approvalViewSchema,
  approvalListAnswerSchema,
  approvalAnswerSchema,
  approvalAuditAnswerSchema,
  approvalDecisionAnswerSchema,
  type ApproveBody,
  type RejectBody,
} from './approvals/approval-schemas.ts';
export {
  executionRequestSchema,
  executionAnswerSchema,
  executionViewSchema,
  executionListQuery,
  executionIdParams,
  type ExecutionRequest,
} from './executions/execution-schemas.ts';
export { traceListQuery, traceExportQuery, traceCallParams, callSummarySchema, traceListAnswerSchema, traceDetailAnswerSchema } from './traces/trace-schemas.ts';
export {
  discoverQuery,
  httpProviderSchema,
  mcpProviderSchema,
  providerRegistrationSchema,
  capabilityCardSchema,
  toolListAnswerSchema,
  discoverAnswerSchema,
  providerAnswerSchema,
} from './tools/tool-schemas.ts';
