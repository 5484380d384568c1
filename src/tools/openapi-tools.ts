/**
 * OpenAPI operations as tools: plain functions over a validated, dereferenced document.
 *
 * Each operation gives one tool: a name that fits a tool key, an input schema whose properties
 * are the operation's parameters plus `body`, and a placement telling the HTTP invoker where
 * each property goes. Recursive schemas are cut where they repeat; everything is bounded.
 */
import { OpenApiDocumentError, escapePointer, resolvePointer, type LoadedDocument } from './openapi-document.ts';
import type { HttpMethod, ParamPlacement, PlacedParam } from './http-invoker.ts';

export const MAX_OPERATIONS = 500;
const MAX_SCHEMA_DEPTH = 64;
/** Schema nodes written into all the cards of one document. */
const MAX_SCHEMA_NODES = 200_000;
const MAX_NAME = 64;
const MAX_DESCRIPTION = 4000;
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
/** RFC 9110's safe methods: no side effects, and repeating them is harmless. */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);
/**
 * Headers a parameter may not set: OpenAPI says Accept, Content-Type and Authorization
 * parameters are ignored; the rest belong to the connection and undici refuses them.
 */
const UNSETTABLE_HEADERS: ReadonlySet<string> = new Set([
  'accept',
  'content-type',
  'authorization',
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'expect',
  'te',
  'trailer',
  'proxy-authorization',
  'proxy-connection',
]);
/** Keywords that are not validation, or that would clash once schemas are inlined. */
const DROPPED_KEYWORDS: ReadonlySet<string> = new Set([
  '$id',
  '$schema',
  '$anchor',
  '$dynamicAnchor',
  '$dynamicRef',
  '$comment',
  'example',
  'examples',
  'xml',
  'externalDocs',
  'discriminator',
]);
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas']);
const SCHEMA_LISTS = new Set(['allOf', 'anyOf', 'oneOf', 'prefixItems']);
const SCHEMA_VALUES = new Set([
  'items',
  'additionalProperties',
  'not',
  'if',
  'then',
  'else',
  'contains',
  'propertyNames',
  'unevaluatedProperties',
  'unevaluatedItems',
  'additionalItems',
]);

export interface ImportedOperation {
  name: string;
  method: HttpMethod;
  path: string;
  description: string;
  input_schema: Record<string, unknown>;
  side_effects: boolean;
  idempotent: boolean;
  placement: ParamPlacement;
}

export interface SkippedOperation {
  operation: string;
  reason: string;
}

type Json = Record<string, unknown>;

interface Context {
  root: Json;
  version: LoadedDocument['version'];
  nodes: number;
}

class SkipOperation extends Error {}

/** Every operation of the document as a tool, and those that cannot be one with the reason. */
export function operationsToTools({ api, version }: LoadedDocument): { tools: ImportedOperation[]; skipped: SkippedOperation[] } {
  const paths = isObject(api['paths']) ? api['paths'] : {};
  const operations = Object.entries(paths).flatMap(([path, item]) =>
    isObject(item) ? METHODS.filter((m) => isObject(item[m])).map((method) => ({ path, method, item, operation: item[method] as Json })) : [],
  );
  if (operations.length > MAX_OPERATIONS) {
    throw new OpenApiDocumentError(`The OpenAPI document has ${operations.length} operations; a provider holds at most ${MAX_OPERATIONS}`, { location: '#/paths' });
  }
  const ctx: Context = { root: api, version, nodes: 0 };
  const names = new Set<string>();
  const tools: ImportedOperation[] = [];
  const skipped: SkippedOperation[] = [];
  for (const { path, method, item, operation } of operations) {
    const label = `${method.toUpperCase()} ${path}`;
    if (method === 'trace') {
      skipped.push({ operation: label, reason: 'TRACE is not supported' });
      continue;
    }
    try {
      const tool = operationToTool(ctx, path, method.toUpperCase() as HttpMethod, item, operation);
      tool.name = uniqueName(tool.name, names);
      tools.push(tool);
    } catch (error) {
      if (!(error instanceof SkipOperation)) throw error;
      skipped.push({ operation: label, reason: error.message });
    }
  }
  return { tools, skipped };
}

