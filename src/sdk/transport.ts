import { errorForAnswer, InvokeConnectionError, type InvokeError, type ServerError } from './errors.ts';

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface TransportOptions {
  apiKey: string;
  baseUrl: string;
  /** Per request; a long poll adds its own wait on top. */
  timeoutMs: number;
  fetch: FetchLike;
  /** Transport retries after the first attempt. */
  maxRetries: number;
  /** The first backoff; doubled each retry (with jitter), capped at 30 s. */
  retryBaseMs: number;
}

/**
 * Which failures a request may be sent again after:
 * - `replayable`: GETs and keyed POSTs (the server replays a repeated key), so a failure where
 *   the request may have arrived (connection dropped, timeout, 502/504) is safe to repeat;
 * - `unprocessed`: POSTs without a key (approve, reject, register): only answers that say the
 *   server did nothing (429, 503) are retried; anything else is reported, never guessed at.
 */
export type RetryMode = 'replayable' | 'unprocessed';

export interface RequestSpec {
  method: 'GET' | 'POST';
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
  retry: RetryMode;
  /** Added to the timeout (a long poll that waits on the server). */
  extraTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface Answer<T> {
  status: number;
  headers: Headers;
  body: T;
  /** Raw text, for streamed exports. */
  text: string;
}

const MAX_BACKOFF_MS = 30_000;

function retryAfterMs(headers: Headers): number | undefined {
  const value = headers.get('retry-after');
  if (value === null) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function backoffMs(attempt: number, base: number, hint: number | undefined): number {
  if (hint !== undefined) return Math.min(hint, MAX_BACKOFF_MS);
  const ceiling = Math.min(MAX_BACKOFF_MS, base * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', aborted);
      resolve();
    }
    function aborted() {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener('abort', aborted, { once: true });
  });
}

function serverErrorOf(status: number, body: unknown, text: string): ServerError {
  const error = (body as { error?: Partial<ServerError> } | undefined)?.error;
  if (error && typeof error.code === 'string' && typeof error.message === 'string') return error as ServerError;
  return { code: `http_${status}`, message: text.slice(0, 300) || `HTTP ${status}` };
}

/** Whether a refused answer may be retried under `mode`; `resent` says this was already a retry. */
function isTransientAnswer(status: number, body: unknown, mode: RetryMode, resent: boolean, headers: Headers): boolean {
  if (status === 429) return headers.has('retry-after');
  if (status === 503) return true;
  if (mode === 'unprocessed') return false;
  if (status === 502 || status === 504) return true;
  // Our own earlier attempt may still be running on the server: its answer comes with the replay.
  return resent && status === 409 && serverErrorOf(status, body, '').code === 'idempotency_key_in_flight';
}

/** `http://host/` and `http://host` alike; a loop, since `/\/+$/` backtracks quadratically on a long run of slashes. */
function withoutTrailingSlashes(url: string): string {
  let end = url.length;
  while (end > 0 && url[end - 1] === '/') end -= 1;
  return url.slice(0, end);
}

/** One JSON request over HTTP with the key, a timeout and bounded retries. */
export function createTransport(options: TransportOptions) {
  const base = withoutTrailingSlashes(options.baseUrl);

  function urlOf(spec: RequestSpec): string {
    const url = new URL(base + spec.path);
    for (const [name, value] of Object.entries(spec.query ?? {})) if (value !== undefined) url.searchParams.set(name, String(value));
    return url.toString();
  }

  async function once<T>(spec: RequestSpec): Promise<Answer<T>> {
    const timeout = AbortSignal.timeout(options.timeoutMs + (spec.extraTimeoutMs ?? 0));
    const signal = spec.signal ? AbortSignal.any([spec.signal, timeout]) : timeout;
    const response = await options.fetch(urlOf(spec), {
      method: spec.method,
      headers: {
        accept: 'application/json',
        'x-api-key': options.apiKey,
        ...(spec.body === undefined ? {} : { 'content-type': 'application/json' }),
        ...spec.headers,
      },
      body: spec.body === undefined ? undefined : JSON.stringify(spec.body),
      signal,
    });
    const text = await response.text();
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: response.status, headers: response.headers, body: body as T, text };
  }

  return {
    baseUrl: base,

    async request<T>(spec: RequestSpec): Promise<Answer<T>> {
      let lastError: InvokeError | undefined;
      let lastHint: number | undefined;
      for (let attempt = 0; attempt <= options.maxRetries; attempt++) {
        if (attempt > 0) await sleep(backoffMs(attempt - 1, options.retryBaseMs, lastHint), spec.signal);
        let answer: Answer<T>;
        try {
          answer = await once<T>(spec);
        } catch (error) {
          // The caller's own abort is not a transport failure: it ends the request as it is.
          if (spec.signal?.aborted) throw spec.signal.reason;
          const cause = error as Error;
          lastHint = undefined;
          const timedOut = cause.name === 'TimeoutError';
          lastError = new InvokeConnectionError(
            timedOut ? `No answer from ${base} within ${options.timeoutMs} ms` : `Cannot reach Invoke at ${base}: ${connectionReason(cause)}`,
            timedOut ? 'timeout' : 'unreachable',
            0,
            { base_url: base },
          );
          if (spec.retry === 'unprocessed') throw lastError;
          continue;
        }
        if (answer.status < 400) return answer;
        lastHint = retryAfterMs(answer.headers);
        lastError = errorForAnswer(answer.status, serverErrorOf(answer.status, answer.body, answer.text), lastHint);
        if (!isTransientAnswer(answer.status, answer.body, spec.retry, attempt > 0, answer.headers)) throw lastError;
      }
      throw lastError!;
    },
  };
}
export type Transport = ReturnType<typeof createTransport>;

/** Node's fetch hides the reason (ECONNREFUSED, ENOTFOUND) in `cause`. */
function connectionReason(error: Error): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? error.message;
}
