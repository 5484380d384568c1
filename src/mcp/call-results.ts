import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { CallAnswer, CallStatus } from '../calls/call-types.ts';
import { AppError } from '../errors.ts';

/** Answers an agent may go on from: the call ran, or it waits for a human. Every other status is a failure of the call. */
const NOT_FAILED: ReadonlySet<CallStatus> = new Set(['executed', 'outcome_reconciled', 'pending_approval', 'escalated']);

/** A call's answer as an agent reads it: everything but the trace, which `/traces/{call_id}` serves. */
export type AgentAnswer = Omit<CallAnswer, 'trace'>;

export function agentAnswer(answer: CallAnswer): AgentAnswer {
  const { trace: _trace, ...rest } = answer;
  return rest;
}

/** Structured content, and the same JSON as text for clients that read only text (as the spec asks). */
export function structuredResult(content: Record<string, unknown>, isError: boolean, preface?: string): CallToolResult {
  const text = JSON.stringify(content);
  return {
    content: preface
      ? [
          { type: 'text', text: preface },
          { type: 'text', text },
        ]
      : [{ type: 'text', text }],
    structuredContent: content,
    ...(isError ? { isError: true } : {}),
  };
}

/** A call's answer; a failed, blocked, rejected... call is `isError`, its status saying which. */
export function callAnswerResult(answer: CallAnswer | AgentAnswer, preface?: string): CallToolResult {
  const shown = 'trace' in answer ? agentAnswer(answer) : answer;
  return structuredResult(shown, !NOT_FAILED.has(answer.status), preface);
}

/**
 * An error the pipeline raised (validation, scope, unknown tool, idempotency conflict) in the
 * one error shape, as `isError`. Anything else is a bug or a dependency down: its message stays
 * in the log, as the HTTP error handler keeps a 5xx's.
 */
export function errorResult(error: unknown): CallToolResult {
  if (error instanceof AppError) {
    return structuredResult({ error: { code: error.code, message: error.message, ...(error.details === undefined ? {} : { details: error.details }) } }, true);
  }
  return structuredResult({ error: { code: 'internal_error', message: 'Invoke failed to handle this call; see its logs' } }, true);
}
