import type { FastifyInstance } from 'fastify';
import { describe, it } from 'vitest';
import type { SlackEmulator } from '../../demo/slack-emulator.ts';
import { signSlackRequest } from '../../src/slack/verify-request.ts';

export const SIGNING_SECRET = 'test-signing-secret';
export const APP_TOKEN = 'xapp-1-A0INVOKE-test';

/** How Slack reaches the app: signed HTTP requests to /slack/events, or envelopes over Socket Mode. */
export type SlackTransport = 'http' | 'socket';

/**
 * A test of the HTTP door only (signatures, retries, the outbox): registered in the HTTP run and
 * simply absent from the Socket Mode one, rather than reported there as skipped.
 */
export function httpOnlyTest(transport: SlackTransport): (name: string, fn: () => Promise<void>) => void {
  return (name, fn) => {
    if (transport === 'http') it(name, fn);
  };
}

/** A group of HTTP-door-only tests, likewise absent from the Socket Mode run. */
export function httpOnlySuite(transport: SlackTransport): (name: string, fn: () => void) => void {
  return (name, fn) => {
    if (transport === 'http') describe(name, fn);
  };
}
export const SLACK_TRANSPORTS: readonly SlackTransport[] = ['http', 'socket'];

/** What Slack got back: whether the app acknowledged in time, and what it answered with the ack. */
export interface SlackAnswer {
  acked: boolean;
  /** The ack's body (a view_submission's `response_action`, a url_verification challenge), if any. */
  response: Record<string, unknown> | undefined;
  elapsed: number;
}

export interface SlackDriver {
  readonly transport: SlackTransport;
  /** What the app's config needs for this transport. */
  readonly env: Record<string, string>;
  /** Binds the built app; in Socket Mode, waits until it is connected to the emulator. */
  attach(app: FastifyInstance): Promise<void>;
  /** A block_actions or view_submission payload. */
  interaction(payload: Record<string, unknown>): Promise<SlackAnswer>;
  /** A slash command's fields, as Slack form-posts them. */
  command(fields: Record<string, string>): Promise<SlackAnswer>;
  /** An Events API event, inside its `event_callback`. */
  event(event: Record<string, unknown>): Promise<SlackAnswer>;
}

/**
 * A request to /slack/events as Slack sends it: signed with the app's signing secret (or `secret`)
 * at `timestamp` (now, unless a test wants a stale or future one).
 */
export function postSignedToSlack(
  app: FastifyInstance,
  body: string,
  contentType = 'application/x-www-form-urlencoded',
  { secret = SIGNING_SECRET, timestamp = Math.floor(Date.now() / 1000) }: { secret?: string; timestamp?: number } = {},
) {
  return app.inject({ method: 'POST', url: '/slack/events', headers: { 'content-type': contentType, ...signSlackRequest(secret, body, timestamp) }, payload: body });
}

/** Drives the app the way Slack does over `transport`, with the emulator standing in for Slack. */
export function slackDriver(transport: SlackTransport, slack: SlackEmulator): SlackDriver {
  return transport === 'http' ? httpDriver(slack) : socketDriver(slack);
}

function httpDriver(slack: SlackEmulator): SlackDriver {
  let app: FastifyInstance | undefined;
  async function post(body: string, contentType: string): Promise<SlackAnswer> {
    if (!app) throw new Error('attach the app first');
    const started = Date.now();
    const res = await postSignedToSlack(app, body, contentType);
    const response = res.body.trim().startsWith('{') ? (JSON.parse(res.body) as Record<string, unknown>) : undefined;
    return { acked: res.statusCode === 200, response, elapsed: Date.now() - started };
  }
  const form = 'application/x-www-form-urlencoded';
  return {
    transport: 'http',
    env: { SLACK_SIGNING_SECRET: SIGNING_SECRET },
    async attach(built) {
      app = built;
    },
    interaction: (payload) => post(new URLSearchParams({ payload: JSON.stringify(payload) }).toString(), form),
    command: (fields) => post(new URLSearchParams(fields).toString(), form),
    event: (event) =>
      post(
        JSON.stringify({
          token: 'legacy',
          team_id: slack.identity.teamId,
          api_app_id: slack.identity.appId,
          type: 'event_callback',
          event_id: `Ev${Date.now()}`,
          event_time: Math.floor(Date.now() / 1000),
          event,
        }),
        'application/json',
      ),
  };
}

function socketDriver(slack: SlackEmulator): SlackDriver {
  const answer = async (delivery: Promise<{ payload?: Record<string, unknown>; elapsed: number }>): Promise<SlackAnswer> => {
    const ack = await delivery;
    return { acked: true, response: ack.payload, elapsed: ack.elapsed };
  };
  return {
    transport: 'socket',
    // No signing secret: in Socket Mode nothing reaches the app over HTTP.
    env: { SLACK_APP_TOKEN: APP_TOKEN },
    attach: () => slack.socket.waitForConnection(),
    interaction: (payload) => answer(slack.socket.pushInteraction(payload)),
    command: (fields) => answer(slack.socket.pushSlashCommand(fields)),
    event: (event) => answer(slack.socket.pushEvent(event)),
  };
}
