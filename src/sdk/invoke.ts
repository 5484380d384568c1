import { randomUUID } from 'node:crypto';
import { FINAL_APPROVAL_STATUSES } from '../vocabulary.ts';
import { InvokeApprovalTimeoutError, InvokeConnectionError, InvokeError } from './errors.ts';
import { createTransport, type FetchLike, type RetryMode, type Transport } from './transport.ts';
import type {
  Approval,
  ApprovalListQuery,
  ApproveInput,
  CallAnswer,
  CallFields,
  CallRequest,
  CapabilityCard,
  DecidedAnswer,
  DiscoverQuery,
  Execution,
  ExecutionRequest,
  Health,
  PendingAnswer,
  ReconcileAnswer,
  ReconcileRequest,
  TraceDetail,
  TraceExportQuery,
  TraceListQuery,
  TracePage,
  VerifyAnswer,
  VerifyRequest,
  WaitOptions,
} from './types.ts';

export const DEFAULT_BASE_URL = 'http://localhost:8000';

export interface InvokeOptions {
  apiKey: string;
  /** Default `http://localhost:8000`. */
  baseUrl?: string;
  /** Per request, default 30 s (a long poll adds its wait on top). */
  timeoutMs?: number;
  /** The transport; default the global `fetch`. */
  fetch?: FetchLike;
  /** The `agent_id` of calls that name none; default `sdk`. */
  agentId?: string;
  /** Transport retries after the first attempt, default 3. */
  maxRetries?: number;
  /** First backoff, default 250 ms (doubled each retry, jittered; Retry-After wins). */
  retryBaseMs?: number;
}

export interface CallOptions extends CallFields {
  agentId?: string;
  /** Default: a fresh random UUID, reused on this call's own transport retries. */
  idempotencyKey?: string;
  /** Wait through `pending_approval` and return the final answer: `true` as long as the approval lives, or at most this many ms. */
  waitForApproval?: boolean | number;
  signal?: AbortSignal;
}

/** The original SDK's one-object form: `call({ tool, params, agentId, idempotencyKey, ... })`. */
export interface CallObject extends CallOptions {
  tool: string;
  params?: Record<string, unknown>;
}

/** A call Invoke answered with something other than `executed`, seen through a guard. */
export class InvokeNotExecutedError extends InvokeError {
  constructor(readonly answer: CallAnswer) {
    super(`${answer.tool} was not executed: ${answer.status}${answer.reason ? ` (${answer.reason})` : ''}`, answer.status, 200, { call_id: answer.call_id });
  }
}

export interface GuardOptions extends Omit<CallOptions, 'waitForApproval'> {
  /** Default `true`: a guarded function waits for a human like any slow function. `false` rejects with the pending answer. */
  waitForApproval?: boolean | number;
}

/** One long poll asks the server to hold this long (the server caps it, 60 s by default). */
const LONG_POLL_MS = 25_000;
/** Transport retries exhausted this many times in a row end an unbounded wait. */
const MAX_LOST_POLLS = 5;

