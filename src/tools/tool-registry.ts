import { AppError, NotFoundError, UnprocessableError, ValidationError } from '../errors.ts';
import { parseInput } from '../http/validation.ts';
import { assertValidConditions } from '../policy/conditions.ts';
import type { ParamValidator } from './param-validator.ts';
import { loadOpenApiDocument, OPENAPI_LIMITS, OpenApiFetchError, type OpenApiLimits } from './openapi-document.ts';
import { documentBaseUrl, operationsToTools, type SkippedOperation } from './openapi-tools.ts';
import {
  httpProviderSchema,
  mcpProviderSchema,
  openapiProviderSchema,
  type HttpProviderRegistration,
  type McpProviderRegistration,
  type OpenapiProviderRegistration,
} from './schemas.ts';
import type { StoredTool, ToolsRepository } from './tools-repository.ts';
import type { AttemptOutcome, CapabilityCard } from './types.ts';
import { createHttpToolAgent, invokeHttpTool } from './http-invoker.ts';
import { invokeMcpTool, listMcpTools, mcpAnnotationsToCard, McpListingError } from './mcp-invoker.ts';
import { assertProviderUrlAllowed, isSsrfBlockedError, type ResolveAll } from './ssrf-guard.ts';

const BUILTIN_PROVIDER = 'fetch';
/** Provider names whose tool keys Invoke itself uses: the built-ins, and the MCP gateway's own tools (`invoke.approval_status`). */
const RESERVED_PROVIDERS: ReadonlyMap<string, string> = new Map([
  [BUILTIN_PROVIDER, 'built-in tools'],
  ['invoke', "the MCP gateway's own tools"],
]);

/** A provider URL pointing at a link-local or cloud metadata address (or a name for one). */
export class ForbiddenAddressError extends AppError {
  constructor(message: string, details?: unknown) {
    super(400, 'forbidden_address', message, details);
  }
}

export interface BuiltinTool {
  card: CapabilityCard;
  invoke(params: Record<string, unknown>, signal?: AbortSignal): Promise<AttemptOutcome>;
}

/** How long a looked-up tool is reused; NOTIFY drops it sooner when its provider changes. */
const TOOL_CACHE_MS = 5_000;

export interface ToolRegistryDeps {
  repository: ToolsRepository;
  validator: ParamValidator;
  builtins: BuiltinTool[];
  defaultTimeoutMs: number;
  /** How provider host names are resolved, at registration and at connect time; system DNS when absent. */
  resolveHost?: ResolveAll;
  /** Caps on an imported OpenAPI document; the defaults when absent. */
  openapiLimits?: OpenApiLimits;
}

export type ProviderKind = 'http' | 'mcp' | 'openapi';

/** Which kind a registration body is: by `mcp_url`, then `openapi`, else plain HTTP. */
function providerKindOf(body: unknown): ProviderKind {
  if (typeof body !== 'object' || body === null) return 'http';
  if ('mcp_url' in body) return 'mcp';
  return 'openapi' in body ? 'openapi' : 'http';
}

