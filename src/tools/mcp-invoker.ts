/**
 * The MCP transport (Streamable HTTP, through the official SDK): one invoke opens a session,
 * sends `tools/call` once and closes.
 *
 * Nothing retries `tools/call`: the transport's SSE reconnection is off (`maxRetries: 0`), no
 * auth provider is configured (its 401 path re-sends), and requests go through our own undici
 * Agent with no retry interceptor. Classification follows the protocol's phases:
 * - anything failing before `tools/call` reached a socket (connect, `initialize`, the send
 *   itself) is a retryable `failed`: the tool never saw the call;
 * - a JSON-RPC error or an `isError` result is the server's answer: non-retryable `failed`;
 * - a timeout or a dropped connection after `tools/call` was written is `unknown`.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { CallToolResultSchema, ListToolsResultSchema, McpError, isJSONRPCErrorResponse } from '@modelcontextprotocol/sdk/types.js';
import type { CallToolResult, JSONRPCMessage, Tool } from '@modelcontextprotocol/sdk/types.js';
import { fetch as undiciFetch } from 'undici';
import type { RequestInit as UndiciRequestInit } from 'undici';
import { $ZodError } from 'zod/v4/core';
import type { AttemptOutcome, CapabilityCard } from './types.ts';
import { describeNetworkError, networkErrorCodes, onRequestWritten, PROVIDER_CONNECT_TIMEOUT_MS, startDeadline } from './http-invoker.ts';
import type { Deadline } from './http-invoker.ts';
import { createGuardedAgent, findSsrfBlocked, type ResolveAll, type SsrfBlockedError } from './ssrf-guard.ts';

export interface McpToolAnnotations {
  title?: string;
  readOnlyHint?: boolean;
  destructiveHint?: boolean;
  idempotentHint?: boolean;
  openWorldHint?: boolean;
}

export interface McpToolInfo {
  name: string;
  description: string;
  inputSchema: Record<string, unknown>;
  annotations?: McpToolAnnotations;
}

const CLIENT_INFO = { name: 'invoke', version: '0.1.0' };
const MAX_TOOL_PAGES = 50;
const TERMINATE_SESSION_MS = 1_000;
// The session is torn down right after a tool answer arrives; 404 means the server lost the session
// before tools/call was processed, 408/429 that it declined to process it now.
const RETRYABLE_HTTP_4XX: ReadonlySet<number> = new Set([404, 408, 429]);

export type ListingPhase = 'initialize' | 'tools/list';

/**
 * Listing failed. The message says what went wrong in general terms only (phase, HTTP status,
 * MCP error code, network code): the server may be an internal service, and echoing its answer
 * to whoever registers it would make registration a way to read internal pages.
 */
export class McpListingError extends Error {
  constructor(
    readonly phase: ListingPhase,
    message: string,
    /** Set when the SSRF guard refused the server's address. */
    readonly blocked: SsrfBlockedError | undefined,
    options: { cause: unknown },
  ) {
    super(message, options);
    this.name = 'McpListingError';
  }
}

/** Lists the server's tools (following pagination). Throws McpListingError on failure. */
export async function listMcpTools(mcpUrl: string, timeoutMs: number, resolveAll?: ResolveAll): Promise<McpToolInfo[]> {
  const deadline = startDeadline(timeoutMs);
  const session = openMcpSession(new URL(mcpUrl), timeoutMs, resolveAll);
  const options = { signal: deadline.signal, timeout: timeoutMs };
  let phase: ListingPhase = 'initialize';
  try {
    await session.connect(options);
    phase = 'tools/list';
    const tools: McpToolInfo[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_TOOL_PAGES; page++) {
      // A raw request: Client.listTools would also compile every output schema, and one the
      // validator rejects would fail the whole listing.
      const result = await session.client.request({ method: 'tools/list', params: cursor === undefined ? {} : { cursor } }, ListToolsResultSchema, options);
      tools.push(...result.tools.map(toToolInfo));
      cursor = result.nextCursor;
      if (cursor === undefined) break;
    }
    await session.close({ terminate: true });
    return tools;
  } catch (error) {
    await session.close({ terminate: false });
    const blocked = findSsrfBlocked(error);
    const problem = deadline.timedOut ? `did not answer ${phase} within ${timeoutMs} ms` : describeListingFailure(error, phase);
    throw new McpListingError(phase, problem, blocked, { cause: error });
  } finally {
    deadline.dispose();
  }
}

