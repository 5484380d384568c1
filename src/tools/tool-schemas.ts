import { z } from 'zod';
import { openObject } from '../http/error-schema.ts';
import { RISK_LEVELS } from '../vocabulary.ts';
import { httpProviderSchema, mcpProviderSchema } from './schemas.ts';

export { httpProviderSchema, mcpProviderSchema };

/** The original CLI lists tools with `?q=`. */
export const toolListQuery = z.object({ q: z.string().max(500).optional() });
export const discoverQuery = z.object({ q: z.string().max(500).default(''), limit: z.coerce.number().int().min(1).max(200).default(20) });

/** A registration is MCP when it names an `mcp_url`, HTTP otherwise (checked in that order). */
export const providerRegistrationSchema = z.union([mcpProviderSchema, httpProviderSchema]);

/** Which of the two schemas a registration body is checked against: errors name that one's fields. */
export function providerSchemaFor(body: unknown): typeof mcpProviderSchema | typeof httpProviderSchema {
  return typeof body === 'object' && body !== null && 'mcp_url' in body ? mcpProviderSchema : httpProviderSchema;
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
export const providerAnswerSchema = z.object({ provider: z.string(), kind: z.enum(['http', 'mcp']), tools: z.array(capabilityCardSchema) });
