/**
 * Reading an OpenAPI (3.0, 3.1) or Swagger 2.0 document for import: fetched through the SSRF
 * guard when given by URL, checked for size and for references, then validated and
 * dereferenced by @apidevtools/swagger-parser.
 *
 * The library never touches the network or the disk: its file and http resolvers are off,
 * and a `$ref` that leaves the document is refused before it runs. A document given by URL is
 * handed to it through a resolver that serves only the text we fetched.
 */
import SwaggerParser from '@apidevtools/swagger-parser';
import { request } from 'undici';
import { AppError } from '../errors.ts';
import { createGuardedAgent, findSsrfBlocked, type ResolveAll, type SsrfBlockedError } from './ssrf-guard.ts';

export interface OpenApiLimits {
  /** Largest document, as fetched or as JSON. */
  maxBytes: number;
  fetchTimeoutMs: number;
  /** Nodes the document may expand to once every `$ref` is followed. */
  maxExpandedNodes: number;
}

export const OPENAPI_LIMITS: OpenApiLimits = { maxBytes: 5_000_000, fetchTimeoutMs: 10_000, maxExpandedNodes: 2_000_000 };

/** Nesting of the document as written (objects in objects), before any `$ref` is followed. */
const MAX_DOCUMENT_DEPTH = 256;
const MAX_PROBLEMS = 10;
/**
 * Where the library believes the document lives: not http(s), so it leaves relative servers as
 * written (its own rewrite drops the port; `documentBaseUrl` resolves them), and not a path on
 * this disk, so no error names one.
 */
const PLACEHOLDER_URL = 'urn:invoke:openapi';

/** The document is not one we can import; `details.location` points at the bad spot. */
export class OpenApiDocumentError extends AppError {
  constructor(message: string, details: { location?: string; [key: string]: unknown } = {}) {
    super(400, 'invalid_openapi', message, details);
  }
}

/** The document URL could not be read; never carries what the server answered. */
export class OpenApiFetchError extends Error {
  constructor(
    message: string,
    readonly blocked?: SsrfBlockedError,
  ) {
    super(message);
  }
}

export interface LoadedDocument {
  /** Validated and dereferenced; recursive `$ref`s are left in place (as `{$ref: '#/...'}`). */
  api: Record<string, unknown>;
  version: '2.0' | '3.0' | '3.1';
}

/** Reads, checks and dereferences a document given inline or by URL. */
export async function loadOpenApiDocument(source: string | Record<string, unknown>, limits: OpenApiLimits, resolveHost?: ResolveAll): Promise<LoadedDocument> {
  const raw = typeof source === 'string' ? await parseText(source, await fetchDocumentText(new URL(source), limits, resolveHost)) : source;
  if (typeof source !== 'string' && JSON.stringify(raw).length > limits.maxBytes) {
    throw new OpenApiDocumentError(`The OpenAPI document is larger than ${limits.maxBytes} bytes`, { location: '#' });
  }
  const refs = measureDocument(raw, limits.maxExpandedNodes);
  // The library dereferences in place; the registration keeps the document as sent.
  const api = await validateAndDereference(structuredClone(raw), refs);
  return { api, version: documentVersion(api) };
}

function documentVersion(api: Record<string, unknown>): LoadedDocument['version'] {
  if (api['swagger'] === '2.0') return '2.0';
  return String(api['openapi']).startsWith('3.1') ? '3.1' : '3.0';
}

// ---------------------------------------------------------------------------------------------
// Fetching