function isPending<R>(answer: CallAnswer<R>): answer is PendingAnswer<R> {
  return answer.status === 'pending_approval' || answer.status === 'escalated';
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A client of Invoke's HTTP API: one instance per key and server. */
export class Invoke {
  readonly baseUrl: string;
  readonly agentId: string;
  readonly tools;
  readonly approvals;
  readonly traces;
  readonly executions;
  readonly #http: Transport;

  /** From `INVOKE_API_KEY` and `INVOKE_BASE_URL` (default `http://localhost:8000`); `INVOKE_AGENT_ID` names the agent. */
  static fromEnv(env: Record<string, string | undefined> = process.env, options: Partial<InvokeOptions> = {}): Invoke {
    const apiKey = options.apiKey ?? env.INVOKE_API_KEY;
    if (!apiKey) throw new InvokeError('INVOKE_API_KEY is not set', 'missing_api_key', 0);
    return new Invoke({ baseUrl: env.INVOKE_BASE_URL || DEFAULT_BASE_URL, agentId: env.INVOKE_AGENT_ID || undefined, ...options, apiKey });
  }

  constructor(options: InvokeOptions) {
    if (!options.apiKey) throw new InvokeError('An API key is required', 'missing_api_key', 0);
    this.#http = createTransport({
      apiKey: options.apiKey,
      baseUrl: options.baseUrl ?? DEFAULT_BASE_URL,
      timeoutMs: options.timeoutMs ?? 30_000,
      fetch: options.fetch ?? ((input, init) => fetch(input, init)),
      maxRetries: options.maxRetries ?? 3,
      retryBaseMs: options.retryBaseMs ?? 250,
    });
    this.baseUrl = this.#http.baseUrl;
    this.agentId = options.agentId ?? 'sdk';
    this.tools = this.#toolsApi();
    this.approvals = this.#approvalsApi();
    this.traces = this.#tracesApi();
    this.executions = this.#executionsApi();
  }

  async #get<T>(path: string, query?: Record<string, string | number | undefined>, extra: { extraTimeoutMs?: number; signal?: AbortSignal } = {}): Promise<T> {
    return (await this.#http.request<T>({ method: 'GET', path, query, retry: 'replayable', ...extra })).body;
  }

  async #post<T>(path: string, body: unknown, retry: RetryMode, extra: { headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<T> {
    return (await this.#http.request<T>({ method: 'POST', path, body, retry, ...extra })).body;
  }

  /** `GET /health`: reachable and the store answering (no key needed). */
  health(): Promise<Health> {
    return this.#get('/health');
  }

  /**
   * Runs one tool call through Invoke. Every call carries an idempotency key (a random UUID
   * unless given) that the SDK reuses when it resends the request itself, so a retried POST
   * replays the first answer instead of running the tool twice.
   */
  call<R = unknown>(request: CallObject): Promise<CallAnswer<R>>;
  call<R = unknown>(tool: string, params?: Record<string, unknown>, options?: CallOptions): Promise<CallAnswer<R>>;
  async call<R = unknown>(toolOrRequest: string | CallObject, params: Record<string, unknown> = {}, options: CallOptions = {}): Promise<CallAnswer<R>> {
    const { tool, params: objectParams, ...objectOptions } = typeof toolOrRequest === 'string' ? { tool: toolOrRequest, params } : toolOrRequest;
    const { agentId, idempotencyKey, waitForApproval, signal, ...fields } = typeof toolOrRequest === 'string' ? options : objectOptions;
    const body: CallRequest = { ...fields, tool, params: objectParams ?? {}, agent_id: agentId ?? this.agentId, idempotency_key: idempotencyKey ?? randomUUID() };
    const answer = await this.#send<R>(body, signal);
    if (!waitForApproval || !isPending(answer)) return answer;
    return answer.approval.wait({ timeoutMs: waitForApproval === true ? undefined : waitForApproval, signal });
  }

  async #send<R>(body: CallRequest, signal: AbortSignal | undefined): Promise<CallAnswer<R>> {
    const answer = await this.#post<CallAnswer<R>>('/v1/call', body, 'replayable', { signal });
    if (!isPending(answer)) return answer;
    const approval = answer.approval;
    return { ...answer, approval: { ...approval, wait: (options: WaitOptions = {}) => this.#finalAnswer<R>(body, approval.id, options) } };
  }

  /**
   * The call's final answer, once a human decided. The server writes the call's answer in the
   * same transaction as the decision, and the same idempotency key replays it: so the SDK waits
   * on the approval, then repeats the call with its key. A replay that is pending again names a
   * fresh approval (drift requeued it, or it was escalated): the wait goes on with that one.
   */
  async #finalAnswer<R>(body: CallRequest, approvalId: string, options: WaitOptions): Promise<DecidedAnswer<R>> {
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    let id = approvalId;
    for (;;) {
      await this.approvals.wait(id, { timeoutMs: deadline === Infinity ? undefined : Math.max(0, deadline - Date.now()), signal: options.signal });
      const replay = await this.#send<R>(body, options.signal);
      if (!isPending(replay)) return replay;
      if (replay.approval.id === id) await sleep(200);
      id = replay.approval.id;
    }
  }

  /** `POST /v1/state/verify`: does the state the agent assumed still hold? */
  verifyState(request: VerifyRequest): Promise<VerifyAnswer> {
    return this.#post('/v1/state/verify', request, 'replayable');
  }

  /** `POST /v1/outcomes/reconcile`: after an UNKNOWN outcome, did the action take effect? */
  reconcile(request: ReconcileRequest): Promise<ReconcileAnswer> {
    return this.#post('/v1/outcomes/reconcile', request, 'replayable');
  }

  /**
   * A local function's stand-in that goes through Invoke: calling it sends its argument as the
   * params of a call of `tool` (a tool registered in Invoke) and resolves to what the tool
   * returned when Invoke executed it; it waits through an approval by default, and rejects with
   * `InvokeNotExecutedError` (carrying the answer) for any other outcome. `fn` is never run by
   * the guard: it is the direct path being replaced, and it gives the guarded function its type.
   * Running it locally after Invoke said yes would put the side effect outside Invoke's
   * idempotency, retries, reconciliation and trace.
   */
  guard<P extends Record<string, unknown>, R>(tool: string, fn: (params: P) => R | Promise<R>, options: GuardOptions = {}): (params: P) => Promise<Awaited<R>> {
    void fn;
    const { waitForApproval = true, ...rest } = options;
    return async (params: P): Promise<Awaited<R>> => {
      const answer = await this.call<Awaited<R>>(tool, params, { ...rest, waitForApproval });
      if (answer.status !== 'executed') throw new InvokeNotExecutedError(answer);
      return answer.result as Awaited<R>;
    };
  }

  #toolsApi() {
    return {
      /** Capability cards of the tools this key may see; `query` keeps the matching ones. */
      list: async (query?: string): Promise<CapabilityCard[]> => (await this.#get<{ tools: CapabilityCard[] }>('/v1/tools', { q: query })).tools,
      /** Tools ranked by how well they match what the agent wants to do. */
      discover: async (q: string, options: Omit<DiscoverQuery, 'q'> = {}): Promise<CapabilityCard[]> =>
        (await this.#get<{ tools: CapabilityCard[] }>('/discover', { q, limit: options.limit as number | undefined })).tools,
      /** `POST /v1/providers` (scope `providers:admin`): an HTTP, MCP or OpenAPI provider, sent as is. */
      register: (provider: Record<string, unknown>): Promise<{ provider: string; kind: string; tools: CapabilityCard[] }> => this.#post('/v1/providers', provider, 'unprocessed'),
    };
  }

  #approvalsApi() {
    const get = async (id: string, waitSeconds = 0, signal?: AbortSignal): Promise<Approval> =>
      (
        await this.#get<{ approval: Approval }>(`/v1/approvals/${encodeURIComponent(id)}`, waitSeconds > 0 ? { wait: waitSeconds } : undefined, {
          extraTimeoutMs: waitSeconds * 1000,
          signal,
        })
      ).approval;

    /**
     * Long-polls until the approval is decided (a final status). A dropped connection is
     * resumed with a new poll: waiting is a read, so asking again is always safe.
     */
    const wait = async (id: string, options: WaitOptions = {}): Promise<Approval> => {
      const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
      let lost = 0;
      let last: Approval | undefined;
      for (;;) {
        const remaining = deadline - Date.now();
        try {
          last = await get(id, Math.max(0, Math.min(remaining, LONG_POLL_MS)) / 1000, options.signal);
          lost = 0;
          if (FINAL_APPROVAL_STATUSES.includes(last.status)) return last;
        } catch (error) {
          if (!(error instanceof InvokeConnectionError) || (deadline === Infinity && ++lost >= MAX_LOST_POLLS)) throw error;
          await sleep(500);
        }
        if (Date.now() >= deadline) {
          throw new InvokeApprovalTimeoutError(`Approval ${id} is still ${last?.status ?? 'pending'}`, 'approval_wait_timeout', 0, { approval_id: id, approval: last });
        }
      }
    };

    return {
      list: async (query: ApprovalListQuery = {}): Promise<Approval[]> =>
        (await this.#get<{ approvals: Approval[] }>('/v1/approvals', { status: query.status, limit: query.limit as number | undefined })).approvals,
      /** One approval; `waitSeconds` long-polls (server-capped) for a decision. */
      get: (id: string, options: { waitSeconds?: number; signal?: AbortSignal } = {}) => get(id, options.waitSeconds ?? 0, options.signal),
      wait,
      /** Approve as the key's approver: Invoke revalidates live state, then runs the frozen call. */
      approve: (id: string, input: ApproveInput = {}): Promise<{ outcome?: string; approval: Approval; call?: CallAnswer }> =>
        this.#post(`/v1/approvals/${encodeURIComponent(id)}/approve`, input, 'unprocessed'),
      reject: (id: string, reason: string): Promise<{ outcome?: string; approval: Approval; call?: CallAnswer }> =>
        this.#post(`/v1/approvals/${encodeURIComponent(id)}/reject`, { reason }, 'unprocessed'),
    };
  }

  #tracesApi() {
    const page = (query: TraceListQuery): Promise<TracePage> => this.#get('/traces', { ...query, limit: query.limit as number | undefined });
    async function* pages(query: TraceListQuery): AsyncGenerator<TracePage> {
      let cursor = query.cursor;
      do {
        const next = await page({ ...query, cursor });
        yield next;
        cursor = next.next_cursor ?? undefined;
      } while (cursor !== undefined);
    }
    return {
      /**
       * Calls, newest first: `await` it for one page, or `for await` over it for every page
       * (following `next_cursor`, `limit` calls per page).
       */
      list: (query: TraceListQuery = {}): PromiseLike<TracePage> & AsyncIterable<TracePage> => ({
        then: (onFulfilled, onRejected) => page(query).then(onFulfilled, onRejected),
        [Symbol.asyncIterator]: () => pages(query),
      }),
      get: (callId: string): Promise<TraceDetail> => this.#get(`/traces/${encodeURIComponent(callId)}`),
      /** The export's records, parsed (every format). */
      export: async (query: TraceExportQuery = {}): Promise<unknown[]> => parseExport(await this.traces.exportText(query)),
      /** The export as the server streams it: a JSON array (`json`) or one JSON record per line. */
      exportText: async (query: TraceExportQuery = {}): Promise<string> =>
        (await this.#http.request<unknown>({ method: 'GET', path: '/traces/export', query: { ...query, limit: query.limit as number | undefined }, retry: 'replayable' })).text,
    };
  }

  #executionsApi() {
    return {
      /** `POST /v1/executions`, under an Idempotency-Key (a random UUID unless given, reused on retries). */
      create: async (request: ExecutionRequest, options: { idempotencyKey?: string } = {}): Promise<{ success: boolean; execution: Execution }> =>
        this.#post('/v1/executions', request, 'replayable', { headers: { 'idempotency-key': options.idempotencyKey ?? randomUUID() } }),
      get: async (id: string): Promise<Execution> => (await this.#get<{ execution: Execution }>(`/v1/executions/${encodeURIComponent(id)}`)).execution,
      list: async (options: { limit?: number } = {}): Promise<Execution[]> => (await this.#get<{ executions: Execution[] }>('/v1/executions', { limit: options.limit })).executions,
    };
  }
}

function parseExport(text: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) return JSON.parse(trimmed) as unknown[];
  return trimmed === '' ? [] : trimmed.split('\n').map((line) => JSON.parse(line) as unknown);
}
