import type { FastifyInstance } from 'fastify';
import type { CallService } from './call-service.ts';
import type { StateService } from './state-service.ts';

export function registerCallRoutes(app: FastifyInstance, calls: CallService, state: StateService): void {
  const callHandler = async (request: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply) => {
    const header = request.headers['idempotency-key'];
    const result = await calls.call(request.identity, request.body, { idempotencyKeyHeader: Array.isArray(header) ? header[0] : header });
    if (result.replayed) void reply.header('idempotent-replayed', 'true');
    return reply.status(result.httpStatus).send(result.answer);
  };
  for (const url of ['/v1/call', '/call']) app.post(url, { config: { scope: 'tools:call' } }, callHandler);

  for (const url of ['/state/verify', '/v1/state/verify']) {
    app.post(url, { config: { scope: 'state:verify' } }, async (request) => state.verify(request.identity, request.body));
  }
  for (const url of ['/outcomes/reconcile', '/v1/outcomes/reconcile']) {
    app.post(url, { config: { scope: 'outcomes:reconcile' } }, async (request) => state.reconcile(request.identity, request.body));
  }
}
