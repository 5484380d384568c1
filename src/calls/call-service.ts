import { personOf, type KeyIdentity } from '../auth/keyring.ts';
import { authorizeToolUse, type CallContext } from '../auth/scopes.ts';
import type { Config } from '../config.ts';
import type { Transact } from '../db/transact.ts';
import { ConflictError, UnprocessableError, ValidationError } from '../errors.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { asPolicyRule, evaluatePolicy, type PolicyDecision, type PolicyRule } from '../policy/policy.ts';
import type { StoredTool } from '../tools/tools-repository.ts';
import type { ToolRegistry } from '../tools/tool-registry.ts';
import type { CapabilityCard, StateRefetch } from '../tools/types.ts';
import { assertValidConditions } from '../policy/conditions.ts';
import { assertValidExpression } from '../policy/expression.ts';
import { TraceRecorder, type TraceEvent } from '../traces/trace-recorder.ts';
import type { TracesRepository } from '../traces/traces-repository.ts';
import { resolveIdempotencyKey, type CallRequest } from './call-request.ts';
import type { CallFreezer, FrozenCall } from './call-freezer.ts';
import { httpStatusFor, type CallAnswer, type CallStatus } from './call-types.ts';
import type { CallsRepository } from './calls-repository.ts';
import { checkEntityResolution } from './entity-check.ts';
import { runUnderFailurePolicy, type ExecutionOutcome, type ReconcilePlan } from './failure-policy.ts';
import { canonicalJson, newId, sha256Hex } from './fingerprint.ts';
import { createStateReader } from './state-reader.ts';

export interface CallServiceDeps {
  config: Config;
  registry: ToolRegistry;
  calls: CallsRepository;
  traces: TracesRepository;
  transact: Transact;
  /** Freezes calls into pending approvals (implemented by approvals/, passed in at composition). */
  freezer: CallFreezer;
  metrics: Metrics;
  serverRules: PolicyRule[];
  /** Refuses a callback URL the SSRF guard would not deliver to (400). */
  assertCallbackUrl: (url: string, field: string) => void;
  sleep?: (ms: number) => Promise<void>;
}

/** A frozen call that passed its checks again and may run once its approval is claimed. */
export interface ApprovedCall {
  prepared: PreparedCall;
  /** Policy evaluated again at thaw time. */
  policy: PolicyDecision;
  /** How long the call may run before recovery treats it as interrupted. */
  leaseMs: number;
}

export interface CallResult {
  httpStatus: number;
  answer: CallAnswer;
  replayed: boolean;
}

/** Everything decided about a call before it is claimed: pure checks that never touch a tool. */
export interface PreparedCall {
  request: CallRequest;
  idempotencyKey?: string;
  tool: StoredTool;
  context: CallContext;
  policy: PolicyDecision;
  entity: ReturnType<typeof checkEntityResolution> | null;
  reconcile?: { refetch: StateRefetch; tool: StoredTool; conditions: Record<string, unknown>; source: string };
  fallback?: StoredTool;
  retries: number;
  retriesClamped: boolean;
  leaseMs: number;
}

/** What the checks before the claim decided. */
type Verdict = { kind: 'blocked'; fields: Partial<CallAnswer> } | { kind: 'freeze'; reason: string; uncomparable: CallAnswer['uncomparable'] } | { kind: 'run' };

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The answer of a call that is settled after its first request (thawed, recovered, decided):
 * its trace is everything the store already holds for the call plus this step's events.
 */
export async function finishLaterAnswer(
  traces: TracesRepository,
  callId: string,
  request: Pick<CallRequest, 'tool' | 'agent_id'>,
  trace: TraceRecorder,
  status: CallStatus,
  fields: Partial<CallAnswer> = {},
): Promise<CallAnswer> {
  const earlier = await traces.eventsFor(callId);
  const answer = finishAnswer(callId, request, trace, status, fields);
  // Events this step already saved (before its first attempt) are in `earlier`: not twice.
  return { ...answer, trace: [...earlier, ...trace.peekPending()] };
}

/** The call's answer with its final trace event. */
export function finishAnswer(
  callId: string,
  request: Pick<CallRequest, 'tool' | 'agent_id'>,
  trace: TraceRecorder,
  status: CallStatus,
  fields: Partial<CallAnswer> = {},
): CallAnswer {
  trace.record('execution_completed', status, fields.reason ? { reason: fields.reason } : undefined);
  return { status, call_id: callId, tool: request.tool, agent_id: request.agent_id, attempts: 0, ...fields, trace: trace.events };
}

