/**
 * The HTTP transport: one tool call is exactly one HTTP request, never retried here.
 *
 * Classification hinges on one fact: did the request reach a socket? undici tells us when it
 * hands a request to a connection (`onRequestStart`, right before the bytes are written). Any
 * failure before that point proves the tool never saw the call, so it is a retryable `failed`;
 * any failure after it without a status line (timeout, reset, closed socket) is `unknown`.
 */
import { FormData, request } from 'undici';
import type { Agent, Dispatcher } from 'undici';
import { createGuardedAgent, findSsrfBlocked, type ResolveAll } from './ssrf-guard.ts';
import type { AttemptOutcome } from './types.ts';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD' | 'OPTIONS';

/** Where one input property goes in the request (an OpenAPI parameter). */
export interface PlacedParam {
  in: 'path' | 'query' | 'header';
  /** The parameter's name in the request, which may differ from the input property's. */
  name: string;
  /** Query objects: `deepObject` sends `name[key]=value`; otherwise each key is its own pair. */
  style?: 'deepObject';
  /** Query lists joined into one value with this (`,` `|` space tab); repeated pairs when absent. */
  delimiter?: string;
}

/**
 * How an operation imported from OpenAPI wants its params: each named input property in the
 * path, query or a header, and one property as the request body. Properties it does not name
 * are never sent. Tools without a placement keep the plain rule (path placeholders, then a JSON
 * body for POST/PUT/PATCH or the query string otherwise).
 */
export interface ParamPlacement {
  params: Record<string, PlacedParam>;
  body?: { property: string; encoding: 'json' | 'form' | 'multipart' };
}

export interface HttpToolSpec {
  method: HttpMethod;
  /** Path below the provider's base URL; `{name}` segments are filled from the params. */
  path: string;
  placement?: ParamPlacement;
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
      headers: built.headers,
      body: built.body,
      signal: deadline.signal,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      dispatcher,
    });
    // undici only rejects an aborted request once it reaches a socket (or the connect attempt
    // fails), which can take up to the connect timeout: answer as soon as the deadline passes.
    const response = await deadline.unlessUnwrittenAtDeadline(pending, () => written);
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

type BuiltRequest = { url: URL; headers: Record<string, string>; body: string | FormData | undefined } | { error: string };

const JSON_HEADERS = { accept: 'application/json', 'content-type': 'application/json' };

function buildHttpRequest(tool: HttpToolSpec, baseUrl: string, params: Record<string, unknown>): BuiltRequest {
  if (tool.placement) return buildPlacedRequest(tool, tool.placement, baseUrl, params);
  const rest: Record<string, unknown> = { ...params };
  const path = fillPath(tool.path, (name) => {
    delete rest[name];
    return params[name];
  });
  if (typeof path !== 'string') return path;
  const url = toolUrl(baseUrl, path, tool.path);
  if ('error' in url) return url;
  if (BODY_METHODS.has(tool.method)) return { url, headers: JSON_HEADERS, body: JSON.stringify(rest) };
  for (const [name, value] of Object.entries(rest)) {
    if (value === undefined) continue;
    url.searchParams.append(name, queryValue(value));
  }
  return { url, headers: { accept: 'application/json' }, body: undefined };
}

/** Fills `{name}` segments, URL-encoded; a missing, non-scalar, `.` or `..` value is an error. */
function fillPath(template: string, valueOf: (name: string) => unknown): string | { error: string } {
  let missing: string | undefined;
  let invalid: string | undefined;
  const path = template.replace(/\{([^{}]+)\}/g, (_match, name: string) => {
    const value = valueOf(name);
    if (value === undefined || value === null || value === '') {
      missing ??= name;
      return '';
    }
    const text = isScalar(value) ? String(value) : undefined;
    // `..` survives encodeURIComponent and URL resolution would climb out of the tool's path.
    if (text === undefined || text === '.' || text === '..') {
      invalid ??= name;
      return '';
    }
    return encodeURIComponent(text);
  });
  if (missing !== undefined) return { error: `missing path parameter ${missing}` };
  if (invalid !== undefined) return { error: `path parameter ${invalid} must be a string, number or boolean, and not . or ..` };
  return path;
}

function isScalar(value: unknown): value is string | number | boolean {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
}

