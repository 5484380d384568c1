import { App, LogLevel, SocketModeReceiver, type BlockAction, type ButtonAction, type Logger, type RespondFn } from '@slack/bolt';
import { WebClient } from '@slack/web-api';
import type { FastifyInstance } from 'fastify';
import { SelfApprovalError, type ApprovalService, type ApproverActor } from '../approvals/approval-service.ts';
import { findAmong, NotAnApproverError, type GroupDirectory } from '../approvals/routing.ts';
import type { SlackConfig } from '../config.ts';
import { AppError, ConflictError, ValidationError } from '../errors.ts';
import {
  COMMENT_ACTION_ID,
  EDIT_ACTION_ID,
  APPROVE_ACTION_ID,
  REFETCH_ACTION_ID,
  REJECT_ACTION_ID,
  REJECT_MODAL_CALLBACK_ID,
  REJECT_PRESET_ACTION_ID,
  REJECT_PRESET_BLOCK_ID,
  REJECT_REASON_ACTION_ID,
  REJECT_REASON_BLOCK_ID,
  deciderMention,
  ephemeralText,
  rejectReasonOf,
  rejectReasonModal,
} from './blocks.ts';
import { createAppHome } from './app-home.ts';
import type { SlackMessage } from './card-types.ts';
import { createDecidableApprovals } from './decidable-approvals.ts';
import {
  EDIT_MODAL_CALLBACK_ID,
  PARAM_BLOCK_PREFIX,
  editApproveModal,
  editModalMetadata,
  modalErrorFor,
  modalErrorsFor,
  readEditSubmission,
  type EditSubmission,
} from './edit-modal.ts';
import { FastifyBoltReceiver } from './fastify-receiver.ts';
import type { CommandCaller } from './invoke-command.ts';
import { parseInvokeCommand } from './invoke-command-parse.ts';
import type { SlackNotifier } from './slack-notifier.ts';

const TOO_LARGE_TO_EDIT =
  'These params are too large to edit in Slack: approve them as they are, or send the edited params through the API (`POST /v1/approvals/:id/approve` with `params`).';
const NOT_AN_APPROVER = 'You are not allowed to decide this approval.';
const SELF_APPROVAL = 'You requested this call, so you cannot decide on it; another approver must.';

/** Tells the clicker, and only them, one line of text. */
type Tell = (text: string) => Promise<void>;

/** What the clicker hears when their decision did not happen; null for a failure of ours. */
function refusalText(error: unknown): string | null {
  if (error instanceof SelfApprovalError) return SELF_APPROVAL;
  if (error instanceof NotAnApproverError) return notAnApproverText(error);
  if (error instanceof ConflictError) {
    const status = (error.details as { status?: string } | undefined)?.status ?? 'decided';
    return `This approval is already ${status}; nothing was run again.`;
  }
  if (error instanceof AppError) return error.message;
  return null;
}

/** "You are not allowed to decide this approval; it is for <@U1>, <!subteam^S1>." */
function notAnApproverText(error: NotAnApproverError): string {
  const details = error.details as { approvers?: string[]; unresolved_groups?: string[] };
  const approvers = details.approvers ?? [];
  const who = approvers.length > 0 && approvers.length <= 10 ? ` It is for ${approvers.map(deciderMention).join(', ')}.` : '';
  const unresolved = details.unresolved_groups?.length
    ? ` (Slack could not tell Invoke who is in ${details.unresolved_groups.map(deciderMention).join(', ')}; try again shortly.)`
    : '';
  return `${NOT_AN_APPROVER}${who}${unresolved}`;
}

