import type { FastifyInstance } from 'fastify';
import type { FastifyRouteSchemaDef, FastifyValidationResult } from 'fastify/types/schema.js';
import type { z } from 'zod';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { errorResponses } from '../http/error-schema.ts';
import { zodValidatorCompiler } from '../http/validation.ts';
import type { ToolRegistry } from './tool-registry.ts';
import { discoverAnswerSchema, discoverQuery, providerAnswerSchema, providerRegistrationSchema, providerSchemaFor, toolListAnswerSchema } from './tool-schemas.ts';

/**
 * A registration body is checked against the MCP or the HTTP schema, picked by `mcp_url`, so
 * errors name that schema's fields (a union would answer "invalid input" for both). The
 * registry checks the same way, since it is also called without HTTP.
 */
function providerBodyCompiler(route: FastifyRouteSchemaDef<unknown>): FastifyValidationResult {
  if (route.httpPart !== 'body') return zodValidatorCompiler({ ...route, schema: route.schema as z.ZodType });
  return (data) => zodValidatorCompiler({ ...route, schema: providerSchemaFor(data) })(data);
}

export function registerToolRoutes(app: FastifyInstance, registry: ToolRegistry): void {
  const routes = app.withTypeProvider<ZodTypeProvider>();
  for (const url of ['/v1/tools', '/tools']) {
    routes.get(
      url,
      {
        config: { scope: 'tools:read' },
        schema: { hide: url !== '/v1/tools', summary: 'Capability cards of every tool', response: { 200: toolListAnswerSchema, ...errorResponses } },
      },
      async () => ({ tools: await registry.listCards() }),
    );
  }
  routes.get(
    '/discover',
    { config: { scope: 'tools:read' }, schema: { summary: 'Find tools by what they do', querystring: discoverQuery, response: { 200: discoverAnswerSchema, ...errorResponses } } },
    async (request) => {
      const { q, limit } = request.query;
      return { query: q, tools: (await registry.discover(q)).slice(0, limit) };
    },
  );
  routes.post(
    '/v1/providers',
    {
      config: { scope: 'providers:admin' },
      validatorCompiler: providerBodyCompiler,
      schema: { summary: 'Register (or replace) an HTTP or MCP tool provider', body: providerRegistrationSchema, response: { 201: providerAnswerSchema, ...errorResponses } },
    },
    async (request, reply) => {
      const registered = await registry.registerProvider(request.body);
      return reply.status(201).send(registered);
    },
  );
}
