import type { KeyIdentity } from '../auth/keyring.ts';
import type { CallService } from '../calls/call-service.ts';
import type { CallAnswer } from '../calls/call-types.ts';
import { callRequestSchema, resolveIdempotencyKey } from '../calls/call-request.ts';
import { newId, sha256Hex } from '../calls/fingerprint.ts';
import { NotFoundError, ValidationError } from '../errors.ts';
import { parseInput } from '../http/validation.ts';
import type { Execution, ExecutionsRepository, ExecutionStatus } from './executions-repository.ts';
import type { ExecutionRequest } from './execution-schemas.ts';

export { WORKFLOWS } from './execution-schemas.ts';

/** What an execution's status says about the call it ran. */
const EXECUTION_STATUS: Record<CallAnswer['status'], ExecutionStatus> = {
  executed: 'completed',
  outcome_reconciled: 'completed',
  pending_approval: 'pending_approval',
  escalated: 'pending_approval',
  blocked: 'blocked',
  replan_required: 'replan_required',
  failed: 'failed',
  unknown_outcome: 'unknown_outcome',
  rejected: 'rejected',
  cancelled: 'cancelled',
};

export interface ExecutionView {
  execution_id: string;
  workflow_id: string;
  agent_id: string;
  status: string;
  idempotency_key: string;
  /** In the original product's words (`completed`, ...), as its clients read it. */
  final_outcome: string | null;
  /** What the call's answer said (`executed`, `outcome_reconciled`, ...). */
  call_status: string | null;
  call_id: string | null;
  created_at: string;
  trace?: Array<{ step: string; status: string; at: string }>;
  result?: unknown;
}

/**
 * Packaged workflows. `safe-tool-execution` is one call under the full controls; its
 * idempotency key is the call's, namespaced, so a repeated key replays the same execution.
 * The tool is `input.tool`, else `input.action` (the original product's name for it), else the
 * server's `INVOKE_EXECUTION_TOOL` (the original's examples send only `input.params`).
 */
export function createExecutionService(executions: ExecutionsRepository, calls: CallService, defaultTool?: string) {
  function view(row: Execution): ExecutionView {
    return {
      execution_id: row.id,
      workflow_id: row.workflow_id,
      agent_id: row.agent_id,
      status: row.status,
      idempotency_key: row.idempotency_key,
      final_outcome: row.final_outcome === null ? null : EXECUTION_STATUS[row.final_outcome],
      call_status: row.final_outcome,
      call_id: row.call_id,
      created_at: row.created_at.toISOString(),
    };
  }

  return {
    async create(identity: KeyIdentity, request: ExecutionRequest, headerKey: string | undefined) {
      const key = resolveIdempotencyKey(undefined, headerKey);
      if (key === undefined) throw new ValidationError('POST /v1/executions needs an Idempotency-Key header', { field: 'Idempotency-Key' });
      const { tool: named, params, ...rest } = request.input;
      const tool = named ?? request.input.action ?? defaultTool;
      if (!tool) {
        throw new ValidationError('input.tool (or input.action) is required: the tool safe-tool-execution runs; this server sets no INVOKE_EXECUTION_TOOL', {
          field: 'body.input.tool',
        });
      }
      // The input is an open object passed on as a call: checked as one here, as /v1/call checks its body.
      const result = await calls.call(
        identity,
        parseInput(callRequestSchema, { ...rest, tool, params, agent_id: request.agent_id, workflow: request.workflow, idempotency_key: `execution:${sha256Hex(key)}` }),
      );
      const answer = result.answer;
      const status = EXECUTION_STATUS[answer.status];
      // One execution per (key, idempotency key): a replay finds the row the first request wrote.
      const row = await executions.recordOnce({
        id: newId('exec'),
        workflow_id: request.workflow,
        api_key_id: identity.id,
        agent_id: request.agent_id,
        idempotency_key: key,
        call_id: answer.call_id,
        status,
        final_outcome: answer.status,
      });
      const execution: ExecutionView = {
        ...view(row),
        result: answer.result,
        trace: answer.trace.map((e) => ({ step: e.step, status: e.status, at: e.at })),
      };
      return { httpStatus: result.replayed ? 200 : 201, replayed: result.replayed, body: { success: status === 'completed', execution } };
    },

    async list(identity: KeyIdentity, limit: number) {
      return (await executions.list(identity.fullAccess ? null : identity.id, limit)).map(view);
    },

    async get(identity: KeyIdentity, id: string) {
      const row = await executions.find(id, identity.fullAccess ? null : identity.id);
      if (!row) throw new NotFoundError(`No execution ${id}`, { execution_id: id });
      return view(row);
    },
  };
}
export type ExecutionService = ReturnType<typeof createExecutionService>;
