import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { errorResponses } from '../http/error-schema.ts';
import type { CallService } from './call-service.ts';
import { callAnswerSchema, callRequestSchema, reconcileAnswerSchema, reconcileRequestSchema, verifyAnswerSchema, verifyRequestSchema } from './call-schemas.ts';
import type { StateService } from './state-service.ts';

/**
 * The hot path's answer is written with JSON.stringify, as before schemas: its schema is
 * declared for the document and the SDK, but re-checking every answer (with the tool's
 * arbitrary `result`) through zod would cost CPU on each call and could only drop or refuse
 * fields Invoke itself produced.
 */
const plainJson = () => (data: unknown) => JSON.stringify(data);

/** Only the first of repeated Idempotency-Key headers counts. */
function headerValue(header: string | string[] | undefined): string | undefined {
  return Array.isArray(header) ? header[0] : header;
}

export function registerCallRoutes(app: FastifyInstance, calls: CallService, state: StateService): void {
  const routes = app.withTypeProvider<ZodTypeProvider>();
  for (const url of ['/v1/call', '/call']) {
    routes.post(
      url,
      {
        config: { scope: 'tools:call' },
        serializerCompiler: plainJson,
        schema: {
          hide: url !== '/v1/call',
          summary: 'Run a tool call under policy, approval, retry and reconciliation',
          description: 'An `Idempotency-Key` header (or `idempotency_key` field) makes a repeated request replay the first answer (header `Idempotent-Replayed: true`).',
          body: callRequestSchema,
          response: { 200: callAnswerSchema, 202: callAnswerSchema, ...errorResponses },
        },
      },
      async (request, reply) => {
        const result = await calls.call(request.identity, request.body, { idempotencyKeyHeader: headerValue(request.headers['idempotency-key']) });
        if (result.replayed) void reply.header('idempotent-replayed', 'true');
        return reply.status(result.httpStatus as 200 | 202).send(result.answer);
      },
    );
  }

  for (const url of ['/v1/state/verify', '/state/verify']) {
    routes.post(
      url,
      {
        config: { scope: 'state:verify' },
        schema: {
          hide: url !== '/v1/state/verify',
          summary: 'Check assumed state against live state',
          body: verifyRequestSchema,
          response: { 200: verifyAnswerSchema, ...errorResponses },
        },
      },
      async (request) => state.verify(request.identity, request.body),
    );
  }
  for (const url of ['/v1/outcomes/reconcile', '/outcomes/reconcile']) {
    routes.post(
      url,
      {
        config: { scope: 'outcomes:reconcile' },
        schema: {
          hide: url !== '/v1/outcomes/reconcile',
          summary: 'Decide whether an unknown outcome took effect',
          body: reconcileRequestSchema,
          response: { 200: reconcileAnswerSchema, ...errorResponses },
        },
      },
      async (request) => state.reconcile(request.identity, request.body),
    );
  }
}
