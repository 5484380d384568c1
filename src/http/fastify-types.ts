import type { KeyIdentity } from '../auth/keyring.ts';
import type { Scope } from '../config.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Routes that need no API key (`/health`, Slack's own signed endpoint). */
    public?: boolean;
    /** Routes no rate limit applies to (`/health`: probes, often all from one balancer address). */
    unlimited?: boolean;
    /** A public route that takes an API key in a form (web sign-in): failed sign-ins count against the address. */
    credentialForm?: boolean;
    /** The scope a key needs for this route; checked before the handler runs. */
    scope?: Scope;
    /** Routes that also take the key as `Authorization: Bearer <key>` (MCP clients send it that way). */
    bearer?: boolean;
  }
  interface FastifyRequest {
    identity: KeyIdentity;
  }
}
export {};