/** One GET through the provider profile of the SSRF guard; redirects are not followed. */
async function fetchDocumentText(url: URL, limits: OpenApiLimits, resolveHost?: ResolveAll): Promise<string> {
  const agent = createGuardedAgent({ profile: 'provider', connectTimeoutMs: limits.fetchTimeoutMs, ...(resolveHost ? { resolveAll: resolveHost } : {}) });
  try {
    const response = await request(url, {
      method: 'GET',
      headers: { accept: 'application/json, application/yaml;q=0.9, */*;q=0.5', 'accept-encoding': 'identity' },
      dispatcher: agent,
      signal: AbortSignal.timeout(limits.fetchTimeoutMs),
      headersTimeout: limits.fetchTimeoutMs,
      bodyTimeout: limits.fetchTimeoutMs,
    });
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw new OpenApiFetchError(`answered HTTP ${response.statusCode}${response.statusCode >= 300 && response.statusCode < 400 ? ' (redirects are not followed)' : ''}`);
    }
    return await readCapped(response.body, limits.maxBytes);
  } catch (error) {
    if (error instanceof OpenApiFetchError) throw error;
    const blocked = findSsrfBlocked(error);
    if (blocked) throw new OpenApiFetchError(blocked.message, blocked);
    const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name.includes('Timeout'));
    throw new OpenApiFetchError(timedOut ? `did not answer within ${limits.fetchTimeoutMs} ms` : 'could not be reached');
  } finally {
    await agent.close();
  }
}

