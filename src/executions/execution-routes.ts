import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../http/validation.ts';
import type { ExecutionService } from './execution-service.ts';

export function registerExecutionRoutes(app: FastifyInstance, executions: ExecutionService): void {
  app.post('/v1/executions', { config: { scope: 'tools:call' } }, async (request, reply) => {
    const header = request.headers['idempotency-key'];
    const result = await executions.create(request.identity, request.body, Array.isArray(header) ? header[0] : header);
    if (result.replayed) void reply.header('idempotent-replayed', 'true');
    return reply.status(result.httpStatus).send(result.body);
  });
  app.get('/v1/executions', { config: { scope: 'traces:read' } }, async (request) => {
    const { limit } = parseInput(z.object({ limit: z.coerce.number().int().min(1).max(500).default(50) }), request.query, 'query');
    return { executions: await executions.list(request.identity, limit) };
  });
  app.get('/v1/executions/:id', { config: { scope: 'traces:read' } }, async (request) => {
    const { id } = parseInput(z.object({ id: z.string().min(1).max(100) }), request.params, 'params');
    return { execution: await executions.get(request.identity, id) };
  });
}
