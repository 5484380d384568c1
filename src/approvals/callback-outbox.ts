import { createHmac } from 'node:crypto';
import { request } from 'undici';
import type { OutboxRepository } from '../db/outbox-repository.ts';
import type { Trx } from '../db/transact.ts';
import { ValidationError } from '../errors.ts';
import { assertUrlAllowed, createGuardedAgent, isSsrfBlockedError } from '../tools/ssrf-guard.ts';

const MAX_ATTEMPTS = 10;
const DELIVERY_TIMEOUT_MS = 10_000;

/** `X-Invoke-Signature: sha256=<hex>`: HMAC-SHA256 of the exact body with INVOKE_CALLBACK_SECRET. */
export function signCallback(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

/** Backoff between delivery attempts: 5 s, 10 s, 20 s, … capped at one hour. */
export function nextDelaySeconds(attempts: number): number {
  return Math.min(3600, 5 * 2 ** Math.max(0, attempts - 1));
}

export interface CallbackOutboxOptions {
  secret?: string;
  allowHosts: readonly string[];
}

/**
 * Agents' callbacks: a row in the durable outbox, written in the decision's transaction, then
 * delivered (signed) and retried with backoff until it succeeds or runs out of attempts. Rows
 * are claimed with `FOR UPDATE SKIP LOCKED`, so several replicas deliver without doubling.
 */
export function createCallbackOutbox(outbox: OutboxRepository, options: CallbackOutboxOptions) {
  const agent = createGuardedAgent({ allowHosts: [...options.allowHosts], connectTimeoutMs: DELIVERY_TIMEOUT_MS });

  return {
    /** At call time: a callback URL must pass the SSRF guard, and callbacks need a secret to sign with. */
    assertCallbackUrl(url: string, field: string): void {
      if (!options.secret) {
        throw new ValidationError(`${field} needs INVOKE_CALLBACK_SECRET to be configured on the server, to sign callbacks`, { field });
      }
      try {
        assertUrlAllowed(new URL(url), [...options.allowHosts]);
      } catch (error) {
        if (isSsrfBlockedError(error)) throw new ValidationError(`${field} is refused: ${error.message}`, { field });
        throw error;
      }
    },

    async enqueue(trx: Trx, url: string, payload: Record<string, unknown>): Promise<void> {
      await outbox.enqueue(trx, 'callback', url, payload);
    },

    /**
     * Delivers due callbacks; returns how many were delivered. Each row is claimed just before it
     * is sent (its lease outlasts one delivery), so a slow receiver never lets another pass
     * claim, and send, the rows still waiting in this one.
     */
    async deliverDue(limit = 20): Promise<{ delivered: number; failed: number }> {
      let delivered = 0;
      let failed = 0;
      for (let i = 0; i < limit; i++) {
        const row = await outbox.claimDue('callback');
        if (!row) break;
        const body = JSON.stringify(row.payload);
        let error: string | null = null;
        try {
          if (!options.secret) throw new Error('INVOKE_CALLBACK_SECRET is not configured');
          const response = await request(row.target, {
            method: 'POST',
            dispatcher: agent,
            headers: { 'content-type': 'application/json', 'x-invoke-signature': signCallback(options.secret, body) },
            body,
            headersTimeout: DELIVERY_TIMEOUT_MS,
            bodyTimeout: DELIVERY_TIMEOUT_MS,
          });
          await response.body.dump();
          if (response.statusCode >= 300) error = `HTTP ${response.statusCode}`;
        } catch (e) {
          error = (e as Error).message;
        }
        if (error === null) {
          delivered++;
          await outbox.markDelivered(row.id);
        } else {
          failed++;
          await outbox.reschedule(row.id, nextDelaySeconds(row.attempts), error, row.attempts >= MAX_ATTEMPTS);
        }
      }
      return { delivered, failed };
    },

    async close(): Promise<void> {
      await agent.close();
    },
  };
}
export type CallbackOutbox = ReturnType<typeof createCallbackOutbox>;
