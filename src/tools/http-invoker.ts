/**
 * The HTTP transport: one tool call is exactly one HTTP request, never retried here.
 *
 * Classification hinges on one fact: did the request reach a socket? undici tells us when it
 * hands a request to a connection (`onRequestStart`, right before the bytes are written). Any
 * failure before that point proves the tool never saw the call, so it is a retryable `failed`;
 * any failure after it without a status line (timeout, reset, closed socket) is `unknown`.
 */
import { request } from 'undici';
import type { Agent, Dispatcher } from 'undici';
import { createGuardedAgent, findSsrfBlocked, type ResolveAll } from './ssrf-guard.ts';
import type { AttemptOutcome } from './types.ts';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface HttpToolSpec {
  method: HttpMethod;
  /** Path below the provider's base URL; `{name}` segments are filled from the params. */
  path: string;
}

/** undici's own default. */
export const PROVIDER_CONNECT_TIMEOUT_MS = 10_000;

/**
 * A pool for provider requests: no retry or redirect interceptors, so undici sends each request
 * once, and every connection goes through the SSRF guard's provider profile.
 */
export function createHttpToolAgent(resolveAll?: ResolveAll): Agent {
  return createGuardedAgent({
    profile: 'provider',
    connectTimeoutMs: PROVIDER_CONNECT_TIMEOUT_MS,
    ...(resolveAll === undefined ? {} : { resolveAll }),
  });
}

const httpToolAgent = createHttpToolAgent();

const BODY_METHODS: ReadonlySet<HttpMethod> = new Set(['POST', 'PUT', 'PATCH']);
// 408 and 429 say the server did not process the request and asks us to come back.
const RETRYABLE_4XX: ReadonlySet<number> = new Set([408, 429]);
const ERROR_EXCERPT_CHARS = 300;

export async function invokeHttpTool(
  tool: HttpToolSpec,
  baseUrl: string,
  params: Record<string, unknown>,
  timeoutMs: number,
  signal?: AbortSignal,
  agent: Agent = httpToolAgent,
): Promise<AttemptOutcome> {
  const built = buildHttpRequest(tool, baseUrl, params);
  if ('error' in built) return { kind: 'failed', retryable: false, error: built.error };
  if (signal?.aborted) return { kind: 'failed', retryable: true, error: 'aborted before the request was sent' };

  const deadline = startDeadline(timeoutMs, signal);
  let written = false;
  const dispatcher = agent.compose(onRequestWritten(() => (written = true)));
  let status: number | undefined;
  try {
    const pending = request(built.url, {
      method: tool.method,
      headers: built.body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
      body: built.body,
      signal: deadline.signal,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      dispatcher,
    });
    // undici only rejects an aborted request once it reaches a socket (or the connect attempt
    // fails), which can take up to the connect timeout: answer as soon as the deadline passes.
    pending.catch(() => undefined);
    const response = await Promise.race([pending, deadline.abortedBeforeWrite(() => written)]);
    status = response.statusCode;
    const text = await response.body.text();
    return classifyHttpResponse(status, parseBody(text));
  } catch (error) {
    if (status !== undefined && (status < 200 || status >= 300)) {
      // The status line already carries the server's verdict; only the error body was lost.
      return classifyHttpResponse(status, undefined);
    }
    return classifyTransportError(error, written, deadline, timeoutMs);
  } finally {
    deadline.dispose();
  }
}

type BuiltRequest = { url: URL; body: string | undefined } | { error: string };

function buildHttpRequest(tool: HttpToolSpec, baseUrl: string, params: Record<string, unknown>): BuiltRequest {
  const rest: Record<string, unknown> = { ...params };
  let missing: string | undefined;
  let invalid: string | undefined;
  const path = tool.path.replace(/\{([^{}]+)\}/g, (_match, name: string) => {
    const value = params[name];
    delete rest[name];
    if (value === undefined || value === null || value === '') {
      missing ??= name;
      return '';
    }
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      invalid ??= name;
      return '';
    }
    const text = String(value);
    // `..` survives encodeURIComponent and URL resolution would climb out of the tool's path.
    if (text === '.' || text === '..') {
      invalid ??= name;
      return '';
    }
    return encodeURIComponent(text);
  });
  if (missing !== undefined) return { error: `missing path parameter ${missing}` };
  if (invalid !== undefined) return { error: `path parameter ${invalid} must be a string, number or boolean, and not . or ..` };

  let url: URL;
  try {
    url = new URL(`${baseUrl.replace(/(?<!\/)\/+$/, '')}/${path.replace(/^\/+/, '')}`);
  } catch {
    return { error: `invalid tool URL: base ${baseUrl}, path ${tool.path}` };
  }
  if (BODY_METHODS.has(tool.method)) return { url, body: JSON.stringify(rest) };
  for (const [name, value] of Object.entries(rest)) {
    if (value === undefined) continue;
    url.searchParams.append(name, queryValue(value));
  }
  return { url, body: undefined };
}

function queryValue(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return JSON.stringify(value);
}