/** What went wrong, from the kind of error alone: never its message, which may quote the server. */
function describeListingFailure(error: unknown, phase: ListingPhase): string {
  if (findSsrfBlocked(error)) return `could not be reached during ${phase}: its address is refused`;
  if (error instanceof StreamableHTTPError && error.code !== undefined && error.code > 0) return `answered ${phase} with HTTP ${error.code}`;
  if (error instanceof StreamableHTTPError) return `answered ${phase} with a response that is neither JSON nor an event stream`;
  if (error instanceof SyntaxError) return `answered ${phase} with a body that is not JSON`;
  if (error instanceof $ZodError) return `answered ${phase} with a malformed result`;
  if (error instanceof McpError) return `answered ${phase} with an MCP error (code ${error.code})`;
  const codes = [...new Set(networkErrorCodes(error))];
  if (codes.length > 0) return `could not be reached during ${phase} (${codes.join('/')})`;
  // undici's fetch reports every network failure so (refused port, TLS, reset) and says which in a cause.
  if (error instanceof TypeError && error.message === 'fetch failed') return `could not be reached during ${phase}`;
  return `answered ${phase} with something that is not a usable MCP answer`;
}

/**
 * Card fields implied by MCP tool annotations (hints from the server, not guarantees: explicit
 * overrides are merged on top by the caller). Unannotated tools are treated as side-effecting,
 * medium risk, not idempotent.
 */
export function mcpAnnotationsToCard(annotations: McpToolAnnotations | undefined): Pick<CapabilityCard, 'side_effects' | 'risk' | 'idempotent'> {
  // Per the MCP spec, destructiveHint and idempotentHint only mean something for tools that write.
  if (annotations?.readOnlyHint === true) {
    return { side_effects: false, risk: 'low', idempotent: annotations.idempotentHint ?? true };
  }
  return {
    side_effects: true,
    risk: annotations?.destructiveHint === true ? 'high' : 'medium',
    idempotent: annotations?.idempotentHint === true,
  };
}

export async function invokeMcpTool(
  mcpUrl: string,
  toolName: string,
  params: Record<string, unknown>,
  timeoutMs: number,
  signal?: AbortSignal,
  resolveAll?: ResolveAll,
): Promise<AttemptOutcome> {
  let url: URL;
  try {
    url = new URL(mcpUrl);
  } catch {
    return { kind: 'failed', retryable: false, error: `invalid MCP server URL: ${mcpUrl}` };
  }
  if (signal?.aborted) return { kind: 'failed', retryable: true, error: 'aborted before the request was sent' };

  const deadline = startDeadline(timeoutMs, signal);
  const session = openMcpSession(url, timeoutMs, resolveAll);
  const options = { signal: deadline.signal, timeout: timeoutMs };
  let phase: 'initialize' | 'call' = 'initialize';
  let result: CallToolResult | undefined;
  let failure: unknown;
  try {
    await session.connect(options);
    phase = 'call';
    result = await session.client.request({ method: 'tools/call', params: { name: toolName, arguments: params } }, CallToolResultSchema, options);
  } catch (error) {
    failure = error;
  }
  // Closing aborts whatever is still queued, so after it `callWritten` can no longer change.
  await session.close({ terminate: result !== undefined });
  deadline.dispose();
  if (result !== undefined) return toolResultOutcome(result);
  return classifyMcpFailure(failure, phase, session, deadline, timeoutMs);
}

interface McpSession {
  readonly client: Client;
  /** True once the `tools/call` request was handed to a socket. */
  readonly callWritten: boolean;
  /** The JSON-RPC error the server answered with, if any. */
  readonly rpcError: { code: number; message: string } | undefined;
  connect(options: { signal: AbortSignal; timeout: number }): Promise<void>;
  /** Never throws: a failing close must not mask the outcome. */
  close(how: { terminate: boolean }): Promise<void>;
}

function openMcpSession(url: URL, timeoutMs: number, resolveAll: ResolveAll | undefined): McpSession {
  let callWritten = false;
  let rpcError: { code: number; message: string } | undefined;
  // One pool per session, destroyed on close; only the tools/call request is tracked. Every
  // connection goes through the SSRF guard's provider profile.
  const agent = createGuardedAgent({
    profile: 'provider',
    connectTimeoutMs: PROVIDER_CONNECT_TIMEOUT_MS,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    ...(resolveAll === undefined ? {} : { resolveAll }),
  });
  const trackedAgent = agent.compose(onRequestWritten(() => (callWritten = true)));

  const fetchThroughAgent: FetchLike = async (input, init) => {
    const dispatcher = isToolsCallBody(init?.body) ? trackedAgent : agent;
    const response = await undiciFetch(input, { ...(init as UndiciRequestInit), dispatcher });
    return response;
  };
  const transport = new StreamableHTTPClientTransport(url, {
    fetch: fetchThroughAgent,
    reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 0, maxReconnectionDelay: 0, reconnectionDelayGrowFactor: 1 },
  });
  const client = new Client(CLIENT_INFO, { capabilities: {} });

  return {
    client,
    get callWritten() {
      return callWritten;
    },
    get rpcError() {
      return rpcError;
    },
    async connect(options) {
      await client.connect(transport, options);
      // Watch answers to tell a JSON-RPC error from the server apart from local failures.
      const deliver = transport.onmessage;
      transport.onmessage = (message: JSONRPCMessage) => {
        if (isJSONRPCErrorResponse(message)) rpcError = { code: message.error.code, message: message.error.message };
        deliver?.(message);
      };
    },
    async close({ terminate }) {
      if (terminate && transport.sessionId !== undefined) {
        await settleWithin(transport.terminateSession(), TERMINATE_SESSION_MS);
      }
      await client.close().catch(() => undefined);
      await agent.destroy().catch(() => undefined);
    },
  };
}