export interface SlackAppDeps {
  config: SlackConfig;
  approvals: ApprovalService;
  notifier: SlackNotifier;
  /** Slack user groups' members (cached): the same directory the decision check uses. */
  groups: GroupDirectory;
  /** Delivers due outbox rows now (one pass at a time per process). */
  flushOutbox: () => Promise<unknown>;
  /** Answers `/invoke <text>` for the verified Slack user who ran it. */
  runCommand: (text: string, now: Date, caller: CommandCaller) => Promise<SlackMessage>;
  /** The channel an approval's card was posted to, once it was. */
  cardChannel: (approvalId: string) => Promise<string | null>;
  log: { debug(obj: unknown, msg?: string): void; warn(obj: unknown, msg?: string): void; error(obj: unknown, msg?: string): void };
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

/**
 * Socket Mode's receiver, built here rather than by Bolt so the connection's Web API client gets
 * only `slackApiUrl`. Bolt would hand it the handlers' client options, and their `retries: 0`
 * makes one failed `apps.connections.open` (a network blip at start or at a reconnect) end the
 * connection for good; left unset, the Socket Mode client keeps its own retry policy.
 */
function createSocketModeReceiver(appToken: string, slackApiUrl: string | undefined, log: SlackAppDeps['log']): SocketModeReceiver {
  return new SocketModeReceiver({
    appToken,
    logger: socketModeLogger(log),
    installerOptions: { clientOptions: slackApiUrl ? { slackApiUrl } : {} },
  });
}

/** The connection's own messages (reconnects, missed pings, failed opens) in the app's log, not on the console. */
function socketModeLogger(log: SlackAppDeps['log']): Logger {
  const line = (parts: unknown[]) => parts.map(String).join(' ');
  return {
    debug: (...parts: unknown[]) => log.debug({ component: 'slack-socket-mode' }, line(parts)),
    info: (...parts: unknown[]) => log.debug({ component: 'slack-socket-mode' }, line(parts)),
    warn: (...parts: unknown[]) => log.warn({ component: 'slack-socket-mode' }, line(parts)),
    error: (...parts: unknown[]) => log.error({ component: 'slack-socket-mode' }, line(parts)),
    // Debug lines are built only when asked for; warnings and errors always reach the log.
    getLevel: () => LogLevel.WARN,
    setLevel: () => undefined,
    setName: () => undefined,
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
  /** Who may run `/invoke` at all: the global approvers and trace viewers (users, or members of their groups). */
  const mayQuery = async (user: string) => (await findAmong([...config.approverIds, ...config.traceViewerIds], user, deps.groups)).found;
  /** A global Slack approver (users, or members of their groups); routed approvals may name others too. */
  const isGlobalApprover = async (user: string) => (await findAmong(config.approverIds, user, deps.groups)).found;
  const home = createAppHome({ client, decidable: createDecidableApprovals({ approvals, isGlobalApprover }), defaultDeciders: config.approverIds, log });
  const socketReceiver = config.appToken ? createSocketModeReceiver(config.appToken, config.apiUrl, log) : undefined;
  const httpReceiver = socketReceiver
    ? undefined
    : new FastifyBoltReceiver({ signingSecret: config.signingSecret!, onError: (error) => log.error({ err: error }, 'slack handler failed') });
  const bolt = new App({
    // No token verification at start (Bolt would call auth.test and crash the process when Slack
    // is unreachable): the bot token is simply handed to every listener.
    authorize: async () => ({ botToken: config.botToken }),
    receiver: socketReceiver ?? httpReceiver,
    clientOptions: { slackApiUrl: config.apiUrl, retryConfig: { retries: 0 }, rejectRateLimitedCalls: true },
    logLevel: LogLevel.ERROR,
  });

  /** Posts card updates and thread replies now rather than at the next outbox pass. */
  const flush = () => {
    deps.flushOutbox().catch((error: unknown) => log.warn({ err: error }, 'outbox pass failed'));
  };

  /**
   * How to answer the clicker: through the response_url when Slack sent one; otherwise (a modal,
   * a click in App Home, a message payload without one) as an ephemeral in the channel of the
   * click or of the card; with neither, nowhere (a debug line says so).
   */
  function tellerFor(where: { respond?: RespondFn; user: string; channel?: string; approvalId?: string }): Tell {
    return async (text) => {
      const message = ephemeralText(text);
      try {
        if (typeof where.respond === 'function') {
          await where.respond({ response_type: 'ephemeral', replace_original: false, ...message });
          return;
        }
        const channel = where.channel ?? (where.approvalId ? await deps.cardChannel(where.approvalId) : null);
        if (!channel) {
          log.debug({ user: where.user, approval_id: where.approvalId }, 'no response_url and no channel: the Slack user is not told');
          return;
        }
        await client.chat.postEphemeral({ channel, user: where.user, text: message.text, blocks: message.blocks as never });
      } catch (error) {
        log.warn({ err: error }, 'could not answer ephemerally');
      }
    };
  }

  /** The teller for a button click on an approval card (in a channel, or seen in App Home). */
  function clickTeller(body: BlockAction<ButtonAction>, respond: RespondFn | undefined, approvalId: string): Tell {
    return tellerFor({ respond, user: body.user.id, channel: body.channel?.id, approvalId });
  }

  /** Runs a decision; the clicker hears about refusals and conflicts, the channel about outcomes. */
  async function decide(tell: Tell, run: () => Promise<unknown>): Promise<void> {
    try {
      await run();
    } catch (error) {
      const refusal = refusalText(error);
      if (refusal === null) log.error({ err: error }, 'approval decision failed');
      await tell(refusal ?? 'Invoke could not complete that decision; it is still pending. Try again shortly.');
    } finally {
      flush();
    }
  }

  const slackActor = (user: string): ApproverActor => ({ approver: user, via: 'slack' });

  /** A click on a card shown in the App Home tab rather than in a channel. */
  const clickedInHome = (body: BlockAction<ButtonAction>): boolean => body.view?.type === 'home';

  bolt.action<BlockAction<ButtonAction>>(APPROVE_ACTION_ID, async ({ ack, body, action, respond }) => {
    await ack();
    const id = action.value ?? '';
    const tell = clickTeller(body, respond, id);
    // Who may decide is the approval's own routing: the service refuses anyone else.
    await decide(tell, async () => {
      const result = await approvals.approve(slackActor(body.user.id), id, {});
      if (result.outcome === 'awaiting_approvals') {
        await tell(`Your approval is recorded (${result.approvals_received} of ${result.approval.approvals_required}); it runs once enough approvers agree.`);
      }
    });
    // The decider's Home tab drops what they just decided (the channel card is updated by the outbox).
    await home.publish(body.user.id);
  });

  bolt.action<BlockAction<ButtonAction>>(REJECT_ACTION_ID, async ({ ack, body, action, respond, client: boltClient }) => {
    await ack();
    const id = action.value ?? '';
    const tell = clickTeller(body, respond, id);
    const approval = await approvals.get(id).catch(() => null);
    if (!approval) return tell('That approval no longer exists.');
    if (approval.status !== 'pending') return tell(`This approval is already ${approval.status}; nothing was run again.`);
    // Refused before the modal: asking someone for a reason they may not give wastes their time.
    const refusal = await approvals.assertMayDecide(slackActor(body.user.id), id).then(
      () => null,
      (error: unknown) => refusalText(error) ?? 'Invoke could not check that you may decide this; try again shortly.',
    );
    if (refusal) return tell(refusal);
    const intent = approval.checkpoint.contract?.intent ?? approval.checkpoint.policy_rule?.intent ?? approval.tool;
    await boltClient.views.open({ trigger_id: body.trigger_id, view: rejectReasonModal(approval.id, intent) as never });
  });

  bolt.action<BlockAction<ButtonAction>>(REFETCH_ACTION_ID, async ({ ack, body, action, respond }) => {
    await ack();
    const id = action.value ?? '';
    const tell = clickTeller(body, respond, id);
    try {
      // Refetch decides nothing (the requester may refetch), but only the approval's deciders may.
      await approvals.assertAddressedTo(slackActor(body.user.id), id);
      const live = await approvals.refetch(id);
      const shown = { state_source: live.state_source, drift: live.drift };
      if (live.approval.status === 'pending') await notifier.refetched(live.approval.id, shown);
      else await tell(`This approval is already ${live.approval.status}.`);
      // Clicked in the Home tab: the live state shows on that card there too.
      if (clickedInHome(body)) await home.publish(body.user.id, { approvalId: id, live: shown });
    } catch (error) {
      await tell(error instanceof NotAnApproverError ? notAnApproverText(error) : error instanceof AppError ? error.message : 'Could not read live state.');
    } finally {
      flush();
    }
  });

  // "Edit & approve" and "Approve with comment" open the same modal; only the first shows the params.
  for (const actionId of [EDIT_ACTION_ID, COMMENT_ACTION_ID]) {
    bolt.action<BlockAction<ButtonAction>>(actionId, async ({ ack, body, action, respond, client: boltClient }) => {
      await ack();
      const id = action.value ?? '';
      const tell = clickTeller(body, respond, id);
      // Refused before the modal, as for Reject: the same approver checks as Approve.
      const form = await approvals.editForm(slackActor(body.user.id), id).catch(async (error: unknown) => {
        await tell(refusalText(error) ?? 'Invoke could not open that approval; try again shortly.');
        return null;
      });
      if (!form) return;
      const { approval } = form;
      const view = editApproveModal({
        approvalId: approval.id,
        intent: approval.checkpoint.contract?.intent ?? approval.checkpoint.policy_rule?.intent ?? approval.tool,
        tool: approval.tool,
        editable: form.editable && actionId === EDIT_ACTION_ID,
        inputSchema: form.input_schema,
        params: form.params,
      });
      if (!view) return tell(TOO_LARGE_TO_EDIT);
      await boltClient.views.open({ trigger_id: body.trigger_id, view: view as never });
    });
  }

  /**
   * The approve modal's submit: problems with the edited params (schema, policy, entity, who may
   * decide) are shown in the modal, which stays open; otherwise it closes and the approval runs
   * through the same `approve` as the API.
   */
  bolt.view(EDIT_MODAL_CALLBACK_ID, async ({ ack, body, view }) => {
    const meta = editModalMetadata(view.private_metadata);
    if (!meta) return void (await ack());
    const user = body.user.id;
    const actor = slackActor(user);
    const fieldNames = Object.keys(view.state.values)
      .filter((blockId) => blockId.startsWith(PARAM_BLOCK_PREFIX))
      .map((blockId) => blockId.slice(PARAM_BLOCK_PREFIX.length));
    const refuse = (message: string) => ack({ response_action: 'errors', errors: modalErrorFor(meta.mode, fieldNames, message) });
    let submission: EditSubmission;
    try {
      const form = await approvals.editForm(actor, meta.approval_id);
      submission = readEditSubmission(meta.mode, view.state.values, form.params);
      if (!submission.ok) return ack({ response_action: 'errors', errors: submission.errors });
      if (submission.params) await approvals.checkEdit(actor, meta.approval_id, submission.params);
    } catch (error) {
      const problems = error instanceof ValidationError ? (error.details as { problems?: Array<{ path: string; message: string }> } | undefined)?.problems : undefined;
      if (problems) return ack({ response_action: 'errors', errors: modalErrorsFor(meta.mode, problems, fieldNames) });
      const refusal = refusalText(error);
      if (refusal === null) log.error({ err: error }, 'approve modal check failed');
      return refuse(refusal ?? 'Invoke could not check that; try again shortly.');
    }
    await ack();
    const tell = tellerFor({ user, approvalId: meta.approval_id });
    const { params, comment } = submission;
    await decide(tell, async () => {
      const result = await approvals.approve(actor, meta.approval_id, { params, comment });
      if (result.outcome === 'edited') {
        await tell(`Your edit restarted the count: the edited call needs ${result.new_approval?.approvals_required ?? 2} approvals, yours is the first.`);
      } else if (result.outcome === 'awaiting_approvals') {
        await tell(`Your approval is recorded (${result.approvals_received} of ${result.approval.approvals_required}); it runs once enough approvers agree.`);
      }
    });
    // As after Approve and Reject: the decider's Home tab drops what they just decided.
    await home.publish(user);
  });

  bolt.view(REJECT_MODAL_CALLBACK_ID, async ({ ack, body, view }) => {
    const values = view.state.values;
    const reason = rejectReasonOf(
      values[REJECT_PRESET_BLOCK_ID]?.[REJECT_PRESET_ACTION_ID]?.selected_option?.value,
      values[REJECT_REASON_BLOCK_ID]?.[REJECT_REASON_ACTION_ID]?.value,
    );
    if (!reason) {
      await ack({ response_action: 'errors', errors: { [REJECT_REASON_BLOCK_ID]: 'Pick a reason or say why this is rejected.' } });
      return;
    }
    await ack();
    const user = body.user.id;
    // A modal has no response_url: refusals go to the user as an ephemeral in the card's channel.
    const tell = tellerFor({ user, approvalId: view.private_metadata });
    await decide(tell, () => approvals.reject(slackActor(user), view.private_metadata, reason));
    await home.publish(user);
  });

  bolt.event('app_home_opened', async ({ event }) => {
    // The event also fires for the Messages tab, which Invoke does not use.
    if (event.tab !== 'home') return;
    await home.publish(event.user);
  });

  bolt.command('/invoke', async ({ ack, command, respond }) => {
    await ack();
    const user = command.user_id;
    // `approvals mine` is open to anyone: it lists only what they may decide (a card or rule may
    // name approvers outside the global lists). Every other query needs a global role.
    const parsed = parseInvokeCommand(command.text ?? '');
    const mine = parsed.command === 'approvals' && parsed.mine;
    if (!mine && !(await mayQuery(user))) return tellerFor({ respond, user, channel: command.channel_id })('You are not allowed to query Invoke.');
    // `approvals mine` asks the same question an Approve click does: one rule for who may decide.
    const caller: CommandCaller = { userId: user, isApprover: () => isGlobalApprover(user) };
    const message = await deps.runCommand(command.text ?? '', new Date(), caller).catch((error: unknown) => {
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
      httpReceiver?.register(fastify);
    },
    /** Socket Mode connects in the background: Slack being down never blocks or fails the start. */
    async start(): Promise<void> {
      if (socketReceiver) bolt.start().catch((error: unknown) => log.error({ err: error }, 'Slack Socket Mode connection failed'));
    },
    /** Closes the Socket Mode connection and waits for it (Bolt's own stop does not wait). */
    async stop(): Promise<void> {
      if (socketReceiver) await socketReceiver.client.disconnect();
    },
  };
}
export type SlackApp = ReturnType<typeof createSlackApp>;
