import type { FastifyInstance } from 'fastify';
import type { FastifyRouteSchemaDef, FastifyValidationResult } from 'fastify/types/schema.js';
import type { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { errorResponses } from '../http/error-schema.ts';
import { zodValidatorCompiler } from '../http/validation.ts';
import { riskNeedsApproval } from '../policy/policy.ts';
import type { ApprovalThreshold } from '../vocabulary.ts';
import type { ToolRegistry } from './tool-registry.ts';
import type { CapabilityCard } from './types.ts';
import { discoverAnswerSchema, discoverQuery, toolListQuery, providerAnswerSchema, providerRegistrationSchema, providerSchemaFor, toolListAnswerSchema } from './tool-schemas.ts';

/**
 * A registration body is checked against the MCP or the HTTP schema, picked by `mcp_url`, so
 * errors name that schema's fields (a union would answer "invalid input" for both). The
 * registry checks the same way, since it is also called without HTTP.
 */
function providerBodyCompiler(route: FastifyRouteSchemaDef<unknown>): FastifyValidationResult {
  if (route.httpPart !== 'body') return zodValidatorCompiler({ ...route, schema: route.schema as z.ZodType });
  return (data) => zodValidatorCompiler({ ...route, schema: providerSchemaFor(data) })(data);
}

/**
 * A card with the fields the original product's clients read, as aliases: `id` (the key),
 * `risk_level` (the risk), `approval_required` (whether its risk alone needs a human under the
 * server threshold; policy rules may still ask for one) and `configured` (every listed tool is
 * registered and callable).
 */
function cardForClients<C extends CapabilityCard>(card: C, threshold: ApprovalThreshold) {
  return { ...card, id: card.key, risk_level: card.risk, approval_required: riskNeedsApproval(card.risk, threshold), configured: true };
}

export function registerToolRoutes(app: FastifyInstance, registry: ToolRegistry, requireApprovalAt: ApprovalThreshold): void {
  const routes = app.withTypeProvider<ZodTypeProvider>();
  for (const url of ['/v1/tools', '/tools']) {
    routes.get(
      url,
      {
        config: { scope: 'tools:read' },
        schema: {
          hide: url !== '/v1/tools',
          summary: 'Capability cards of every tool; `q` keeps those that match (as /discover ranks them)',
          querystring: toolListQuery,
          response: { 200: toolListAnswerSchema, ...errorResponses },
        },
      },
      async (request) => {
        const { q } = request.query;
        const cards = q === undefined || q.trim() === '' ? await registry.listCards() : await registry.discover(q);
        return { tools: cards.map((card) => cardForClients(card, requireApprovalAt)) };
      },
    );
  }
  routes.get(
    '/discover',
    { config: { scope: 'tools:read' }, schema: { summary: 'Find tools by what they do', querystring: discoverQuery, response: { 200: discoverAnswerSchema, ...errorResponses } } },
    async (request) => {
      const { q, limit } = request.query;
      return { query: q, tools: (await registry.discover(q)).slice(0, limit).map((card) => cardForClients(card, requireApprovalAt)) };
    },
  );
  routes.post(
    '/v1/providers',
    {
      config: { scope: 'providers:admin' },
      validatorCompiler: providerBodyCompiler,
      schema: {
        summary: 'Register (or replace) an HTTP, MCP or OpenAPI tool provider',
        body: providerRegistrationSchema,
        response: { 201: providerAnswerSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const registered = await registry.registerProvider(request.body);
      return reply.status(201).send(registered);
    },
  );
}