function operationToTool(ctx: Context, path: string, method: HttpMethod, item: Json, operation: Json): ImportedOperation {
  const location = `#/paths/${escapePointer(path)}/${method.toLowerCase()}`;
  const properties: Json = {};
  const required: string[] = [];
  const placement: ParamPlacement = { params: {} };
  const formFields: Array<{ name: string; schema: Json; required: boolean }> = [];
  let body: { schema: Json; required: boolean; encoding: 'json' | 'form' | 'multipart' } | undefined;

  for (const [index, param] of mergedParameters(item, operation).entries()) {
    const where = `${location}/parameters/${index}`;
    const name = String(param['name']);
    const place = String(param['in']);
    const isRequired = param['required'] === true || place === 'path';
    if (place === 'body') {
      body = { schema: toJsonSchema(ctx, param['schema'], `${where}/schema`), required: isRequired, encoding: 'json' };
      continue;
    }
    if (place === 'formData') {
      formFields.push({ name, schema: parameterSchema(ctx, param, where), required: isRequired });
      continue;
    }
    if (place === 'cookie' || (place === 'header' && UNSETTABLE_HEADERS.has(name.toLowerCase()))) {
      if (isRequired && place === 'cookie') throw new SkipOperation(`required cookie parameter ${name} is not supported`);
      continue;
    }
    if (place !== 'path' && place !== 'query' && place !== 'header') continue;
    const property = propertyName(name, place, properties);
    properties[property] = parameterSchema(ctx, param, where);
    if (isRequired) required.push(property);
    placement.params[property] = placedParam(ctx, param, name, place);
  }
  // A `{name}` in the path that no parameter declares is still a path parameter.
  for (const [, name = ''] of path.matchAll(/\{([^{}]+)\}/g)) {
    if (Object.values(placement.params).some((p) => p.in === 'path' && p.name === name)) continue;
    const property = propertyName(name, 'path', properties);
    properties[property] = { type: 'string' };
    required.push(property);
    placement.params[property] = { in: 'path', name };
  }

  if (formFields.length > 0) body = formBody(ctx, operation, formFields);
  body ??= requestBody(ctx, operation, `${location}/requestBody`);
  if (body) {
    const property = 'body' in properties ? 'request_body' : 'body';
    properties[property] = body.schema;
    if (body.required) required.push(property);
    placement.body = { property, encoding: body.encoding };
  }

  const input_schema: Json = {
    ...(ctx.version === '3.1' ? { $schema: 'https://json-schema.org/draft/2020-12/schema' } : {}),
    type: 'object',
    properties,
    ...(required.length > 0 ? { required } : {}),
    additionalProperties: false,
  };
  const safe = SAFE_METHODS.has(method);
  return {
    name: toolName(operation['operationId'], method, path),
    method,
    path,
    description: describe(operation),
    input_schema,
    side_effects: !safe,
    idempotent: safe,
    placement,
  };
}

/** Path-level parameters, overridden by the operation's own of the same name and place. */
function mergedParameters(item: Json, operation: Json): Json[] {
  const byKey = new Map<string, Json>();
  for (const list of [item['parameters'], operation['parameters']]) {
    if (!Array.isArray(list)) continue;
    for (const param of list) if (isObject(param) && typeof param['name'] === 'string') byKey.set(`${String(param['in'])}:${param['name']}`, param);
  }
  return [...byKey.values()];
}

/** Each input property is named after its parameter; a name used in two places gets the place. */
function propertyName(name: string, place: string, taken: Json): string {
  if (!(name in taken)) return name;
  let candidate = `${name}_${place}`;
  for (let n = 2; candidate in taken; n++) candidate = `${name}_${place}_${n}`;
  return candidate;
}

function placedParam(ctx: Context, param: Json, name: string, place: 'path' | 'query' | 'header'): PlacedParam {
  const placed: PlacedParam = { in: place, name };
  if (place !== 'query') return placed;
  if (ctx.version === '2.0') {
    // Swagger 2.0 joins arrays with commas unless told `multi`.
    const format = param['collectionFormat'] ?? 'csv';
    const delimiter = ({ csv: ',', ssv: ' ', tsv: '\t', pipes: '|' } as Record<string, string>)[String(format)];
    if (delimiter !== undefined) placed.delimiter = delimiter;
    return placed;
  }
  const style = param['style'] ?? 'form';
  if (style === 'deepObject') placed.style = 'deepObject';
  else if (style === 'spaceDelimited') placed.delimiter = ' ';
  else if (style === 'pipeDelimited') placed.delimiter = '|';
  else if (param['explode'] === false) placed.delimiter = ',';
  return placed;
}

/** A parameter's schema: 3.x `schema` or `content`, or 2.0's type fields on the parameter. */
function parameterSchema(ctx: Context, param: Json, where: string): Json {
  let schema: Json;
  if (isObject(param['schema'])) schema = toJsonSchema(ctx, param['schema'], `${where}/schema`);
  else if (isObject(param['content'])) {
    const [mediaType, media] = Object.entries(param['content'])[0] ?? [];
    schema = isObject(media) ? toJsonSchema(ctx, media['schema'] ?? {}, `${where}/content/${escapePointer(mediaType ?? '')}/schema`) : {};
  } else {
    const fields = Object.fromEntries(Object.entries(param).filter(([key]) => !['name', 'in', 'required', 'description', 'collectionFormat', 'allowEmptyValue'].includes(key)));
    schema = toJsonSchema(ctx, fields, where);
  }
  return typeof param['description'] === 'string' && schema['description'] === undefined ? { ...schema, description: param['description'] } : schema;
}