function isToolsCallBody(body: unknown): boolean {
  if (typeof body !== 'string' || !body.includes('tools/call')) return false;
  try {
    return (JSON.parse(body) as { method?: unknown }).method === 'tools/call';
  } catch {
    return false;
  }
}

async function settleWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

function toToolInfo(tool: Tool): McpToolInfo {
  const info: McpToolInfo = { name: tool.name, description: tool.description ?? '', inputSchema: tool.inputSchema };
  const source = tool.annotations;
  if (source !== undefined) {
    const annotations: McpToolAnnotations = {};
    if (source.title !== undefined) annotations.title = source.title;
    if (source.readOnlyHint !== undefined) annotations.readOnlyHint = source.readOnlyHint;
    if (source.destructiveHint !== undefined) annotations.destructiveHint = source.destructiveHint;
    if (source.idempotentHint !== undefined) annotations.idempotentHint = source.idempotentHint;
    if (source.openWorldHint !== undefined) annotations.openWorldHint = source.openWorldHint;
    info.annotations = annotations;
  }
  return info;
}

function toolResultOutcome(result: CallToolResult): AttemptOutcome {
  if (result.isError === true) {
    const text = joinedText(result.content);
    const error = text === '' ? 'the tool reported an error' : text;
    return result.structuredContent === undefined ? { kind: 'failed', retryable: false, error } : { kind: 'failed', retryable: false, error, body: result.structuredContent };
  }
  return { kind: 'ok', result: result.structuredContent ?? simplifyContent(result.content) };
}

/** One JSON text item becomes that JSON; text items are joined; anything else stays as content. */
function simplifyContent(content: CallToolResult['content']): unknown {
  if (content.length === 0) return null;
  if (!content.every((item) => item.type === 'text')) return content;
  const [only] = content;
  if (content.length === 1 && only !== undefined) {
    try {
      return JSON.parse(only.text) as unknown;
    } catch {
      return only.text;
    }
  }
  return joinedText(content);
}

function joinedText(content: CallToolResult['content']): string {
  return content.flatMap((item) => (item.type === 'text' ? [item.text] : [])).join('\n');
}

function classifyMcpFailure(error: unknown, phase: 'initialize' | 'call', session: McpSession, deadline: Deadline, timeoutMs: number): AttemptOutcome {
  // Refused before connecting: the address stays refused however often we try.
  const blocked = findSsrfBlocked(error);
  if (blocked && !session.callWritten) {
    return { kind: 'failed', retryable: false, error: `tools/call not sent: MCP server address refused: ${blocked.message}` };
  }
  const reason = deadline.timedOut ? `timed out after ${timeoutMs} ms` : deadline.callerAborted ? 'aborted by the caller' : describeMcpError(error);
  if (phase === 'initialize') {
    return { kind: 'failed', retryable: true, error: `MCP session setup failed, tools/call not sent: ${reason}` };
  }
  if (!session.callWritten) {
    return { kind: 'failed', retryable: true, error: `tools/call not sent: ${reason}` };
  }
  if (session.rpcError !== undefined) {
    const { code, message } = session.rpcError;
    // The SDK's McpError already prefixes its message with "MCP error <code>:".
    const error = message.startsWith('MCP error') ? message : `MCP error ${code}: ${message}`;
    return { kind: 'failed', retryable: false, error };
  }
  if (error instanceof StreamableHTTPError && error.code !== undefined && error.code >= 400 && error.code < 500) {
    // Rejected by the server's transport layer before any tool ran.
    return { kind: 'failed', retryable: RETRYABLE_HTTP_4XX.has(error.code), error: reason, http_status: error.code };
  }
  // Timeouts, dropped connections, transport-level 5xx (a gateway may answer after the tool
  // ran) and answers we could not parse: the call may have taken effect.
  return { kind: 'unknown', error: `tools/call sent, outcome unknown: ${reason}` };
}

function describeMcpError(error: unknown): string {
  if (error instanceof StreamableHTTPError && error.code !== undefined && error.code > 0) return `HTTP ${error.code}: ${error.message}`;
  if (error instanceof McpError || error instanceof StreamableHTTPError) return error.message;
  return describeNetworkError(error);
}
