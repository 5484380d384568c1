import type { FastifyError, FastifyInstance } from 'fastify';
import { AppError, ServiceUnavailableError } from '../errors.ts';

/** Fastify's own client errors, named in our vocabulary. */
const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_BODY_TOO_LARGE: 'body_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_content_length',
};

/** Store errors that mean "dependency down", not "bug": answered 503 with Retry-After. */
function isStoreUnavailable(error: unknown): boolean {
  const code = (error as { code?: string }).code ?? '';
  return ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', '57P01', '57P03', '53300'].includes(code) || code.startsWith('08');
}

/**
 * One error shape for every 4xx and 5xx: `{error: {code, message, details?}}`. Client mistakes
 * are 4xx with a clear message; 5xx hide internals.
 */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof AppError) {
      if (error instanceof ServiceUnavailableError) void reply.header('retry-after', String(error.retryAfterSeconds));
      const body: { code: string; message: string; details?: unknown } = { code: error.code, message: error.message };
      if (error.details !== undefined) body.details = error.details;
      return reply.status(error.statusCode).send({ error: body });
    }
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      const code = FASTIFY_CODES[error.code] ?? (status === 404 ? 'not_found' : 'bad_request');
      return reply.status(status).send({ error: { code, message: error.message } });
    }
    if (isStoreUnavailable(error)) {
      request.log.error({ err: error }, 'store unavailable');
      return reply.status(503).header('retry-after', '5').send({ error: { code: 'service_unavailable', message: 'The store is unavailable; retry shortly' } });
    }
    request.log.error({ err: error }, 'unhandled error');
    return reply.status(500).send({ error: { code: 'internal_error', message: 'Internal error' } });
  });

  app.setNotFoundHandler((request, reply) => {
    return reply.status(404).send({ error: { code: 'not_found', message: `No route ${request.method} ${request.url.split('?')[0]}` } });
  });
}
