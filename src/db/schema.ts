import type { ColumnType, Generated } from 'kysely';

/** Row types: they stay below the services (repositories map them to domain types). */
type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T = unknown> = ColumnType<T, string, string>;

export interface ApiKeysTable {
  id: string;
  key_hash: string;
  name: string;
  created_at: Timestamp;
}

export interface ProvidersTable {
  name: string;
  kind: string;
  registration: Json;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface ToolsTable {
  key: string;
  provider: string;
  card: Json;
  transport: Json;
}

export interface CallsTable {
  id: string;
  api_key_id: string;
  agent_id: string;
  tool: string;
  status: string;
  request: Json;
  answer: Json | null;
  /** The call's trace: a JSON array of its events, in order (appended to, never rewritten). */
  trace: ColumnType<unknown, string | undefined, string>;
  attempts: Generated<number>;
  idempotency_key: string | null;
  duration_ms: number | null;
  lease_expires_at: Timestamp | null;
  created_at: Timestamp;
  finished_at: Timestamp | null;
}

export interface IdempotencyKeysTable {
  api_key_id: string;
  key: string;
  fingerprint: string;
  state: 'in_flight' | 'completed';
  call_id: string;
  http_status: number | null;
  response: Json | null;
  created_at: Timestamp;
  expires_at: Timestamp;
  replays: Generated<number>;
}

export interface ApprovalsTable {
  id: string;
  call_id: string;
  status: string;
  api_key_id: string;
  agent_id: string;
  tool: string;
  risk: string;
  reason: string;
  checkpoint: Json;
  created_at: Timestamp;
  expires_at: Timestamp;
  decided_at: Timestamp | null;
  decision: Json | null;
  approvals_required: Generated<number>;
  approvers: Json<string[]> | null;
  previous_approval_id: string | null;
  action_digest: Generated<string>;
  slack_channel: string | null;
  slack_ts: string | null;
  slack_thread_ts: string | null;
  reminded_at: Timestamp | null;
  revalidated_at: Timestamp | null;
  /** Null on approvals stored before it was recorded. */
  requester_person: string | null;
}

export interface CronClaimsTable {
  key: string;
  claimed_by: string;
  claimed_at: Generated<Date>;
}

export interface ApprovalVotesTable {
  approval_id: string;
  approver: string;
  at: Generated<Date>;
}

export interface ApprovalEventsTable {
  id: Generated<string>;
  approval_id: string;
  kind: string;
  actor: string;
  detail: Json | null;
  at: Generated<Date>;
}

export interface OutboxTable {
  id: Generated<string>;
  kind: string;
  target: string;
  payload: Json;
  status: Generated<string>;
  attempts: Generated<number>;
  next_attempt_at: Timestamp;
  last_error: string | null;
  created_at: Generated<Date>;
  delivered_at: Timestamp | null;
}

export interface ExecutionsTable {
  id: string;
  workflow_id: string;
  api_key_id: string;
  agent_id: string;
  idempotency_key: string;
  call_id: string | null;
  status: string;
  final_outcome: string | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** Nonces of review links that made a decision: a link decides once. */
export interface ReviewLinkUsesTable {
  nonce: string;
  approval_id: string;
  approver: string;
  link_expires_at: Timestamp;
  used_at: Timestamp;
}

export interface Database {
  api_keys: ApiKeysTable;
  providers: ProvidersTable;
  tools: ToolsTable;
  calls: CallsTable;
  idempotency_keys: IdempotencyKeysTable;
  approvals: ApprovalsTable;
  approval_votes: ApprovalVotesTable;
  approval_events: ApprovalEventsTable;
  outbox: OutboxTable;
  cron_claims: CronClaimsTable;
  executions: ExecutionsTable;
  review_link_uses: ReviewLinkUsesTable;
}
