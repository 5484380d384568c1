import { z } from 'zod';
import { openObject } from '../http/error-schema.ts';
import { RISK_LEVELS } from '../vocabulary.ts';
import { httpProviderSchema, mcpProviderSchema, openapiProviderSchema } from './schemas.ts';

export { httpProviderSchema, mcpProviderSchema, openapiProviderSchema };

/** The original CLI lists tools with `?q=`. */
export const toolListQuery = z.object({ q: z.string().max(500).optional() });
export const discoverQuery = z.object({ q: z.string().max(500).default(''), limit: z.coerce.number().int().min(1).max(200).default(20) });

/** A registration is MCP when it names an `mcp_url`, OpenAPI when it has `openapi`, HTTP otherwise. */
export const providerRegistrationSchema = z.union([mcpProviderSchema, openapiProviderSchema, httpProviderSchema]);

/** Which schema a registration body is checked against: errors name that one's fields. */
export function providerSchemaFor(body: unknown): typeof mcpProviderSchema | typeof openapiProviderSchema | typeof httpProviderSchema {
  if (typeof body !== 'object' || body === null) return httpProviderSchema;
  if ('mcp_url' in body) return mcpProviderSchema;
  return 'openapi' in body ? openapiProviderSchema : httpProviderSchema;
}

/** A tool's capability card. Open: cards grow fields as tools describe themselves better. */
export const capabilityCardSchema = openObject({
  key: z.string(),
  provider: z.string(),
  name: z.string(),
  description: z.string(),
  input_schema: z.record(z.string(), z.unknown()),
  risk: z.enum(RISK_LEVELS),
  side_effects: z.boolean(),
  idempotent: z.boolean(),
});
export const toolListAnswerSchema = z.object({ tools: z.array(capabilityCardSchema) });
export const discoverAnswerSchema = z.object({ query: z.string(), tools: z.array(capabilityCardSchema) });
export const providerAnswerSchema = z.object({
  provider: z.string(),
  kind: z.enum(['http', 'mcp', 'openapi']),
  tools: z.array(capabilityCardSchema),
  /** OpenAPI operations that could not become tools, with the reason. */
  skipped: z.array(z.object({ operation: z.string(), reason: z.string() })).optional(),
});
