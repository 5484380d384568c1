import { LogController, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { Config } from '../config.ts';

type LoggerOptions = Exclude<FastifyServerOptions['logger'], boolean | undefined>;

/**
 * Headers that carry credentials, wherever headers are logged: at the top level or one level
 * down (`req.headers`, `request.headers`; Fastify's own request serializer logs no headers).
 */
const REDACTED_PATHS = ['x-api-key', 'authorization', 'cookie', 'x-slack-signature'].flatMap((name) => [`headers["${name}"]`, `*.headers["${name}"]`]);

/**
 * Error fields that carry data rather than a description of the failure: Kysely/PGlite attach
 * the SQL parameters (`params`, `parameters`: a call's params, keys, results), and Postgres'
 * `detail` and `where` quote the row or the JSON that failed. `query` stays: Kysely sends
 * values as parameters, so the SQL text holds placeholders, not data.
 */
const DATA_FIELDS = new Set(['params', 'parameters', 'detail', 'where', 'internalQuery', 'body']);
const MAX_CAUSE_DEPTH = 5;

interface SerializedError {
  [field: string]: unknown;
  type: string;
  message: string;
  stack: string;
}

/** Like pino's standard error serializer (type, message, stack, own fields, cause), minus DATA_FIELDS. */
export function serializeError(error: Error, depth = 0): SerializedError {
  const out: SerializedError = { type: error.constructor.name, message: error.message, stack: error.stack ?? '' };
  for (const [field, value] of Object.entries(error)) {
    if (DATA_FIELDS.has(field) || field in out) continue;
    out[field] = nestedError(value, depth);
  }
  if (error.cause !== undefined) out['cause'] = nestedError(error.cause, depth);
  if (error instanceof AggregateError) out['aggregateErrors'] = error.errors.map((inner: unknown) => nestedError(inner, depth));
  return out;
}

function nestedError(value: unknown, depth: number): unknown {
  if (!(value instanceof Error)) return value;
  return depth < MAX_CAUSE_DEPTH ? serializeError(value, depth + 1) : '[nested too deep]';
}

/** The one logger configuration, used by `buildApp` and `npm start` alike. */
export function loggerOptions(options: { level: Config['logLevel']; transport?: LoggerOptions['transport'] }): LoggerOptions {
  return {
    level: options.level,
    ...(options.transport ? { transport: options.transport } : {}),
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    serializers: { err: serializeError },
  };
}

/**
 * One log line per request, when it is answered (Fastify's default is two, each serialising the
 * whole request and reply): method, path without its query, status and time. A request that
 * errored is logged at error level by Fastify as before.
 */
export class OneLineRequestLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) {
      super.requestCompleted(error, request, reply);
      return;
    }
    request.log.info({ method: request.method, url: request.url.split('?')[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }, 'request');
  }
}
