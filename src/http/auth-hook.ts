import type { FastifyInstance } from 'fastify';
import type { Keyring } from '../auth/keyring.ts';
import { requireScope } from '../auth/scopes.ts';
import { UnauthorizedError } from '../errors.ts';
import './fastify-types.ts';

/** `X-API-Key` on every route that is not marked public; the route's scope is checked here too. */
export function registerAuth(app: FastifyInstance, keyring: Keyring): void {
  app.decorateRequest('identity', null as never);
  app.addHook('onRequest', async (request) => {
    const routeConfig = request.routeOptions.config;
    if (routeConfig?.public) return;
    const header = request.headers['x-api-key'];
    const identity = keyring.authenticate(Array.isArray(header) ? header[0] : header);
    if (!identity) throw new UnauthorizedError();
    request.identity = identity;
    if (routeConfig?.scope) requireScope(identity, routeConfig.scope);
  });
}
