import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify';

/**
 * Errors raised below the routes, in our one shape `{error: {code, message}}`:
 * - `clientErrorHandler`: Node's HTTP parser refused the bytes (headers or URL too large,
 *   broken Content-Length or chunked framing, not HTTP at all). No request exists yet, so
 *   the answer is written to the socket by hand, and the connection closed.
 * - `frameworkErrors`: Fastify's router refused the URL (bad percent-encoding, a path
 *   parameter over `maxParamLength`). Its default bodies echo the whole path.
 */

interface ClientErrorAnswer {
  status: number;
  code: string;
  message: string;
}

/** llhttp error codes (and Node's own) by what they mean to a client. */
const PARSER_ERRORS: Record<string, ClientErrorAnswer> = {
  HPE_HEADER_OVERFLOW: {
    status: 431,
    code: 'headers_too_large',
    message: 'The request line and headers are larger than the server accepts (the URL counts towards this limit)',
  },
  HPE_INVALID_CONTENT_LENGTH: { status: 400, code: 'invalid_content_length', message: 'The Content-Length header is not a single valid length' },
  HPE_UNEXPECTED_CONTENT_LENGTH: {
    status: 400,
    code: 'invalid_content_length',
    message: 'Content-Length is repeated; send exactly one length',
  },
  HPE_INVALID_TRANSFER_ENCODING: {
    status: 400,
    code: 'invalid_framing',
    message: 'Transfer-Encoding is not valid, or sent together with Content-Length; send one of them',
  },
  HPE_INVALID_CHUNK_SIZE: { status: 400, code: 'invalid_framing', message: 'The chunked body is malformed (a chunk size is not hexadecimal)' },
  HPE_CHUNK_EXTENSIONS_OVERFLOW: { status: 400, code: 'invalid_framing', message: 'The chunked body carries oversized chunk extensions' },
  HPE_STRICT: { status: 400, code: 'invalid_framing', message: 'The chunked body is malformed' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, code: 'request_timeout', message: 'The request was not received in time' },
};

const MALFORMED: ClientErrorAnswer = { status: 400, code: 'bad_request', message: 'The request is not well-formed HTTP/1.1' };

export function clientErrorAnswer(error: { code?: string }): ClientErrorAnswer {
  return PARSER_ERRORS[error.code ?? ''] ?? MALFORMED;
}

/** Node's `clientError` event, as a Fastify server option. */
export function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  // A reset peer, or a socket already gone: nobody to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  // As Node itself does: write only if no answer to an earlier request on this connection has
  // started, or the bytes would interleave with it. (`_httpMessage` is Node's in-flight response.)
  const inFlight = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    const { status, code, message } = clientErrorAnswer(error);
    const body = JSON.stringify({ error: { code, message } });
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
        'Content-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        'Connection: close\r\n\r\n' +
        body,
    );
  }
  socket.destroy(error);
}

/** Fastify's router errors; replies go through `reply`, so hooks like onSend still run. */
export function frameworkErrorHandler(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  if (error.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    void reply.status(414).send({ error: { code: 'uri_too_long', message: 'A path segment is longer than the server accepts' } });
    return;
  }
  if (error.code === 'FST_ERR_BAD_URL') {
    void reply.status(400).send({ error: { code: 'invalid_url', message: 'The URL path is not valid percent-encoded UTF-8' } });
    return;
  }
  void reply.status(500).send({ error: { code: 'internal_error', message: 'Internal error' } });
}

/** The server options that route these errors to the handlers above. */
export const lowLevelErrorOptions = {
  clientErrorHandler,
  frameworkErrors: frameworkErrorHandler,
} satisfies Pick<FastifyServerOptions, 'clientErrorHandler' | 'frameworkErrors'>;