function parseBody(text: string): unknown {
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function classifyHttpResponse(status: number, body: unknown): AttemptOutcome {
  if (status >= 200 && status < 300) return { kind: 'ok', result: body, http_status: status };
  const detail = body === undefined || body === null ? '' : `: ${excerpt(body)}`;
  if (status >= 500) return { kind: 'failed', retryable: true, error: `HTTP ${status}${detail}`, http_status: status, body };
  if (status >= 300 && status < 400) {
    return { kind: 'failed', retryable: false, error: `HTTP ${status}: redirects are not followed${detail}`, http_status: status, body };
  }
  return { kind: 'failed', retryable: RETRYABLE_4XX.has(status), error: `HTTP ${status}${detail}`, http_status: status, body };
}

function excerpt(body: unknown): string {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return text.length > ERROR_EXCERPT_CHARS ? `${text.slice(0, ERROR_EXCERPT_CHARS)}…` : text;
}

function classifyTransportError(error: unknown, written: boolean, deadline: Deadline, timeoutMs: number): AttemptOutcome {
  // Refused before connecting: the address stays refused however often we try.
  const blocked = findSsrfBlocked(error);
  if (blocked) return { kind: 'failed', retryable: false, error: `request not sent: provider address refused: ${blocked.message}` };
  if (deadline.timedOut) {
    return written
      ? { kind: 'unknown', error: `no complete answer within ${timeoutMs} ms after the request was sent` }
      : { kind: 'failed', retryable: true, error: `timed out after ${timeoutMs} ms before the request was sent` };
  }
  if (deadline.callerAborted) {
    return written
      ? { kind: 'unknown', error: 'aborted by the caller after the request was sent' }
      : { kind: 'failed', retryable: true, error: 'aborted by the caller before the request was sent' };
  }
  // Before the socket write (refused, DNS, unreachable, connect timeout) nothing left.
  const description = describeNetworkError(error);
  return written
    ? { kind: 'unknown', error: `connection failed after the request was sent: ${description}` }
    : { kind: 'failed', retryable: true, error: `request not sent: ${description}` };
}

// ---------------------------------------------------------------------------------------------
// Shared with the MCP invoker: deadlines, "was it written?" tracking, network error codes.

/** Every `code` in an error's cause chain (and an AggregateError's members), outermost first. */
export function networkErrorCodes(error: unknown): string[] {
  const codes: string[] = [];
  const seen = new Set<unknown>();
  const visit = (value: unknown, depth: number): void => {
    if (typeof value !== 'object' || value === null || seen.has(value) || depth > 8) return;
    seen.add(value);
    const { code, cause, errors } = value as { code?: unknown; cause?: unknown; errors?: unknown };
    if (typeof code === 'string') codes.push(code);
    visit(cause, depth + 1);
    if (Array.isArray(errors)) for (const member of errors) visit(member, depth + 1);
  };
  visit(error, 0);
  return codes;
}

export function describeNetworkError(error: unknown): string {
  const codes = [...new Set(networkErrorCodes(error))];
  let message = error instanceof Error ? error.message : String(error);
  // fetch wraps everything in "fetch failed"; the cause says what happened.
  let cause: unknown = error instanceof Error ? error.cause : undefined;
  while (message === 'fetch failed' && cause instanceof Error) {
    message = cause.message;
    cause = cause.cause;
  }
  return codes.length > 0 ? `${codes.join('/')}: ${message}` : message;
}

/**
 * An interceptor that calls `onWritten` when undici hands the request to a socket, i.e. right
 * before its bytes are written. Not called for a request aborted while it waited.
 */
export function onRequestWritten(onWritten: () => void): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (options, handler) =>
    dispatch(options, {
      onRequestStart(controller, context) {
        handler.onRequestStart?.(controller, context);
        if (!controller.aborted) onWritten();
      },
      onRequestUpgrade: (controller, statusCode, headers, socket) => handler.onRequestUpgrade?.(controller, statusCode, headers, socket),
      onResponseStart: (controller, statusCode, headers, statusMessage) => handler.onResponseStart?.(controller, statusCode, headers, statusMessage),
      onResponseData: (controller, chunk) => handler.onResponseData?.(controller, chunk),
      onResponseEnd: (controller, trailers) => handler.onResponseEnd?.(controller, trailers),
      onResponseError: (controller, error) => handler.onResponseError?.(controller, error),
    });
}

export interface Deadline {
  /** Aborts when the timeout passes or the caller's signal aborts. */
  readonly signal: AbortSignal;
  readonly timedOut: boolean;
  readonly callerAborted: boolean;
  /** Rejects once the deadline passes while `isWritten()` is still false; never settles otherwise. */
  abortedBeforeWrite(isWritten: () => boolean): Promise<never>;
  dispose(): void;
}

export function startDeadline(timeoutMs: number, callerSignal?: AbortSignal): Deadline {
  const controller = new AbortController();
  let timedOut = false;
  let callerAborted = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error(`timed out after ${timeoutMs} ms`));
  }, timeoutMs);
  const onCallerAbort = (): void => {
    callerAborted = true;
    controller.abort(callerSignal?.reason);
  };
  if (callerSignal?.aborted) onCallerAbort();
  else callerSignal?.addEventListener('abort', onCallerAbort, { once: true });
  return {
    signal: controller.signal,
    get timedOut() {
      return timedOut;
    },
    get callerAborted() {
      return callerAborted;
    },
    abortedBeforeWrite(isWritten) {
      return new Promise<never>((_resolve, reject) => {
        const check = (): void => {
          if (!isWritten()) reject(controller.signal.reason);
        };
        if (controller.signal.aborted) check();
        else controller.signal.addEventListener('abort', check, { once: true });
      });
    },
    dispose() {
      clearTimeout(timer);
      callerSignal?.removeEventListener('abort', onCallerAbort);
    },
  };
}