async function readCapped(body: AsyncIterable<Buffer> & { destroy(): void; on(event: 'error', listener: () => void): unknown }, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if (total > maxBytes) {
      body.on('error', () => undefined);
      body.destroy();
      throw new OpenApiFetchError(`answered with more than ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** JSON or YAML, parsed by the library from the text we fetched (it reads nothing itself). */
async function parseText(url: string, text: string): Promise<Record<string, unknown>> {
  try {
    const parsed = (await new SwaggerParser().parse(PLACEHOLDER_URL, {
      resolve: { external: false, file: false, http: false, fetched: { order: 1, canRead: true, read: () => text } },
    } as SwaggerParser.Options)) as unknown;
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch (error) {
    // The parser's words may quote the text, which came from a server the caller may not read.
    if (!isVersionError(error)) throw new OpenApiDocumentError(`The document at ${url} is not an OpenAPI 3.x or Swagger 2.0 document in JSON or YAML`, { location: '#' });
    throw new OpenApiDocumentError((error as Error).message, { location: '#' });
  }
  throw new OpenApiDocumentError(`The document at ${url} is not a JSON or YAML object`, { location: '#' });
}

function isVersionError(error: unknown): boolean {
  return error instanceof Error && /version|Swagger|OpenAPI/i.test(error.message) && !/is not a valid Openapi/.test(error.message);
}

// ---------------------------------------------------------------------------------------------
// References

/**
 * Walks the document as written: refuses a `$ref` that leaves it (another file, a URL) and a
 * document that would expand past `maxExpandedNodes` once its `$ref`s are followed (a few
 * references to references make a small text huge, and the validator walks the expansion).
 * Returns where each internal `$ref` target is referenced from, to place the library's errors.
 */
function measureDocument(root: Record<string, unknown>, maxExpandedNodes: number): Map<string, string> {
  const referencedFrom = new Map<string, string>();
  const expanded = new Map<string, number>();
  const inProgress = new Set<string>();
  const sizes = new WeakMap<object, number>();

  const sizeOf = (node: unknown, location: string, depth: number): number => {
    if (typeof node !== 'object' || node === null) return 1;
    if (depth > MAX_DOCUMENT_DEPTH) throw new OpenApiDocumentError(`The OpenAPI document is nested deeper than ${MAX_DOCUMENT_DEPTH} levels`, { location });
    const ref = (node as { $ref?: unknown }).$ref;
    if (typeof ref === 'string' && !Array.isArray(node)) {
      if (!ref.startsWith('#')) {
        throw new OpenApiDocumentError(`External $ref "${ref}" is not allowed: the document must be self-contained`, { location: `${location}/$ref` });
      }
      if (!referencedFrom.has(ref)) referencedFrom.set(ref, location);
      return refSize(ref, depth);
    }
    // YAML aliases share one object in several places: counted as often, walked once.
    const shared = sizes.get(node);
    if (shared !== undefined) return shared;
    let total = 1;
    for (const [key, child] of Object.entries(node)) {
      // Examples are literal values: a `$ref` inside one is text, not a reference.
      if (key === 'example' || key === 'examples' || key === 'default' || key === 'const' || key === 'enum') continue;
      total += typeof child === 'object' && child !== null ? sizeOf(child, `${location}/${escapePointer(key)}`, depth + 1) : 1;
      if (total > maxExpandedNodes) throw tooLarge(location);
    }
    sizes.set(node, total);
    return total;
  };

  const refSize = (ref: string, depth: number): number => {
    const known = expanded.get(ref);
    if (known !== undefined) return known;
    // A recursive schema is cut at its second visit, as the converter cuts it.
    if (inProgress.has(ref)) return 1;
    const target = resolvePointer(root, ref);
    if (target === undefined) return 1; // the library reports the missing target
    inProgress.add(ref);
    const size = sizeOf(target, ref, depth + 1);
    inProgress.delete(ref);
    expanded.set(ref, size);
    return size;
  };

  if (sizeOf(root, '#', 0) > maxExpandedNodes) throw tooLarge('#');
  return referencedFrom;
}

function tooLarge(location: string): OpenApiDocumentError {
  return new OpenApiDocumentError('The OpenAPI document expands to too many nodes once its $refs are followed', { location });
}

export function escapePointer(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}

/** The value at a local JSON pointer (`#/a/b`), or undefined. */
export function resolvePointer(root: unknown, ref: string): unknown {
  if (ref === '#' || ref === '#/') return root;
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = root;
  for (const raw of ref.slice(2).split('/')) {
    let token: string;
    try {
      token = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~');
    } catch {
      return undefined;
    }
    if (typeof node !== 'object' || node === null || !Object.hasOwn(node, token)) return undefined;
    node = (node as Record<string, unknown>)[token];
  }
  return node;
}

// ---------------------------------------------------------------------------------------------
// Validation

async function validateAndDereference(api: Record<string, unknown>, referencedFrom: Map<string, string>): Promise<Record<string, unknown>> {
  const parser = new SwaggerParser();
  try {
    const options = {
      resolve: { external: false, file: false, http: false },
      // Recursive schemas stay `$ref`s (no cyclic objects); the converter cuts them, bounded.
      dereference: { circular: 'ignore', maxDepth: 2 * MAX_DOCUMENT_DEPTH },
      timeoutMs: 5_000,
    } as SwaggerParser.Options;
    return (await parser.validate(PLACEHOLDER_URL, api as never, options)) as unknown as Record<string, unknown>;
  } catch (error) {
    throw documentErrorOf(error, referencedFrom);
  }
}

interface AjvProblem {
  instancePath?: string;
  message?: string;
}

/** The library's error as ours: what is wrong and where, without paths of this server. */
function documentErrorOf(error: unknown, referencedFrom: Map<string, string>): OpenApiDocumentError {
  const e = error as { message?: unknown; details?: unknown; code?: unknown; targetRef?: unknown };
  if (Array.isArray(e.details)) {
    const problems = (e.details as AjvProblem[]).slice(0, MAX_PROBLEMS).map((p) => ({ location: `#${p.instancePath ?? ''}`, message: p.message ?? 'invalid' }));
    const first = problems[0] ?? { location: '#', message: 'invalid' };
    return new OpenApiDocumentError(`The OpenAPI document is invalid: ${first.location} ${first.message}`, { location: first.location, problems });
  }
  if (e.code === 'EMISSINGPOINTER' && typeof e.targetRef === 'string') {
    const ref = e.targetRef.slice(e.targetRef.indexOf('#'));
    return new OpenApiDocumentError(`$ref "${ref}" points at nothing in the document`, { location: referencedFrom.get(ref) ?? ref });
  }
  const message = typeof e.message === 'string' ? e.message : String(error);
  if (/is not a valid Openapi API definition/.test(message)) {
    return new OpenApiDocumentError('Not an OpenAPI 3.x or Swagger 2.0 document: it needs "openapi" (or "swagger": "2.0") and "paths"', { location: '#' });
  }
  const at = / at (#\/[^\s.]*)/.exec(message)?.[1];
  return new OpenApiDocumentError(`The OpenAPI document could not be read: ${message.replaceAll(PLACEHOLDER_URL, 'the document')}`, { location: at ?? '#' });
}
