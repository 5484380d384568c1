import type { App, Receiver, ReceiverEvent } from '@slack/bolt';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { verifySlackRequest } from './verify-request.ts';

/** Slack wants an answer within 3 s; past that, answer empty and let the handler finish. */
const ACK_DEADLINE_MS = 2500;

/**
 * Bolt's receiver, mounted in Fastify at `POST /slack/events` (the pattern of bolt-js's
 * custom-receiver example): verify the signature over the raw body, parse, hand the event to
 * `app.processEvent`, and answer with whatever the handler passes to `ack()`.
 */
export class FastifyBoltReceiver implements Receiver {
  private bolt?: App;

  constructor(private readonly options: { signingSecret: string; now?: () => number; onError: (error: unknown) => void }) {}

  init(app: App): void {
    this.bolt = app;
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {}

  /** Registers the route in its own plugin scope, so raw-body parsing does not touch the API's parsers. */
  register(fastify: FastifyInstance): void {
    void fastify.register(async (scope) => {
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));
      scope.post('/slack/events', { config: { public: true } }, async (request, reply) => {
        const rawBody = typeof request.body === 'string' ? request.body : '';
        const verdict = verifySlackRequest({
          signingSecret: this.options.signingSecret,
          rawBody,
          timestamp: header(request.headers['x-slack-request-timestamp']),
          signature: header(request.headers['x-slack-signature']),
          nowSeconds: Math.floor((this.options.now?.() ?? Date.now()) / 1000),
        });
        if (!verdict.ok) {
          request.log.warn({ reason: verdict.reason }, 'refused a Slack request');
          return reply.status(401).send({ error: { code: 'invalid_slack_signature', message: `Slack request refused: ${verdict.reason}` } });
        }
        const body = parseSlackBody(rawBody, header(request.headers['content-type']) ?? '');
        if (!body) return reply.status(400).send({ error: { code: 'invalid_slack_body', message: 'Unreadable Slack request body' } });
        if (body['ssl_check']) return reply.status(200).send('');
        if (body['type'] === 'url_verification') return reply.send({ challenge: body['challenge'] });
        return this.dispatch(body, reply, header(request.headers['x-slack-retry-num']), header(request.headers['x-slack-retry-reason']));
      });
    });
  }

  private async dispatch(body: Record<string, unknown>, reply: FastifyReply, retryNum?: string, retryReason?: string) {
    if (!this.bolt) return reply.status(503).send({ error: { code: 'service_unavailable', message: 'Slack app not ready' } });
    let answered = false;
    let settle!: (response: unknown) => void;
    const acked = new Promise<unknown>((resolve) => (settle = resolve));
    const event: ReceiverEvent = {
      body,
      retryNum: retryNum ? Number(retryNum) : undefined,
      retryReason,
      ack: async (response?: unknown) => {
        if (answered) return;
        answered = true;
        settle(response);
      },
    };
    const timer = setTimeout(() => settle(undefined), ACK_DEADLINE_MS);
    this.bolt.processEvent(event).catch((error: unknown) => {
      this.options.onError(error);
      settle(undefined);
    });
    const response = await acked;
    clearTimeout(timer);
    if (response === undefined || response === null || response === '') return reply.status(200).send('');
    if (typeof response === 'string') return reply.status(200).type('text/plain').send(response);
    return reply.status(200).send(response);
  }
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Interactivity posts `payload=<json>` form-encoded; slash commands post plain form fields; events post JSON. */
export function parseSlackBody(raw: string, contentType: string): Record<string, unknown> | null {
  try {
    if (contentType.includes('application/json')) return JSON.parse(raw) as Record<string, unknown>;
    const form = new URLSearchParams(raw);
    const payload = form.get('payload');
    if (payload !== null) return JSON.parse(payload) as Record<string, unknown>;
    return Object.fromEntries(form);
  } catch {
    return null;
  }
}