/** Providers, capability cards, discovery, and the one door through which a tool is invoked. */
export function createToolRegistry({ repository, validator, builtins, defaultTimeoutMs, resolveHost, openapiLimits = OPENAPI_LIMITS }: ToolRegistryDeps) {
  const builtinByKey = new Map(builtins.map((b) => [b.card.key, b]));
  // The HTTP invoker's shared pool resolves with system DNS; another resolver needs its own pool.
  const httpAgent = resolveHost === undefined ? undefined : createHttpToolAgent(resolveHost);
  // Every call looks its tool up; a short-lived cache spares the store that read.
  const cache = new Map<string, { tool: StoredTool; until: number }>();
  const forgetProvider = (provider: string) => {
    for (const [key, entry] of cache) if (entry.tool.card.provider === provider) cache.delete(key);
  };

  function cardDefaults(provider: string, name: string, transport: CapabilityCard['transport']): CapabilityCard {
    return {
      key: `${provider}.${name}`,
      provider,
      name,
      description: '',
      input_schema: { type: 'object' },
      risk: 'medium',
      side_effects: true,
      idempotent: false,
      timeout_ms: defaultTimeoutMs,
      transport,
    };
  }

  function httpTools(reg: HttpProviderRegistration): StoredTool[] {
    return reg.tools.map((tool) => {
      const { name, method, path, ...overrides } = tool;
      const card: CapabilityCard = { ...cardDefaults(reg.name, name, 'http'), ...definedOnly(overrides) };
      return { card, transport: { kind: 'http', base_url: reg.base_url, method, path } };
    });
  }

  async function mcpTools(reg: McpProviderRegistration): Promise<StoredTool[]> {
    let listed;
    try {
      listed = await listMcpTools(reg.mcp_url, defaultTimeoutMs, resolveHost);
    } catch (error) {
      if (!(error instanceof McpListingError)) throw error;
      // The name passed the registration check, then resolved elsewhere when connecting.
      if (error.blocked) throw new ForbiddenAddressError(`mcp_url is refused: ${error.blocked.message}`, { field: 'mcp_url', range: error.blocked.range });
      throw new UnprocessableError('mcp_unreachable', `The MCP server at ${reg.mcp_url} ${error.message}`);
    }
    const overrides = new Map(reg.tools.map((t) => [t.name, t]));
    const unknown = reg.tools.filter((t) => !listed.some((l) => l.name === t.name)).map((t) => t.name);
    if (unknown.length > 0) {
      throw new ValidationError(`The MCP server does not list these tools: ${unknown.join(', ')}`, { unknown_tools: unknown });
    }
    return listed.map((tool) => {
      const { name: _name, ...override } = overrides.get(tool.name) ?? { name: tool.name };
      const card: CapabilityCard = {
        ...cardDefaults(reg.name, tool.name, 'mcp'),
        description: tool.description ?? '',
        input_schema: tool.inputSchema ?? { type: 'object' },
        ...mcpAnnotationsToCard(tool.annotations),
        ...definedOnly(override),
      };
      if (override.input_schema === undefined) assertServerSchema(reg.mcp_url, card);
      return { card, transport: { kind: 'mcp', mcp_url: reg.mcp_url, tool_name: tool.name } };
    });
  }

  /** The document's operations as tools, with the registration's overrides by tool name. */
  async function openapiTools(reg: OpenapiProviderRegistration): Promise<{ tools: StoredTool[]; skipped: SkippedOperation[]; baseUrl: string }> {
    const documentUrl = typeof reg.openapi === 'string' ? reg.openapi : undefined;
    if (documentUrl !== undefined) await assertProviderAddress('openapi', documentUrl);
    let document;
    try {
      document = await loadOpenApiDocument(reg.openapi, openapiLimits, resolveHost);
    } catch (error) {
      if (!(error instanceof OpenApiFetchError)) throw error;
      if (error.blocked) throw new ForbiddenAddressError(`openapi is refused: ${error.blocked.message}`, { field: 'openapi', range: error.blocked.range });
      throw new UnprocessableError('openapi_unreachable', `The OpenAPI document at ${documentUrl} ${error.message}`);
    }
    const baseUrl = reg.base_url ?? documentBaseUrl(document.api, documentUrl);
    if (baseUrl === undefined) throw new ValidationError('base_url is required: the document names no absolute http(s) server', { field: 'base_url' });
    const { tools: operations, skipped } = operationsToTools(document);
    const unknown = reg.tools.filter((t) => !operations.some((o) => o.name === t.name)).map((t) => t.name);
    if (unknown.length > 0) {
      throw new ValidationError(`The OpenAPI document has no operations named: ${unknown.join(', ')}`, { unknown_tools: unknown, tools: operations.map((o) => o.name) });
    }
    const overrides = new Map(reg.tools.map((t) => [t.name, t]));
    const tools = operations.map((operation): StoredTool => {
      const { name: _name, ...override } = overrides.get(operation.name) ?? { name: operation.name };
      const card: CapabilityCard = {
        ...cardDefaults(reg.name, operation.name, 'http'),
        description: operation.description,
        input_schema: operation.input_schema,
        side_effects: operation.side_effects,
        idempotent: operation.idempotent,
        ...definedOnly(override),
      };
      const { method, path, placement } = operation;
      return { card, transport: { kind: 'http', base_url: baseUrl, method, path, placement } };
    });
    return { tools, skipped, baseUrl };
  }

  /** A schema the server sent: refused without the validator's words, which quote it. */
  function assertServerSchema(mcpUrl: string, card: CapabilityCard): void {
    try {
      validator.assertValidSchema(card.input_schema, `input_schema of ${card.key}`);
    } catch {
      throw new UnprocessableError('mcp_invalid_tool', `The MCP server at ${mcpUrl} lists tool ${card.key} with an input schema that is not valid JSON Schema`, {
        tool: card.key,
      });
    }
  }

  /**
   * Before anything is stored: each `state_refetch` names a tool that will exist (in this
   * registration, another provider, or built in) and has conditions that parse. Otherwise the
   * mistake would surface only when a call needs that state.
   */
  async function assertStateRefetches(provider: string, tools: StoredTool[]): Promise<void> {
    const keys = new Set(tools.map((t) => t.card.key));
    for (const { card } of tools) {
      const refetch = card.state_refetch;
      if (!refetch) continue;
      const label = `state_refetch of ${card.key}`;
      if (!keys.has(refetch.tool)) {
        // This registration replaces every tool of its provider: stored ones do not count.
        const ownProvider = refetch.tool.startsWith(`${provider}.`);
        const exists = !ownProvider && (builtinByKey.has(refetch.tool) || (await repository.findTool(refetch.tool)) !== undefined);
        if (!exists) {
          const where = ownProvider ? `this registration of ${provider} does not list it` : 'no such tool is registered';
          throw new ValidationError(`${label} names ${refetch.tool}, which is not a tool (${where})`, { field: label, tool: refetch.tool });
        }
      }
      if (refetch.conditions) assertValidConditions(refetch.conditions, `state_refetch.conditions of ${card.key}`);
    }
  }

  /** Link-local and metadata addresses are refused for providers; loopback and private are not. */
  async function assertProviderAddress(field: 'base_url' | 'mcp_url' | 'openapi', url: string): Promise<void> {
    try {
      await assertProviderUrlAllowed(new URL(url), resolveHost);
    } catch (error) {
      if (isSsrfBlockedError(error)) throw new ForbiddenAddressError(`${field} is refused: ${error.message}`, { field, range: error.range });
      throw error;
    }
  }

  async function getTool(key: string): Promise<StoredTool> {
    const builtin = builtinByKey.get(key);
    if (builtin) return { card: builtin.card, transport: { kind: 'builtin' } };
    const cached = cache.get(key);
    if (cached && cached.until > Date.now()) return cached.tool;
    const stored = await repository.findTool(key);
    if (!stored) throw new NotFoundError(`Unknown tool ${key}`, { tool: key });
    if (cache.size > 10_000) cache.clear();
    cache.set(key, { tool: stored, until: Date.now() + TOOL_CACHE_MS });
    return stored;
  }

  return {
    getTool,

    /** Called when a provider was registered here or (through NOTIFY) on another replica. */
    forgetProvider,

    async registerProvider(body: unknown): Promise<{ provider: string; kind: ProviderKind; tools: CapabilityCard[]; skipped?: SkippedOperation[] }> {
      const kind = providerKindOf(body);
      const registration =
        kind === 'mcp' ? parseInput(mcpProviderSchema, body) : kind === 'openapi' ? parseInput(openapiProviderSchema, body) : parseInput(httpProviderSchema, body);
      const reservedFor = RESERVED_PROVIDERS.get(registration.name);
      if (reservedFor) throw new ValidationError(`The provider name "${registration.name}" is reserved for ${reservedFor}`);
      let tools: StoredTool[];
      let skipped: SkippedOperation[] | undefined;
      if ('mcp_url' in registration) {
        await assertProviderAddress('mcp_url', registration.mcp_url);
        tools = await mcpTools(registration);
      } else if ('openapi' in registration) {
        if (registration.base_url !== undefined) await assertProviderAddress('base_url', registration.base_url);
        const imported = await openapiTools(registration);
        // A server named by the document is checked like one the caller gave.
        if (registration.base_url === undefined) await assertProviderAddress('base_url', imported.baseUrl);
        ({ tools, skipped } = imported);
      } else {
        await assertProviderAddress('base_url', registration.base_url);
        tools = httpTools(registration);
      }
      const keys = new Set<string>();
      for (const { card } of tools) {
        if (keys.has(card.key)) throw new ValidationError(`Tool ${card.key} is listed twice`);
        keys.add(card.key);
        validator.assertValidSchema(card.input_schema, `input_schema of ${card.key}`);
      }
      await assertStateRefetches(registration.name, tools);
      await repository.replaceProvider(registration.name, kind, registration, tools);
      forgetProvider(registration.name);
      return { provider: registration.name, kind, tools: tools.map((t) => t.card), ...(skipped === undefined ? {} : { skipped }) };
    },

    async listCards(): Promise<CapabilityCard[]> {
      return [...builtins.map((b) => b.card), ...(await repository.listCards())];
    },

    /** Cards ranked by a text match of the query's words on key, name and description. */
    async discover(query: string): Promise<Array<CapabilityCard & { score: number }>> {
      const words = query
        .toLowerCase()
        .split(/[^a-z0-9_]+/)
        .filter(Boolean);
      const cards = [...builtins.map((b) => b.card), ...(await repository.listCards())];
      if (words.length === 0) return cards.map((c) => ({ ...c, score: 0 }));
      return cards
        .map((card) => ({ ...card, score: scoreCard(card, words, query.toLowerCase().trim()) }))
        .filter((c) => c.score > 0)
        .sort((a, b) => b.score - a.score || a.key.localeCompare(b.key));
    },

    validateParams(card: CapabilityCard, params: unknown): void {
      validator.assertValidParams(card.key, card.input_schema, params);
    },

    /** One attempt: at most one request to the tool. */
    async invoke(tool: StoredTool, params: Record<string, unknown>, signal?: AbortSignal): Promise<AttemptOutcome> {
      const { card, transport } = tool;
      switch (transport.kind) {
        case 'builtin': {
          const builtin = builtinByKey.get(card.key);
          if (!builtin) return { kind: 'failed', retryable: false, error: `built-in tool ${card.key} is not available` };
          return builtin.invoke(params, signal);
        }
        case 'http': {
          const spec = { method: transport.method, path: transport.path, ...(transport.placement ? { placement: transport.placement } : {}) };
          const outcome = await invokeHttpTool(spec, transport.base_url, params, card.timeout_ms, signal, httpAgent);
          // A gateway's 502/504 means the request went in and its fate is unknown: for a tool
          // with side effects that must be reconciled, not retried blindly.
          if (card.side_effects && outcome.kind === 'failed' && (outcome.http_status === 502 || outcome.http_status === 504)) {
            return { kind: 'unknown', error: outcome.error };
          }
          return outcome;
        }
        case 'mcp':
          return invokeMcpTool(transport.mcp_url, transport.tool_name, params, card.timeout_ms, signal, resolveHost);
      }
    },
  };
}
export type ToolRegistry = ReturnType<typeof createToolRegistry>;

function scoreCard(card: CapabilityCard, words: string[], phrase: string): number {
  const key = card.key.toLowerCase();
  const description = card.description.toLowerCase();
  let score = key === phrase ? 10 : 0;
  for (const word of words) {
    if (key.includes(word)) score += 3;
    if (card.name.toLowerCase() === word) score += 2;
    if (description.includes(word)) score += 1;
  }
  return score;
}

function definedOnly<T extends Record<string, unknown>>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