/** Swagger 2.0 `formData` parameters: one object, sent urlencoded, or multipart for files. */
function formBody(ctx: Context, operation: Json, fields: Array<{ name: string; schema: Json; required: boolean }>) {
  const consumes = mediaTypes(operation['consumes'] ?? ctx.root['consumes']);
  const multipart = fields.some((f) => f.schema['format'] === 'binary') || (consumes.includes('multipart/form-data') && !consumes.includes('application/x-www-form-urlencoded'));
  const required = fields.filter((f) => f.required).map((f) => f.name);
  return {
    schema: { type: 'object', properties: Object.fromEntries(fields.map((f) => [f.name, f.schema])), ...(required.length > 0 ? { required } : {}) },
    required: required.length > 0,
    encoding: multipart ? ('multipart' as const) : ('form' as const),
  };
}

/** An OpenAPI 3 request body: JSON preferred, then a form; other media cannot be sent. */
function requestBody(ctx: Context, operation: Json, where: string) {
  const spec = operation['requestBody'];
  if (!isObject(spec) || !isObject(spec['content'])) return undefined;
  const content = spec['content'];
  const types = Object.keys(content);
  const pick = (test: (t: string) => boolean) => types.find((t) => test(t.split(';')[0]?.trim().toLowerCase() ?? ''));
  const chosen: Array<[string | undefined, 'json' | 'form' | 'multipart']> = [
    [pick((t) => t === 'application/json' || t.endsWith('+json') || t === '*/*'), 'json'],
    [pick((t) => t === 'application/x-www-form-urlencoded'), 'form'],
    [pick((t) => t === 'multipart/form-data'), 'multipart'],
  ];
  const found = chosen.find(([type]) => type !== undefined);
  const required = spec['required'] === true;
  if (!found || found[0] === undefined) {
    if (required) throw new SkipOperation(`request body media types ${types.join(', ')} are not supported (JSON, form or multipart)`);
    return undefined;
  }
  const [type, encoding] = found;
  const media = content[type];
  const schema = isObject(media) && media['schema'] !== undefined ? toJsonSchema(ctx, media['schema'], `${where}/content/${escapePointer(type)}/schema`) : {};
  const described = typeof spec['description'] === 'string' && schema['description'] === undefined ? { ...schema, description: spec['description'] } : schema;
  return { schema: described, required, encoding };
}

function mediaTypes(value: unknown): string[] {
  return Array.isArray(value) ? value.map((v) => String(v).split(';')[0]?.trim().toLowerCase() ?? '') : [];
}

/**
 * A copy of an OpenAPI schema as plain JSON Schema: bounded in depth and in total size, a
 * recursive `$ref` cut where it repeats, and 3.0/2.0 spellings (`nullable`, boolean exclusive
 * bounds, `type: file`) turned into draft-07 ones.
 */
function toJsonSchema(ctx: Context, schema: unknown, location: string, depth = 0, refs: readonly string[] = []): Json {
  if (typeof schema === 'boolean') return schema ? {} : { not: {} };
  if (!isObject(schema)) return {};
  if (depth > MAX_SCHEMA_DEPTH) throw new OpenApiDocumentError(`A schema is nested deeper than ${MAX_SCHEMA_DEPTH} levels`, { location });
  if (++ctx.nodes > MAX_SCHEMA_NODES) throw new OpenApiDocumentError(`The operations' schemas hold more than ${MAX_SCHEMA_NODES} nodes in all`, { location });
  const ref = schema['$ref'];
  if (typeof ref === 'string') {
    // The library left only recursive references in place: cut the cycle, accept anything there.
    if (refs.includes(ref)) return { description: `Recursive: another ${ref.split('/').pop() ?? 'value'}` };
    const target = resolvePointer(ctx.root, ref);
    if (target === undefined) throw new OpenApiDocumentError(`$ref "${ref}" points at nothing in the document`, { location });
    return toJsonSchema(ctx, target, ref, depth + 1, [...refs, ref]);
  }
  const out: Json = {};
  for (const [key, value] of Object.entries(schema)) {
    if (DROPPED_KEYWORDS.has(key) || key.startsWith('x-')) continue;
    const at = `${location}/${escapePointer(key)}`;
    if (SCHEMA_MAPS.has(key) && isObject(value)) {
      out[key] = Object.fromEntries(Object.entries(value).map(([name, sub]) => [name, toJsonSchema(ctx, sub, `${at}/${escapePointer(name)}`, depth + 1, refs)]));
    } else if (SCHEMA_LISTS.has(key) && Array.isArray(value)) {
      out[key] = value.map((sub, i) => toJsonSchema(ctx, sub, `${at}/${i}`, depth + 1, refs));
    } else if (SCHEMA_VALUES.has(key) && (isObject(value) || typeof value === 'boolean')) {
      out[key] = typeof value === 'boolean' ? value : toJsonSchema(ctx, value, at, depth + 1, refs);
    } else if (key === 'items' && Array.isArray(value)) {
      out[key] = value.map((sub, i) => toJsonSchema(ctx, sub, `${at}/${i}`, depth + 1, refs));
    } else {
      out[key] = value;
    }
  }
  return ctx.version === '3.1' ? out : draft7Spellings(out);
}

