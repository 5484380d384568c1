/** What Invoke knows about one tool: its capability card. */
import type { EscalationLevel } from '../policy/routing-fields.ts';
import type { RiskLevel } from '../vocabulary.ts';

export type { RiskLevel } from '../vocabulary.ts';

export interface StateRefetch {
  tool: string;
  params: Record<string, unknown>;
  /** What "the action took effect" looks like in that state; used to reconcile unknown outcomes. */
  conditions?: Record<string, unknown>;
}

export interface CapabilityCard {
  /** `<provider>.<tool>` */
  key: string;
  provider: string;
  name: string;
  description: string;
  input_schema: Record<string, unknown>;
  risk: RiskLevel;
  side_effects: boolean;
  idempotent: boolean;
  timeout_ms: number;
  state_refetch?: StateRefetch;
  /** False: approvers may approve or reject this tool's calls, never edit their params first. */
  editable?: boolean;
  /** Routing: who decides this tool's approvals and where their cards go (src/approvals/routing.ts). */
  approvers?: string[];
  channel?: string;
  escalate_to?: EscalationLevel[];
  transport: 'http' | 'mcp' | 'builtin';
}

/**
 * The outcome of one attempt against a tool.
 * - `ok`: the tool answered with success.
 * - `failed`: the tool answered with an error, or the request provably never reached it.
 *   `retryable` says whether another attempt is sensible (5xx, connection refused: yes; 4xx: no).
 * - `unknown`: the request may have reached the tool and we do not know what it did
 *   (timeout after send, connection dropped mid-answer).
 */
export type AttemptOutcome =
  | { kind: 'ok'; result: unknown; http_status?: number }
  | { kind: 'failed'; retryable: boolean; error: string; http_status?: number; body?: unknown }
  | { kind: 'unknown'; error: string };
