import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Keyring } from '../auth/keyring.ts';
import { requireScope } from '../auth/scopes.ts';
import { UnauthorizedError } from '../errors.ts';
import './fastify-types.ts';

const BEARER = /^Bearer +(\S+) *$/i;

/** The key a request presents: `X-API-Key`, else (on routes that take it) `Authorization: Bearer`. */
function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers['x-api-key'];
  const apiKey = Array.isArray(header) ? header[0] : header;
  if (apiKey !== undefined || !request.routeOptions.config?.bearer) return apiKey;
  return BEARER.exec(request.headers.authorization ?? '')?.[1];
}

/** `X-API-Key` on every route that is not marked public; the route's scope is checked here too. */
export function registerAuth(app: FastifyInstance, keyring: Keyring): void {
  app.decorateRequest('identity', null as never);
  app.addHook('onRequest', async (request) => {
    const routeConfig = request.routeOptions.config;
    if (routeConfig?.public) return;
    const identity = keyring.authenticate(presentedKey(request));
    if (!identity) {
      throw new UnauthorizedError(routeConfig?.bearer ? 'Missing or unknown API key (send it in the X-API-Key header or as Authorization: Bearer <key>)' : undefined);
    }
    request.identity = identity;
    if (routeConfig?.scope) requireScope(identity, routeConfig.scope);
  });
}
