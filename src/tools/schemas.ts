import { z } from 'zod';
import { approversSchema, channelSchema, escalationChainSchema } from '../policy/routing-fields.ts';
import { RISK_LEVELS } from '../vocabulary.ts';

const KEY_PART = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

export const stateRefetchSchema = z
  .object({
    tool: z.string().min(1).max(200),
    params: z.record(z.string(), z.unknown()).default({}),
    /** Conditions that mean "the action took effect", used when reconciling an unknown outcome. */
    conditions: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type StateRefetchSpec = z.infer<typeof stateRefetchSchema>;

const riskSchema = z.enum(RISK_LEVELS);
const jsonSchemaObject = z.record(z.string(), z.unknown());

const cardOverrides = {
  description: z.string().max(4000).optional(),
  input_schema: jsonSchemaObject.optional(),
  risk: riskSchema.optional(),
  side_effects: z.boolean().optional(),
  idempotent: z.boolean().optional(),
  timeout_ms: z.number().int().min(100).max(600_000).optional(),
  state_refetch: stateRefetchSchema.optional(),
  /** False: approvers may not edit this tool's params before approving. */
  editable: z.boolean().optional(),
  /** Who may decide this tool's approvals, instead of the global approver lists. */
  approvers: approversSchema.optional(),
  /** Where this tool's approval cards go, instead of SLACK_APPROVAL_CHANNEL. */
  channel: channelSchema.optional(),
  /** Who the approval goes to next when nobody decides in time: a chain of levels. */
  escalate_to: escalationChainSchema.optional(),
};

export const httpToolSchema = z
  .object({
    name: z.string().regex(KEY_PART, 'letters, digits, _ and -, up to 64'),
    method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']).default('POST'),
    path: z.string().startsWith('/').max(2000),
    ...cardOverrides,
  })
  .strict();

export const mcpToolOverrideSchema = z
  .object({
    name: z.string().min(1).max(128),
    ...cardOverrides,
  })
  .strict();

const httpUrl = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//i.test(u), 'must be an http(s) URL');

const providerName = z.string().regex(KEY_PART, 'letters, digits, _ and -, up to 64');

export const httpProviderSchema = z.object({ name: providerName, base_url: httpUrl, tools: z.array(httpToolSchema).min(1).max(500) }).strict();

export const mcpProviderSchema = z.object({ name: providerName, mcp_url: httpUrl, tools: z.array(mcpToolOverrideSchema).max(500).default([]) }).strict();

export const openapiToolOverrideSchema = z
  .object({
    name: z.string().regex(KEY_PART, 'letters, digits, _ and -, up to 64'),
    ...cardOverrides,
  })
  .strict();

/** An OpenAPI (3.0, 3.1) or Swagger 2.0 document, inline or by URL; its operations become tools. */
export const openapiProviderSchema = z
  .object({
    name: providerName,
    openapi: z.union([z.record(z.string(), z.unknown()), httpUrl]),
    /** Where the operations are called; the document's first server when absent. */
    base_url: httpUrl.optional(),
    /** Card overrides, by the imported tool's name. */
    tools: z.array(openapiToolOverrideSchema).max(500).default([]),
  })
  .strict();

export type HttpProviderRegistration = z.infer<typeof httpProviderSchema>;
export type OpenapiProviderRegistration = z.infer<typeof openapiProviderSchema>;
export type McpProviderRegistration = z.infer<typeof mcpProviderSchema>;
export type ProviderRegistration = HttpProviderRegistration | McpProviderRegistration | OpenapiProviderRegistration;
export type HttpToolSpec = z.infer<typeof httpToolSchema>;
