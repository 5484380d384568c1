import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorResponses } from '../http/error-schema.ts';
import { executionAnswerSchema, executionIdParams, executionListQuery, executionRequestSchema, executionViewSchema } from './execution-schemas.ts';
import type { ExecutionService } from './execution-service.ts';

export function registerExecutionRoutes(app: FastifyInstance, executions: ExecutionService): void {
  const routes = app.withTypeProvider<ZodTypeProvider>();
  routes.post(
    '/v1/executions',
    {
      config: { scope: 'tools:call' },
      schema: {
        summary: 'Run a packaged workflow (needs an Idempotency-Key header)',
        body: executionRequestSchema,
        response: { 200: executionAnswerSchema, 201: executionAnswerSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const header = request.headers['idempotency-key'];
      const result = await executions.create(request.identity, request.body, Array.isArray(header) ? header[0] : header);
      if (result.replayed) void reply.header('idempotent-replayed', 'true');
      return reply.status(result.httpStatus as 200 | 201).send(result.body);
    },
  );
  routes.get(
    '/v1/executions',
    {
      config: { scope: 'traces:read' },
      schema: { summary: 'Recent executions', querystring: executionListQuery, response: { 200: z.object({ executions: z.array(executionViewSchema) }), ...errorResponses } },
    },
    async (request) => ({ executions: await executions.list(request.identity, request.query.limit) }),
  );
  routes.get(
    '/v1/executions/:id',
    {
      config: { scope: 'traces:read' },
      schema: { summary: 'One execution', params: executionIdParams, response: { 200: z.object({ execution: executionViewSchema }), ...errorResponses } },
    },
    async (request) => ({ execution: await executions.get(request.identity, request.params.id) }),
  );
}
