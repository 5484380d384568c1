import type { FastifyInstance } from 'fastify';
import type { Store } from '../db/store.ts';
import type { Metrics } from '../metrics/metrics.ts';

export function registerHealthRoutes(app: FastifyInstance, store: Store, metrics: Metrics): void {
  app.get('/health', { config: { public: true, unlimited: true } }, async (request, reply) => {
    try {
      await store.ping();
      return { status: 'ok', store: store.kind };
    } catch (error) {
      // Logged, not echoed: a driver message can name the database host and port.
      request.log.warn({ err: error }, 'health check: store unavailable');
      return reply
        .status(503)
        .header('retry-after', '5')
        .send({ status: 'unavailable', store: store.kind, error: { code: 'store_unavailable', message: 'The store is unavailable; retry shortly' } });
    }
  });
  app.get('/metrics', { config: { scope: 'logs:read' } }, async (_request, reply) => {
    return reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics());
  });
}
