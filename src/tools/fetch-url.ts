/**
 * The built-in `fetch.url` tool: one guarded HTTP GET.
 *
 * Redirects are followed here, hop by hop, so every hop goes through the same SSRF checks as
 * the first request (undici's own redirect handling would connect before we could look).
 */
import { request } from 'undici';
import type { CapabilityCard, AttemptOutcome } from './types.ts';
import { assertUrlAllowed, createGuardedAgent, findSsrfBlocked } from './ssrf-guard.ts';

export interface FetchUrlOptions {
  maxBytes: number;
  timeoutMs: number;
  maxRedirects: number;
  /** `host` or `host:port` entries exempt from the SSRF guard. */
  allowHosts: string[];
}

export interface FetchUrlResult {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

export interface FetchUrlTool {
  card: CapabilityCard;
  invoke(params: Record<string, unknown>, signal?: AbortSignal): Promise<AttemptOutcome>;
  /** Closes pooled connections (shutdown, tests). */
  close(): Promise<void>;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
// Credentials meant for one origin must not follow a redirect to another.
const ORIGIN_BOUND_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization']);

class ResponseTooLargeError extends Error {}

interface FetchParams {
  url: URL;
  headers: Record<string, string>;
}

function fetchUrlCard(timeoutMs: number): CapabilityCard {
  return {
    key: 'fetch.url',
    provider: 'fetch',
    name: 'url',
    description: 'HTTP GET a public URL and return {status, headers, body}; the body is parsed when it is JSON. ' + 'Private, loopback and metadata addresses are refused.',
    input_schema: {
      type: 'object',
      properties: {
        url: { type: 'string', description: 'Absolute http(s) URL' },
        headers: { type: 'object', additionalProperties: { type: 'string' } },
      },
      required: ['url'],
      additionalProperties: false,
    },
    risk: 'low',
    side_effects: false,
    idempotent: true,
    timeout_ms: timeoutMs,
    transport: 'builtin',
  };
}

function parseParams(params: Record<string, unknown>): FetchParams | string {
  const { url, headers } = params;
  if (typeof url !== 'string') return 'url must be a string';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `invalid URL: ${url}`;
  }
  const out: Record<string, string> = {};
  if (headers !== undefined) {
    if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
      return 'headers must be an object of strings';
    }
    for (const [name, value] of Object.entries(headers)) {
      if (typeof value !== 'string') return `header ${name} must be a string`;
      // We read the body as-is; a compressed body would be garbage to the caller.
      if (name.toLowerCase() === 'accept-encoding') continue;
      out[name] = value;
    }
  }
  out['accept-encoding'] = 'identity';
  return { url: parsed, headers: out };
}

function flattenHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

function isJsonContentType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const mediaType = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
  return mediaType === 'application/json' || mediaType.endsWith('+json');
}

type ResponseBody = AsyncIterable<Buffer> & NodeJS.EventEmitter & { destroy(): void };

/** Drops a response mid-stream. undici errors an unfinished body on destroy; nobody is listening. */
function discard(body: ResponseBody): void {
  body.on('error', () => undefined);
  body.destroy();
}

async function readCapped(body: ResponseBody, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if (total > maxBytes) {
      discard(body);
      throw new ResponseTooLargeError();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function decodeBody(raw: Buffer, contentType: string | undefined): unknown {
  const text = raw.toString('utf8');
  if (!isJsonContentType(contentType)) return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // Mislabelled content: the caller still gets what the server sent.
    return text;
  }
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  const cause = (err as { cause?: unknown } | null)?.cause;
  return cause === undefined ? undefined : errorCode(cause);
}

function networkFailure(err: unknown): AttemptOutcome {
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  switch (code) {
    case 'ECONNREFUSED':
      return { kind: 'failed', retryable: true, error: `connection refused: ${message}` };
    case 'ENOTFOUND':
      return { kind: 'failed', retryable: false, error: `host not found: ${message}` };
    default:
      // A GET has no side effects, so a lost request is simply worth another try.
      return { kind: 'failed', retryable: true, error: `request failed${code ? ` (${code})` : ''}: ${message}` };
  }
}

function statusFailure(status: number, body: unknown): AttemptOutcome {
  // 408 and 429 are the server asking us to come back later.
  const retryable = status >= 500 || status === 408 || status === 429;
  return { kind: 'failed', retryable, error: `HTTP ${status}`, http_status: status, body };
}

export function createFetchUrlTool(opts: FetchUrlOptions): FetchUrlTool {
  const { maxBytes, timeoutMs, maxRedirects, allowHosts } = opts;
  const dispatcher = createGuardedAgent({ allowHosts, connectTimeoutMs: timeoutMs });
  const card = fetchUrlCard(timeoutMs);

  async function invoke(params: Record<string, unknown>, signal?: AbortSignal): Promise<AttemptOutcome> {
    const parsed = parseParams(params);
    if (typeof parsed === 'string') return { kind: 'failed', retryable: false, error: parsed };

    const deadline = AbortSignal.timeout(timeoutMs);
    const combined = signal ? AbortSignal.any([deadline, signal]) : deadline;
    let url = parsed.url;
    let headers = parsed.headers;

    try {
      for (let hop = 0; ; hop++) {
        assertUrlAllowed(url, allowHosts);
        const res = await request(url, { method: 'GET', headers, dispatcher, signal: combined });
        const location = res.headers.location;

        if (REDIRECT_STATUSES.has(res.statusCode) && typeof location === 'string') {
          await res.body.dump();
          if (hop >= maxRedirects) {
            return {
              kind: 'failed',
              retryable: false,
              error: `too many redirects (more than ${maxRedirects})`,
              http_status: res.statusCode,
            };
          }
          let next: URL;
          try {
            next = new URL(location, url);
          } catch {
            const error = `invalid redirect location: ${location}`;
            return { kind: 'failed', retryable: false, error, http_status: res.statusCode };
          }
          if (next.origin !== url.origin) {
            headers = Object.fromEntries(Object.entries(headers).filter(([name]) => !ORIGIN_BOUND_HEADERS.has(name.toLowerCase())));
          }
          url = next;
          continue;
        }

        const contentLength = Number(res.headers['content-length']);
        if (Number.isFinite(contentLength) && contentLength > maxBytes) {
          discard(res.body);
          throw new ResponseTooLargeError();
        }
        const contentType = res.headers['content-type'];
        const raw = await readCapped(res.body, maxBytes);
        const body = decodeBody(raw, typeof contentType === 'string' ? contentType : undefined);

        if (res.statusCode >= 400) return statusFailure(res.statusCode, body);
        const result: FetchUrlResult = { status: res.statusCode, headers: flattenHeaders(res.headers), body };
        return { kind: 'ok', result, http_status: res.statusCode };
      }
    } catch (err) {
      const blocked = findSsrfBlocked(err);
      if (blocked) return { kind: 'failed', retryable: false, error: `blocked by SSRF guard: ${blocked.message}` };
      if (err instanceof ResponseTooLargeError) {
        return { kind: 'failed', retryable: false, error: `response larger than ${maxBytes} bytes` };
      }
      if (deadline.aborted) return { kind: 'failed', retryable: true, error: `timed out after ${timeoutMs} ms` };
      if (signal?.aborted) return { kind: 'failed', retryable: true, error: 'aborted by caller' };
      return networkFailure(err);
    }
  }

  return { card, invoke, close: () => dispatcher.close() };
}