function draft7Spellings(schema: Json): Json {
  const out = { ...schema };
  if (out['type'] === 'file') out['type'] = 'string';
  if (out['nullable'] === true) {
    if (typeof out['type'] === 'string') out['type'] = [out['type'], 'null'];
    else if (Array.isArray(out['enum'])) out['enum'] = [...(out['enum'] as unknown[]), null];
  }
  delete out['nullable'];
  for (const [flag, bound] of [
    ['exclusiveMinimum', 'minimum'],
    ['exclusiveMaximum', 'maximum'],
  ] as const) {
    if (typeof out[flag] !== 'boolean') continue;
    if (out[flag] === true && typeof out[bound] === 'number') {
      out[flag] = out[bound];
      delete out[bound];
    } else delete out[flag];
  }
  return out;
}

/** A loop, since `/_+$/` backtracks quadratically on a long run of underscores followed by something else. */
function withoutTrailingUnderscores(text: string): string {
  let end = text.length;
  while (end > 0 && text[end - 1] === '_') end -= 1;
  return text.slice(0, end);
}

/** `operationId` made to fit a tool key, or method and path when there is none. */
export function toolName(operationId: unknown, method: string, path: string): string {
  const fit = (text: string) => withoutTrailingUnderscores(text.replace(/[^A-Za-z0-9_-]+/g, '_').replace(/^[^A-Za-z0-9]+/, '')).slice(0, MAX_NAME);
  const fromId = typeof operationId === 'string' ? fit(operationId) : '';
  return fromId !== '' ? fromId : fit(`${method.toLowerCase()}${path.replace(/[^A-Za-z0-9]+/g, '_')}`) || method.toLowerCase();
}

function uniqueName(name: string, taken: Set<string>): string {
  let candidate = name;
  for (let n = 2; taken.has(candidate); n++) candidate = `${name.slice(0, MAX_NAME - String(n).length - 1)}_${n}`;
  taken.add(candidate);
  return candidate;
}

function describe(operation: Json): string {
  const parts = [operation['summary'], operation['description']].filter((p): p is string => typeof p === 'string' && p.trim() !== '');
  const text = [...new Set(parts.map((p) => p.trim()))].join('\n\n');
  return text.length > MAX_DESCRIPTION ? `${text.slice(0, MAX_DESCRIPTION - 1)}…` : text;
}

/**
 * The base URL the document names: its first server (3.x, variables at their defaults,
 * relative ones against the document's own URL) or `schemes://host basePath` (2.0).
 */
export function documentBaseUrl(api: Json, documentUrl?: string): string | undefined {
  let candidate: string | undefined;
  if (api['swagger'] === '2.0') {
    const scheme = Array.isArray(api['schemes']) && api['schemes'].includes('https') ? 'https' : Array.isArray(api['schemes']) ? String(api['schemes'][0]) : 'https';
    if (typeof api['host'] === 'string') candidate = `${scheme}://${api['host']}${typeof api['basePath'] === 'string' ? api['basePath'] : ''}`;
    else if (documentUrl) candidate = new URL(typeof api['basePath'] === 'string' ? api['basePath'] : '/', documentUrl).toString();
  } else {
    const server: unknown = Array.isArray(api['servers']) ? (api['servers'] as unknown[])[0] : undefined;
    if (isObject(server) && typeof server['url'] === 'string') {
      const variables = isObject(server['variables']) ? server['variables'] : {};
      const url = server['url'].replace(/\{([^{}]+)\}/g, (match, name: string) => {
        const variable = variables[name];
        return isObject(variable) && typeof variable['default'] === 'string' ? variable['default'] : match;
      });
      try {
        candidate = new URL(url, documentUrl).toString();
      } catch {
        candidate = undefined;
      }
    }
  }
  return candidate !== undefined && /^https?:\/\//i.test(candidate) ? candidate : undefined;
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
