import { App, LogLevel, type BlockAction, type ButtonAction, type RespondFn } from '@slack/bolt';
import { WebClient } from '@slack/web-api';
import type { FastifyInstance } from 'fastify';
import type { ApprovalService } from '../approvals/approval-service.ts';
import type { SlackConfig } from '../config.ts';
import { AppError, ConflictError } from '../errors.ts';
import { REJECT_MODAL_CALLBACK_ID, REJECT_REASON_ACTION_ID, REJECT_REASON_BLOCK_ID, ephemeralText, rejectReasonModal } from './blocks.ts';
import type { SlackMessage } from './card-types.ts';
import { FastifyBoltReceiver } from './fastify-receiver.ts';
import type { SlackNotifier } from './slack-notifier.ts';

const GROUP_CACHE_MS = 5 * 60_000;

export interface SlackAppDeps {
  config: SlackConfig;
  approvals: ApprovalService;
  notifier: SlackNotifier;
  /** Delivers due outbox rows now (one pass at a time per process). */
  flushOutbox: () => Promise<unknown>;
  /** Answers `/invoke <text>`. */
  runCommand: (text: string, now: Date) => Promise<SlackMessage>;
  /** The channel an approval's card was posted to, once it was. */
  cardChannel: (approvalId: string) => Promise<string | null>;
  log: { warn(obj: unknown, msg?: string): void; error(obj: unknown, msg?: string): void };
}

/** Web API client for handlers: fail fast on rate limits instead of pausing an interactive handler. */
export function createSlackClient(config: SlackConfig): WebClient {
  return new WebClient(config.botToken, {
    slackApiUrl: config.apiUrl,
    retryConfig: { retries: 0 },
    rejectRateLimitedCalls: true,
    timeout: 10_000,
  });
}

/** Who may do what in Slack: user ids directly, user-group ids (S…) through their members. */
function createSlackAccess(client: WebClient, config: SlackConfig) {
  const groups = new Map<string, { members: Set<string>; at: number }>();
  async function allowedBy(ids: readonly string[], user: string): Promise<boolean> {
    if (ids.includes(user)) return true;
    for (const id of ids.filter((i) => i.startsWith('S'))) {
      let cached = groups.get(id);
      if (!cached || Date.now() - cached.at > GROUP_CACHE_MS) {
        const listed = await client.usergroups.users.list({ usergroup: id }).catch(() => ({ users: [] as string[] }));
        cached = { members: new Set(listed.users ?? []), at: Date.now() };
        groups.set(id, cached);
      }
      if (cached.members.has(user)) return true;
    }
    return false;
  }
  return {
    mayDecide: (user: string) => allowedBy(config.approverIds, user),
    mayQuery: (user: string) => allowedBy([...config.approverIds, ...config.traceViewerIds], user),
  };
}

/**
 * The Bolt app: Approve / Reject (with a reason modal) / Refetch on approval cards, and the
 * `/invoke` command. Listeners are thin: check who clicked, call the approval service (the same
 * one the API uses), and tell the clicker ephemerally when nothing happens.
 */
