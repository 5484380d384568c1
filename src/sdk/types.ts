/**
 * The SDK's request and answer types, derived from the server's own zod schemas
 * (`src/api-schemas.ts`): a field the server adds or renames changes these types with it.
 * Requests use `z.input` (what may be sent: defaulted fields are optional), answers `z.infer`.
 */
import type { z } from 'zod';
import type {
  approvalListQuery,
  approvalSummarySchema,
  approvalViewSchema,
  approveBodySchema,
  callAnswerSchema,
  callRequestSchema,
  callSummarySchema,
  capabilityCardSchema,
  discoverQuery,
  executionRequestSchema,
  executionViewSchema,
  healthAnswerSchema,
  reconcileAnswerSchema,
  reconcileRequestSchema,
  traceDetailAnswerSchema,
  traceExportQuery,
  traceListQuery,
  verifyAnswerSchema,
  verifyRequestSchema,
} from '../api-schemas.ts';
import type { CallStatus } from '../vocabulary.ts';

export type { ApprovalStatus, CallStatus } from '../vocabulary.ts';

/** Everything `/v1/call` accepts. */
export type CallRequest = z.input<typeof callRequestSchema>;
/** The `/v1/call` fields beyond tool, params, agent and key: failure_policy, entity_resolution, approval_contract, policy, execution_state, callback_url, action, env, workflow, resource. */
export type CallFields = Omit<CallRequest, 'tool' | 'params' | 'agent_id' | 'idempotency_key'>;

type AnswerBody = z.infer<typeof callAnswerSchema>;
export type ApprovalSummary = z.infer<typeof approvalSummarySchema>;

/** The statuses that wait for a human (HTTP 202); every other status is Invoke's decision. */
export type PendingStatus = 'pending_approval' | 'escalated';
export type DecidedStatus = Exclude<CallStatus, PendingStatus>;

export interface WaitOptions {
  /** Give up (InvokeApprovalTimeoutError) after this long; default: wait as long as the approval lives. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A pending approval with a way to wait for the call's final answer. */
export type ApprovalHandle<R = unknown> = ApprovalSummary & {
  /** Long-polls the approval until it is decided, then returns the call's final answer. */
  wait(options?: WaitOptions): Promise<DecidedAnswer<R>>;
};

type AnswerWith<S extends CallStatus, R> = Omit<AnswerBody, 'status' | 'result'> & { status: S; result?: S extends 'executed' ? R : unknown };

/** An answer Invoke decided: executed, blocked, failed, rejected, replan_required, ... */
export type DecidedAnswer<R = unknown> = { [S in DecidedStatus]: AnswerWith<S, R> }[DecidedStatus];
/** An answer that waits for a human: it carries the approval and a handle to wait on it. */
export type PendingAnswer<R = unknown> = {
  [S in PendingStatus]: Omit<AnswerWith<S, R>, 'approval'> & { approval: ApprovalHandle<R> };
}[PendingStatus];
/** What `call` returns: a discriminated union on `status`. */
export type CallAnswer<R = unknown> = DecidedAnswer<R> | PendingAnswer<R>;

export type VerifyRequest = z.input<typeof verifyRequestSchema>;
export type VerifyAnswer = z.infer<typeof verifyAnswerSchema>;
export type ReconcileRequest = z.input<typeof reconcileRequestSchema>;
export type ReconcileAnswer = z.infer<typeof reconcileAnswerSchema>;

export type CapabilityCard = z.infer<typeof capabilityCardSchema>;
export type DiscoverQuery = z.input<typeof discoverQuery>;

export type Approval = z.infer<typeof approvalViewSchema>;
export type ApprovalListQuery = z.input<typeof approvalListQuery>;
export type ApproveInput = Omit<z.input<typeof approveBodySchema>, 'reviewed_by'>;

export type TraceListQuery = z.input<typeof traceListQuery>;
export type TraceSummary = z.infer<typeof callSummarySchema>;
export interface TracePage {
  traces: TraceSummary[];
  next_cursor: string | null;
}
export type TraceDetail = z.infer<typeof traceDetailAnswerSchema>;
export type TraceExportQuery = z.input<typeof traceExportQuery>;
export type TraceExportFormat = NonNullable<TraceExportQuery['format']>;

export type ExecutionRequest = z.input<typeof executionRequestSchema>;
export type Execution = z.infer<typeof executionViewSchema>;

export type Health = z.infer<typeof healthAnswerSchema>;
