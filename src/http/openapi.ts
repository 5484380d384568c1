import swagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';

/**
 * Collects every route's zod schemas into an OpenAPI 3.1 document. Registered before the
 * routes (it sees them as they are added); served, without a key, at `GET /openapi.json`.
 * Routes marked `hide` (the unversioned aliases) answer but are not listed.
 */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      // The API's version (the /v1 routes), not the package's.
      info: { title: 'Invoke', description: 'Execution control for AI agents: validated, scoped, retried, approved tool calls.', version: '1' },
      components: { securitySchemes: { apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' } } },
      security: [{ apiKey: [] }],
    },
    transform: jsonSchemaTransform,
  });
}

/** The document itself; public, so a client can be generated before it has a key. */
export function registerOpenApiRoute(app: FastifyInstance): void {
  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () => app.swagger());
}