function toolUrl(baseUrl: string, path: string, template: string): URL | { error: string } {
  try {
    return new URL(`${baseUrl.replace(/(?<!\/)\/+$/, '')}/${path.replace(/^\/+/, '')}`);
  } catch {
    return { error: `invalid tool URL: base ${baseUrl}, path ${template}` };
  }
}

/** An OpenAPI operation's request: every param where the operation declared it. */
function buildPlacedRequest(tool: HttpToolSpec, placement: ParamPlacement, baseUrl: string, params: Record<string, unknown>): BuiltRequest {
  const pathValues = new Map<string, unknown>();
  const headers: Record<string, string> = { accept: 'application/json' };
  const query: Array<[string, string]> = [];
  for (const [property, place] of Object.entries(placement.params)) {
    const value = params[property];
    if (value === undefined) continue;
    // A list in the path is OpenAPI's `simple` style: comma-separated.
    if (place.in === 'path') pathValues.set(place.name, Array.isArray(value) && value.every(isScalar) ? value.join(',') : value);
    else if (place.in === 'query') query.push(...queryPairs(place, value));
    else {
      const text = headerValue(value);
      // CR, LF or NUL in a header would let a param write further headers or a second request.
      if (text === undefined || /[\r\n\0]/.test(text)) return { error: `header parameter ${place.name} must be a string, number, boolean or a list of them, on one line` };
      headers[place.name] = text;
    }
  }
  const path = fillPath(tool.path, (name) => pathValues.get(name));
  if (typeof path !== 'string') return path;
  const url = toolUrl(baseUrl, path, tool.path);
  if ('error' in url) return url;
  for (const [name, value] of query) url.searchParams.append(name, value);
  const bodyValue = placement.body === undefined ? undefined : params[placement.body.property];
  if (placement.body === undefined || bodyValue === undefined) return { url, headers, body: undefined };
  switch (placement.body.encoding) {
    case 'json':
      return { url, headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(bodyValue) };
    case 'form':
      return { url, headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(formPairs(bodyValue)).toString() };
    case 'multipart': {
      // undici writes the content type with its boundary.
      const form = new FormData();
      for (const [name, value] of formPairs(bodyValue)) form.append(name, value);
      return { url, headers, body: form };
    }
  }
}

/** Arrays repeat the name (OpenAPI's default `form` style, exploded); objects spread their keys. */
function queryPairs(place: PlacedParam, value: unknown): Array<[string, string]> {
  if (Array.isArray(value)) {
    const values = value.map(queryValue);
    return place.delimiter === undefined ? values.map((item) => [place.name, item]) : [[place.name, values.join(place.delimiter)]];
  }
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).map(([key, item]) => [place.style === 'deepObject' ? `${place.name}[${key}]` : key, queryValue(item)]);
  }
  return [[place.name, queryValue(value)]];
}

function headerValue(value: unknown): string | undefined {
  if (isScalar(value)) return String(value);
  if (Array.isArray(value) && value.every(isScalar)) return value.map(String).join(',');
  return undefined;
}

function formPairs(body: unknown): Array<[string, string]> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return [];
  return Object.entries(body).flatMap(([name, value]): Array<[string, string]> => {
    if (value === undefined) return [];
    if (Array.isArray(value)) return value.map((item) => [name, queryValue(item)]);
    return [[name, queryValue(value)]];
  });
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
  /**
   * Settles as `work` does, or rejects first once the deadline passes while `isWritten()` is still
   * false. Its listener on the deadline goes as soon as either happens.
   */
  unlessUnwrittenAtDeadline<T>(work: Promise<T>, isWritten: () => boolean): Promise<T>;
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
    // Not Promise.race with a promise that never settles (and a listener never removed): with
    // that, each call's undici request and response, its signal and the frames awaiting them
    // outlived two young-generation collections, promoted to the old generation: 7.7 KB a call
    // at concurrency 16, 2.2 KB with this, and half the scavenge pauses (--trace-gc-nvp).
    unlessUnwrittenAtDeadline(work, isWritten) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (!isWritten()) reject(controller.signal.reason);
        };
        const done = (): void => controller.signal.removeEventListener('abort', check);
        if (controller.signal.aborted) check();
        else controller.signal.addEventListener('abort', check, { once: true });
        work.then(
          (value) => {
            done();
            resolve(value);
          },
          (error: unknown) => {
            done();
            reject(error);
          },
        );
      });
    },
    dispose() {
      clearTimeout(timer);
      callerSignal?.removeEventListener('abort', onCallerAbort);
    },
  };
}