export function createSlackApp(deps: SlackAppDeps) {
  const { config, approvals, notifier, log } = deps;
  const client = createSlackClient(config);
  const access = createSlackAccess(client, config);
  const socketMode = Boolean(config.appToken);
  const receiver = socketMode ? undefined : new FastifyBoltReceiver({ signingSecret: config.signingSecret!, onError: (error) => log.error({ err: error }, 'slack handler failed') });
  const bolt = new App({
    // No token verification at start (Bolt would call auth.test and crash the process when Slack
    // is unreachable): the bot token is simply handed to every listener.
    authorize: async () => ({ botToken: config.botToken }),
    ...(receiver ? { receiver } : { socketMode: true, appToken: config.appToken, signingSecret: config.signingSecret }),
    clientOptions: { slackApiUrl: config.apiUrl, retryConfig: { retries: 0 }, rejectRateLimitedCalls: true },
    logLevel: LogLevel.ERROR,
  });

  /** Posts card updates and thread replies now rather than at the next outbox pass. */
  const flush = () => {
    deps.flushOutbox().catch((error: unknown) => log.warn({ err: error }, 'outbox pass failed'));
  };

  async function tell(respond: RespondFn, text: string): Promise<void> {
    await respond({ response_type: 'ephemeral', replace_original: false, ...ephemeralText(text) }).catch((error: unknown) =>
      log.warn({ err: error }, 'could not answer ephemerally'),
    );
  }

  /** Runs a decision; the clicker hears about refusals and conflicts, the channel about outcomes. */
  async function decide(respond: RespondFn, run: () => Promise<unknown>): Promise<void> {
    try {
      await run();
    } catch (error) {
      if (error instanceof ConflictError) {
        const status = (error.details as { status?: string } | undefined)?.status ?? 'decided';
        await tell(respond, `This approval is already ${status}; nothing was run again.`);
      } else if (error instanceof AppError) {
        await tell(respond, error.message);
      } else {
        log.error({ err: error }, 'approval decision failed');
        await tell(respond, 'Invoke could not complete that decision; it is still pending. Try again shortly.');
      }
    } finally {
      flush();
    }
  }

  bolt.action<BlockAction<ButtonAction>>('approval_approve', async ({ ack, body, action, respond }) => {
    await ack();
    if (!(await access.mayDecide(body.user.id))) return tell(respond, 'You are not allowed to decide Invoke approvals.');
    await decide(respond, async () => {
      const result = await approvals.approve({ approver: body.user.id, via: 'slack' }, action.value ?? '', {});
      if (result.outcome === 'awaiting_approvals') {
        await tell(respond, `Your approval is recorded (${result.approvals_received} of ${result.approval.approvals_required}); it runs once enough approvers agree.`);
      }
    });
  });

  bolt.action<BlockAction<ButtonAction>>('approval_reject', async ({ ack, body, action, respond, client: boltClient }) => {
    await ack();
    if (!(await access.mayDecide(body.user.id))) return tell(respond, 'You are not allowed to decide Invoke approvals.');
    const approval = await approvals.get(action.value ?? '').catch(() => null);
    if (!approval) return tell(respond, 'That approval no longer exists.');
    if (approval.status !== 'pending') return tell(respond, `This approval is already ${approval.status}; nothing was run again.`);
    const intent = approval.checkpoint.contract?.intent ?? approval.checkpoint.policy_rule?.intent ?? approval.tool;
    await boltClient.views.open({ trigger_id: body.trigger_id, view: rejectReasonModal(approval.id, intent) as never });
  });

  bolt.action<BlockAction<ButtonAction>>('approval_refetch', async ({ ack, body, action, respond }) => {
    await ack();
    if (!(await access.mayDecide(body.user.id))) return tell(respond, 'You are not allowed to decide Invoke approvals.');
    try {
      const live = await approvals.refetch(action.value ?? '');
      if (live.approval.status === 'pending') await notifier.refetched(live.approval.id, { state_source: live.state_source, drift: live.drift });
      else await tell(respond, `This approval is already ${live.approval.status}.`);
    } catch (error) {
      await tell(respond, error instanceof AppError ? error.message : 'Could not read live state.');
    } finally {
      flush();
    }
  });

  bolt.view(REJECT_MODAL_CALLBACK_ID, async ({ ack, body, view, client: boltClient }) => {
    const reason = view.state.values[REJECT_REASON_BLOCK_ID]?.[REJECT_REASON_ACTION_ID]?.value?.trim() ?? '';
    if (!reason) {
      await ack({ response_action: 'errors', errors: { [REJECT_REASON_BLOCK_ID]: 'Say why this is rejected.' } });
      return;
    }
    await ack();
    const user = body.user.id;
    // A modal has no response_url: refusals go to the user as an ephemeral in the card's channel.
    const respond: RespondFn = async (message) => {
      const channel = await deps.cardChannel(view.private_metadata).catch(() => null);
      const text = typeof message === 'string' ? message : (message.text ?? '');
      if (channel) await boltClient.chat.postEphemeral({ channel, user, text });
      return undefined as never;
    };
    if (!(await access.mayDecide(user))) return tell(respond, 'You are not allowed to decide Invoke approvals.');
    await decide(respond, () => approvals.reject({ approver: user, via: 'slack' }, view.private_metadata, reason));
  });

  bolt.command('/invoke', async ({ ack, command, respond }) => {
    await ack();
    if (!(await access.mayQuery(command.user_id))) return tell(respond, 'You are not allowed to query Invoke.');
    const message = await deps.runCommand(command.text ?? '', new Date()).catch((error: unknown) => {
      log.error({ err: error }, '/invoke failed');
      return ephemeralText('Invoke could not answer that right now.');
    });
    await respond({ response_type: 'ephemeral', ...message }).catch((error: unknown) => log.warn({ err: error }, 'could not answer /invoke'));
  });

  bolt.error(async (error) => {
    log.error({ err: error }, 'slack app error');
  });

  return {
    bolt,
    client,
    /** HTTP mode: mounts `POST /slack/events`. Socket Mode: nothing to mount. */
    register(fastify: FastifyInstance): void {
      receiver?.register(fastify);
    },
    /** Socket Mode connects in the background: Slack being down never blocks or fails the start. */
    async start(): Promise<void> {
      if (socketMode) bolt.start().catch((error: unknown) => log.error({ err: error }, 'Slack Socket Mode connection failed'));
    },
    async stop(): Promise<void> {
      if (socketMode) await bolt.stop();
    },
  };
}
export type SlackApp = ReturnType<typeof createSlackApp>;
