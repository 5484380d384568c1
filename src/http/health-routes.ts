import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Store } from '../db/store.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { errorResponseSchema } from './error-schema.ts';

const storeKind = z.enum(['postgres', 'embedded']);
export const healthAnswerSchema = z.object({ status: z.literal('ok'), store: storeKind });
export const healthUnavailableSchema = errorResponseSchema.extend({ status: z.literal('unavailable'), store: storeKind });

export function registerHealthRoutes(app: FastifyInstance, store: Store, metrics: Metrics): void {
  const routes = app.withTypeProvider<ZodTypeProvider>();
  routes.get(
    '/health',
    {
      config: { public: true, unlimited: true },
      schema: { summary: 'Liveness and store reachability', security: [], response: { 200: healthAnswerSchema, 503: healthUnavailableSchema } },
    },
    async (request, reply) => {
      try {
        await store.ping();
        return { status: 'ok' as const, store: store.kind };
      } catch (error) {
        // Logged, not echoed: a driver message can name the database host and port.
        request.log.warn({ err: error }, 'health check: store unavailable');
        return reply
          .status(503)
          .header('retry-after', '5')
          .send({ status: 'unavailable', store: store.kind, error: { code: 'store_unavailable', message: 'The store is unavailable; retry shortly' } });
      }
    },
  );
  routes.get('/metrics', { config: { scope: 'logs:read' }, schema: { summary: 'Prometheus metrics (text exposition format, so no JSON schema)' } }, async (_request, reply) => {
    return reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics());
  });
}
