import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Config } from '../config.ts';
import { AppError, UnauthorizedError } from '../errors.ts';
import './fastify-types.ts';

type RateLimitSettings = Config['rateLimits'];

/** Which limit refused the request, as clients see it in `error.details.limit`. */
type LimitName = 'address' | 'api_key' | 'failed_authentication';

export class RateLimitedError extends AppError {
  constructor(
    limit: LimitName,
    max: number,
    windowMs: number,
    readonly retryAfterSeconds: number,
  ) {
    super(429, 'rate_limited', `${DESCRIPTIONS[limit]} (${max} per ${windowMs / 1000} s); retry in ${retryAfterSeconds} s`, {
      limit,
      max,
      window_seconds: windowMs / 1000,
      retry_after_seconds: retryAfterSeconds,
    });
  }
}

const DESCRIPTIONS: Record<LimitName, string> = {
  address: 'Too many requests from this address',
  api_key: 'Too many requests with this API key',
  failed_authentication: 'Too many failed authentications from this address',
};

type Limiter = ReturnType<FastifyInstance['createRateLimit']>;
type Verdict = Awaited<ReturnType<Limiter>>;

/**
 * Three fixed-window limits, counted by @fastify/rate-limit's in-memory store (per replica):
 * requests per address, requests per API key, and failed authentications per address.
 *
 * Its `createRateLimit` counters are used rather than its route hooks: the hooks share one
 * "already limited" flag per request, so two limits (address, then key) cannot both run as
 * hooks, and they count every request while the failure limit must count only 401s. The
 * answers are ours: the one error shape with `Retry-After`.
 *
 * Hook order matters: address limits run before authentication (a flood of wrong keys costs
 * no key lookup, and a refused address cannot learn which guess was right); the key limit
 * runs after it, when the key is known. So `registerAddressLimits` is called before
 * `registerAuth` and `registerKeyLimit` after.
 */
export async function registerRateLimitStore(app: FastifyInstance): Promise<void> {
  await app.register(rateLimit, { global: false });
}

export function registerAddressLimits(app: FastifyInstance, settings: RateLimitSettings): void {
  if (settings.perAddress > 0) {
    const perAddress = app.createRateLimit({ max: settings.perAddress, timeWindow: settings.windowMs });
    app.addHook('onRequest', async (request, reply) => {
      if (request.routeOptions.config?.unlimited) return;
      refuseIfExceeded(await perAddress(request), 'address', settings, reply);
    });
  }
  if (settings.authFailuresPerAddress > 0) {
    const failures = app.createRateLimit({ max: settings.authFailuresPerAddress, timeWindow: settings.windowMs });
    app.addHook('onRequest', async (request, reply) => {
      // Routes without a key (health, Slack's signed endpoint) have nothing to guess; a sign-in form has.
      if (request.routeOptions.config?.public && !request.routeOptions.config.credentialForm) return;
      const verdict = await failures(request, { increment: false });
      if (!verdict.isAllowed && verdict.remaining === 0) refuse(verdict, 'failed_authentication', settings, reply);
    });
    // Counted where the 401 is raised, so only failures count.
    app.addHook('onError', async (request, _reply, error) => {
      if (error instanceof UnauthorizedError) await failures(request);
    });
  }
}

export function registerKeyLimit(app: FastifyInstance, settings: RateLimitSettings): void {
  if (settings.perKey === 0) return;
  const perKey = app.createRateLimit({
    max: settings.perKey,
    timeWindow: settings.windowMs,
    keyGenerator: (request) => request.identity.id,
  });
  app.addHook('onRequest', async (request, reply) => {
    if (!request.identity || request.routeOptions.config?.unlimited) return;
    refuseIfExceeded(await perKey(request), 'api_key', settings, reply);
  });
}

function refuseIfExceeded(verdict: Verdict, limit: LimitName, settings: RateLimitSettings, reply: FastifyReply): void {
  if (!verdict.isAllowed && verdict.isExceeded) refuse(verdict, limit, settings, reply);
}

function refuse(verdict: Verdict & { isAllowed: false }, limit: LimitName, settings: RateLimitSettings, reply: FastifyReply): never {
  const retryAfter = Math.max(1, verdict.ttlInSeconds);
  void reply.header('retry-after', String(retryAfter));
  throw new RateLimitedError(limit, verdict.max, settings.windowMs, retryAfter);
}