/**
 * `/v1/call`: validate, scope, claim the idempotency key, check the entity, apply policy, then run
 * under the failure policy with reconciliation; every step traced.
 */
export function createCallService(deps: CallServiceDeps) {
  const { config, registry, calls, traces, transact, freezer, metrics, serverRules } = deps;
  const sleep = deps.sleep ?? defaultSleep;
  const stateReader = createStateReader(registry);

  function backoffMs(retry: number): number {
    const ceiling = Math.min(config.retryMaxMs, config.retryBaseMs * 2 ** (retry - 1));
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  async function prepare(identity: KeyIdentity, request: CallRequest, headerKey: string | undefined): Promise<PreparedCall> {
    const idempotencyKey = resolveIdempotencyKey(request.idempotency_key, headerKey);
    const tool = await registry.getTool(request.tool);
    registry.validateParams(tool.card, request.params);
    const context: CallContext = {
      agent_id: request.agent_id,
      env: request.env,
      workflow: request.workflow,
      action: request.action,
      resource: request.resource,
    };
    authorizeToolUse(identity, tool.card, context);

    const variables = request.execution_state?.variables ?? {};
    const policyFor = (card: CapabilityCard) =>
      evaluatePolicy({
        serverRules,
        requestRules: (request.policy?.rules ?? []).map(asPolicyRule),
        context: {
          action: request.action,
          tool: card.key,
          agent_id: request.agent_id,
          env: request.env,
          workflow: request.workflow,
          risk: card.risk,
          params: request.params,
          variables,
        },
        risk: card.risk,
        requireApprovalAt: config.requireApprovalAt,
      });
    const policy = policyFor(tool.card);
    const entity = request.entity_resolution ? checkEntityResolution(request.entity_resolution, request.params, variables) : null;

    const failurePolicy = request.failure_policy;
    const wantedRetries = failurePolicy?.retry ?? 0;
    const retries = Math.min(wantedRetries, config.maxRetries);

    // Every state read this call may make is checked now, before anything is claimed or run:
    // a tool without side effects, that this key may use, with well-formed conditions.
    const cardRefetch = tool.card.state_refetch;
    if (cardRefetch) {
      await stateReader.resolveReadTool(identity, cardRefetch, context, `state_refetch of ${tool.card.key}`);
      if (cardRefetch.conditions) assertValidConditions(cardRefetch.conditions, `state_refetch.conditions of ${tool.card.key}`);
    }
    const contract = request.approval_contract;
    if (contract?.state_refetch) await stateReader.resolveReadTool(identity, contract.state_refetch, context, 'approval_contract.state_refetch');
    if (contract) assertValidConditions(contract.conditions, 'approval_contract.conditions');
    if (contract?.condition) assertValidExpression(contract.condition, 'approval_contract.condition');
    (request.policy?.rules ?? []).forEach((rule, i) => {
      if (rule.condition) assertValidExpression(rule.condition, `policy.rules[${i}].condition`);
    });
    if (request.callback_url) deps.assertCallbackUrl(request.callback_url, 'callback_url');
    if (contract?.callback_url) deps.assertCallbackUrl(contract.callback_url, 'approval_contract.callback_url');

    let reconcile: PreparedCall['reconcile'];
    const refetch = failurePolicy?.reconcile?.state_refetch ?? cardRefetch;
    const conditions = failurePolicy?.reconcile?.conditions ?? cardRefetch?.conditions;
    if (failurePolicy?.reconcile) assertValidConditions(failurePolicy.reconcile.conditions, 'failure_policy.reconcile.conditions');
    if (refetch && conditions) {
      const label = failurePolicy?.reconcile?.state_refetch ? 'failure_policy.reconcile.state_refetch' : `state_refetch of ${tool.card.key}`;
      reconcile = { refetch, conditions, source: refetch.tool, tool: await stateReader.resolveReadTool(identity, refetch, context, label) };
    } else if (failurePolicy?.reconcile && !refetch) {
      throw new ValidationError(`failure_policy.reconcile needs a state_refetch: ${tool.card.key} has none of its own`, {
        field: 'failure_policy.reconcile.state_refetch',
      });
    }

    let fallback: StoredTool | undefined;
    if (failurePolicy?.fallback) {
      fallback = await registry.getTool(failurePolicy.fallback);
      authorizeToolUse(identity, fallback.card, context, 'fall back to');
      registry.validateParams(fallback.card, request.params);
      // A fallback is no way around policy: it must be a tool this call could run directly.
      const fallbackPolicy = policyFor(fallback.card);
      if (fallbackPolicy.effect !== 'allow') {
        throw new ValidationError(`failure_policy.fallback ${fallback.card.key} is not allowed to run unattended: ${fallbackPolicy.reason}`, {
          field: 'failure_policy.fallback',
          effect: fallbackPolicy.effect,
        });
      }
    }
    const leaseMs = leaseFor(tool.card.timeout_ms, retries, fallback?.card.timeout_ms, reconcile?.tool.card.timeout_ms);
    return { request, idempotencyKey, tool, context, policy, entity, reconcile, fallback, retries, retriesClamped: retries < wantedRetries, leaseMs };
  }

  /** Long enough for every attempt, backoff, reconciliation read and the fallback, so recovery never takes a live call for dead. */
  function leaseFor(timeoutMs: number, retries: number, fallbackMs = 0, readMs = 0): number {
    const worstCase = (retries + 1) * (timeoutMs + readMs) + retries * config.retryMaxMs + fallbackMs;
    return worstCase + config.callLeaseMs;
  }

  /** Reads the state at freeze time (when a refetch is known) and builds the checkpoint. */
  async function freeze(prepared: PreparedCall, identity: KeyIdentity, callId: string, trace: TraceRecorder, reason: string, failure?: ExecutionOutcome): Promise<FrozenCall> {
    const { request, tool } = prepared;
    const refetch = request.approval_contract?.state_refetch ?? tool.card.state_refetch;
    let frozenState: Record<string, unknown> | null = null;
    let frozenStateError: string | undefined;
    if (refetch) {
      const read = await stateReader.read(await registry.getTool(refetch.tool), refetch, {
        params: request.params,
        variables: request.execution_state?.variables ?? {},
      });
      if (read.ok) frozenState = read.state;
      else frozenStateError = read.error;
      trace.record('state_refetched', read.ok ? 'completed' : 'failed', { source: refetch.tool, purpose: 'freeze', error: frozenStateError });
    }
    const frozen = freezer.freeze({
      request,
      card: tool.card,
      callId,
      requester: identity.id,
      requesterPerson: personOf(identity),
      reason,
      policyRule: prepared.policy.effect === 'require_approval' ? (prepared.policy.rule ?? null) : null,
      frozenState,
      frozenStateError,
      failure: failure ? { status: failure.status, error: failure.error ?? null, attempts: failure.attempts } : undefined,
    });
    trace.record('approval_requested', 'pending', { approval_id: frozen.summary.id, reason, expires_at: frozen.summary.expires_at });
    return frozen;
  }

  async function execute(prepared: PreparedCall, callId: string, trace: TraceRecorder): Promise<ExecutionOutcome> {
    const { request, tool } = prepared;
    const bindings = { params: request.params, variables: request.execution_state?.variables ?? {} };
    const reconcilePlan: ReconcilePlan | undefined = prepared.reconcile && {
      conditions: prepared.reconcile.conditions,
      source: prepared.reconcile.source,
      readState: () => stateReader.read(prepared.reconcile!.tool, prepared.reconcile!.refetch, bindings),
    };
    const fallbackTool = prepared.fallback;
    const outcome = await runUnderFailurePolicy({
      toolKey: tool.card.key,
      params: request.params,
      sideEffects: tool.card.side_effects,
      retries: prepared.retries,
      invoke: () => registry.invoke(tool, request.params),
      reconcile: reconcilePlan,
      verifySuccess: request.failure_policy?.reconcile?.verify_success ?? false,
      fallback: fallbackTool && { toolKey: fallbackTool.card.key, invoke: () => registry.invoke(fallbackTool, request.params) },
      backoffMs,
      sleep,
      trace,
      // Persist the trace so far: a process that dies mid-call leaves a readable record.
      beforeFirstAttempt: () => traces.appendEvents(callId, trace.takePending()),
    });
    if (outcome.attempts > 1) metrics.retries.inc(outcome.attempts - 1);
    if (outcome.reconciliation) metrics.reconciliations.inc({ decision: String(outcome.reconciliation['decision']) });
    return outcome;
  }

  /**
   * The entity check and policy, decided before the call is claimed so that their trace events
   * are written with the claim: what a call will do is on record before the tool is touched.
   */
  function checkBeforeRun(prepared: PreparedCall, trace: TraceRecorder): Verdict {
    const { request } = prepared;
    if (prepared.entity) {
      const entity = prepared.entity;
      trace.record('entity_checked', entity.ok ? 'completed' : 'blocked', { entity_id: request.entity_resolution?.entity_id, checked: entity.checked });
      if (!entity.ok) return { kind: 'blocked', fields: { reason: entity.reason, mismatches: entity.mismatches } };
    }
    const policy = prepared.policy;
    const uncomparable = policy.uncomparable.length ? policy.uncomparable : undefined;
    trace.record('policy_evaluated', policy.effect, {
      reason: policy.reason,
      rule: policy.rule ?? null,
      ignored: policy.ignored.length ? policy.ignored : undefined,
      uncomparable,
    });
    if (policy.effect === 'deny') return { kind: 'blocked', fields: { reason: policy.reason, uncomparable } };
    const contract = request.approval_contract;
    if (policy.effect === 'require_approval') return { kind: 'freeze', reason: policy.reason, uncomparable };
    if (contract) return { kind: 'freeze', reason: `approval contract: ${contract.intent}`, uncomparable };
    return { kind: 'run' };
  }

  /** Blocks, freezes or executes as the verdict says. Returns the answer and any checkpoint to store with it. */
  async function decide(
    prepared: PreparedCall,
    verdict: Verdict,
    identity: KeyIdentity,
    callId: string,
    trace: TraceRecorder,
    progress: { toolTouched: boolean },
  ): Promise<{ answer: CallAnswer; approval?: FrozenCall }> {
    const { request } = prepared;
    const finish = (status: CallStatus, fields: Partial<CallAnswer> = {}) => finishAnswer(callId, request, trace, status, fields);
    if (verdict.kind === 'blocked') return { answer: finish('blocked', verdict.fields) };
    if (verdict.kind === 'freeze') {
      freezer.assertFreezable(request, prepared.policy.effect === 'require_approval' ? (prepared.policy.rule ?? null) : null);
      const frozen = await freeze(prepared, identity, callId, trace, verdict.reason);
      return { answer: finish('pending_approval', { reason: verdict.reason, approval: frozen.summary, uncomparable: verdict.uncomparable }), approval: frozen };
    }

    progress.toolTouched = true;
    const outcome = await execute(prepared, callId, trace);
    const { status, ...rest } = outcome;
    const escalate = request.failure_policy?.on_failure === 'escalate' && (status === 'failed' || status === 'unknown_outcome');
    if (!escalate) return { answer: finish(status, rest) };
    const reason = `escalated after ${status}: ${outcome.error ?? outcome.reason ?? 'no detail'}`;
    const frozen = await freeze(prepared, identity, callId, trace, reason, outcome);
    return { answer: finish('escalated', { ...rest, reason, approval: frozen.summary }), approval: frozen };
  }

  return {
    /**
     * A frozen call, checked again before its approval is claimed (the tool may be gone, its
     * schema changed), then run through the same path as a live call (failure policy,
     * reconciliation, traces). Scope limits of the requester's key were checked at freeze time;
     * the approval stands for them. The recovery sweep uses it too (`purpose: 'recovery'`), to
     * learn how an interrupted call can be reconciled.
     */
    async prepareApproved(request: CallRequest, requesterKeyId: string, purpose = 'approved checkpoint'): Promise<ApprovedCall> {
      const identity: KeyIdentity = { id: requesterKeyId, name: purpose, fullAccess: true };
      const prepared = await prepare(identity, request, undefined);
      return { prepared, policy: prepared.policy, leaseMs: prepared.leaseMs };
    },

    /**
     * Runs a claimed approved call; returns its answer and the trace events still to store, which
     * the caller writes in the transaction that records the answer and the approval's outcome.
     */
    async runApproved(approved: ApprovedCall, callId: string, approvalId: string): Promise<{ answer: CallAnswer; events: TraceEvent[] }> {
      const started = performance.now();
      const { prepared } = approved;
      const trace = new TraceRecorder();
      trace.record('approval_thawed', 'completed', { approval_id: approvalId });
      const outcome = await execute(prepared, callId, trace);
      const { status, ...rest } = outcome;
      const answer = await finishLaterAnswer(traces, callId, prepared.request, trace, status, rest);
      metrics.calls.inc({ status: answer.status });
      metrics.callDuration.observe({ status: answer.status }, (performance.now() - started) / 1000);
      return { answer, events: trace.takePending() };
    },

    async call(identity: KeyIdentity, input: CallRequest, options: { idempotencyKeyHeader?: string } = {}): Promise<CallResult> {
      const started = performance.now();
      const prepared = await prepare(identity, input, options.idempotencyKeyHeader);
      const { request, idempotencyKey } = prepared;
      freezer.assertRequestable(request);
      const callId = newId('call');
      const newCall = {
        id: callId,
        api_key_id: identity.id,
        agent_id: request.agent_id,
        tool: request.tool,
        request,
        idempotency_key: idempotencyKey ?? null,
        lease_ms: prepared.leaseMs,
      };

      const trace = new TraceRecorder();
      trace.record('request_received', 'completed', { tool: request.tool, agent_id: request.agent_id, idempotency_key: idempotencyKey ?? null });
      trace.record('scope_checked', 'completed', { key: identity.id });
      if (prepared.retriesClamped) trace.record('failure_policy_clamped', 'completed', { requested: request.failure_policy?.retry, cap: config.maxRetries });
      const verdict = checkBeforeRun(prepared, trace);

      if (idempotencyKey !== undefined) {
        const { idempotency_key: _ignored, ...payload } = request;
        const claim = await calls.claimIdempotencyKey(
          { ...newCall, idempotency_key: idempotencyKey },
          sha256Hex(canonicalJson(payload)),
          config.idempotencyTtlMs,
          trace.takePending(),
        );
        if (claim.kind === 'replay') {
          metrics.replays.inc();
          return { httpStatus: claim.http_status, answer: claim.answer, replayed: true };
        }
        if (claim.kind === 'in_flight') {
          throw new ConflictError('idempotency_key_in_flight', 'A call with this idempotency key is still in flight; repeat it later to get its answer', {
            call_id: claim.call_id,
          });
        }
        if (claim.kind === 'payload_mismatch') {
          throw new UnprocessableError('idempotency_key_reused', 'This idempotency key was used with a different payload', { call_id: claim.call_id });
        }
      } else {
        await calls.createCall(newCall, trace.takePending());
      }

      const progress = { toolTouched: false };
      try {
        const { answer, approval } = await decide(prepared, verdict, identity, callId, trace, progress);
        const httpStatus = httpStatusFor(answer);
        if (approval) {
          // The pending approval commits with the answer: a repeat replays it, the card is in the outbox.
          await transact(async (trx) => {
            await approval.store(trx);
            // Taken only once committed: if this rolls back, the answer stored instead (below) still appends them.
            await traces.appendEvents(callId, trace.peekPending(), trx);
            await calls.writeAnswer(trx, callId, httpStatus, answer, performance.now() - started);
          });
          trace.takePending();
        } else {
          await calls.finishCall(callId, httpStatus, answer, performance.now() - started, trace.takePending(), idempotencyKey !== undefined);
        }
        metrics.calls.inc({ status: answer.status });
        metrics.callDuration.observe({ status: answer.status }, (performance.now() - started) / 1000);
        return { httpStatus, answer, replayed: false };
      } catch (error) {
        // Before any request left for the tool, nothing happened: give the key back.
        if (!progress.toolTouched) {
          await calls.releaseClaim(identity.id, callId, idempotencyKey ?? null).catch(() => {});
          throw error;
        }
        // After, what the tool did is unknown: say so, and store it so the key replays that
        // instead of staying in flight. (If even that write fails, the recovery sweep finds it.)
        const answer = finishAnswer(callId, request, trace, 'unknown_outcome', {
          error: `internal error after the tool was called: ${(error as Error).message}`,
          reason: 'Invoke failed after sending the request; reconcile against live state before repeating the action',
        });
        await calls.finishCall(callId, 200, answer, performance.now() - started, trace.takePending(), idempotencyKey !== undefined);
        metrics.calls.inc({ status: answer.status });
        return { httpStatus: 200, answer, replayed: false };
      }
    },
  };
}
export type CallService = ReturnType<typeof createCallService>;
