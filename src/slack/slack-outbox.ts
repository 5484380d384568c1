import { ErrorCode, type WebClient } from '@slack/web-api';
import type { ApprovalsRepository } from '../approvals/approvals-repository.ts';
import { isSlackUser, isUserGroup, noGroups, type GroupDirectory } from '../approvals/routing.ts';
import type { OutboxRepository } from '../db/outbox-repository.ts';
import type { Trx } from '../db/transact.ts';
import type { SlackMessage } from './card-types.ts';
import { approvalDm, dmRecipients, type DmFacts } from './dm.ts';
import { slackMessageLink } from './mrkdwn.ts';

const MAX_ATTEMPTS = 20;
/** A card's update or thread reply waits this long for the card itself to be posted. */
const WAIT_FOR_CARD_SECONDS = 2;
/**
 * Posts that give way to every other due post: a DM is a nudge towards a card, so cards (and
 * decisions) never queue behind the fan-out's lookups or a DM per approver.
 */
const DM_ROLES = ['dm_fanout', 'dm'] as const satisfies ReadonlyArray<SlackPost['role']>;

/**
 * What to post, as an outbox row: the approval it belongs to and its role.
 * - `card`: a new approval card (in the thread of `thread_of`'s card when it replaces one);
 *   once posted, its channel and ts are stored on the approval.
 * - `update`: `chat.update` of the approval's card.
 * - `reply`: a message in the approval's card thread.
 * - `notice`: a message to a channel, tied to no approval.
 * - `dm_fanout`: once the card is posted, DMs to the approvers the approval names (users, and
 *   members of groups) with a link to the card; it becomes one `dm` row per person.
 * - `dm`: one direct message (`conversations.open`, then `chat.postMessage` there).
 */
export type SlackPost =
  | { role: 'card'; approval_id: string; channel: string; thread_of: string | null; message: SlackMessage }
  | { role: 'update'; approval_id: string; message: SlackMessage }
  | { role: 'reply'; approval_id: string; message: SlackMessage }
  | { role: 'notice'; channel: string; message: SlackMessage }
  | { role: 'dm_fanout'; approval_id: string; approvers: string[]; exclude: string[]; facts: DmFacts }
  | { role: 'dm'; approval_id: string; user: string; message: SlackMessage };

/**
 * `clock` (milliseconds since the epoch) times the Retry-After wait, the one wait this process
 * keeps in memory rather than in the store.
 */
export function createSlackOutbox(
  outbox: OutboxRepository,
  approvals: Pick<ApprovalsRepository, 'slackCardOf' | 'recordSlackCard'>,
  client: WebClient,
  clock: () => number = Date.now,
  groups: GroupDirectory = noGroups,
) {
  let rateLimitedUntil = 0;

  /** Whether the card a post waits for was given up on (its outbox row is dead). */
  async function cardGaveUp(payload: SlackPost): Promise<boolean> {
    const approvalId = payload.role === 'card' ? payload.thread_of : payload.role === 'notice' ? null : payload.approval_id;
    return approvalId ? hasPost(approvalId, 'card', 'dead') : false;
  }

  const hasPost = (approvalId: string, role: SlackPost['role'], status: 'pending' | 'delivered' | 'dead', afterId?: string) =>
    outbox.hasSlackPost(approvalId, role, status, afterId);
  const cardOf = (approvalId: string) => approvals.slackCardOf(approvalId);

  /** Runs one post; returns 'wait' when the card it depends on is not posted yet. */
  async function post(rowId: string, payload: SlackPost): Promise<'done' | 'wait'> {
    if (payload.role === 'card') {
      let threadTs: string | undefined;
      if (payload.thread_of) {
        const parent = await cardOf(payload.thread_of);
        if (!parent?.slack_ts) return 'wait';
        // A card for another channel (an escalation to #ops) starts its own thread there.
        if (parent.slack_channel === payload.channel) threadTs = parent.slack_thread_ts ?? parent.slack_ts;
      }
      const posted = await client.chat.postMessage({ channel: payload.channel, text: payload.message.text, blocks: payload.message.blocks as never, thread_ts: threadTs });
      await approvals.recordSlackCard(payload.approval_id, { channel: posted.channel ?? payload.channel, ts: posted.ts ?? null, threadTs: threadTs ?? null });
      return 'done';
    }
    if (payload.role === 'notice') {
      await client.chat.postMessage({ channel: payload.channel, text: payload.message.text, blocks: payload.message.blocks as never });
      return 'done';
    }
    if (payload.role === 'dm') {
      const opened = await client.conversations.open({ users: payload.user });
      if (!opened.channel?.id) throw new Error(`conversations.open gave no channel for ${payload.user}`);
      await client.chat.postMessage({ channel: opened.channel.id, text: payload.message.text, blocks: payload.message.blocks as never });
      return 'done';
    }
    const card = await cardOf(payload.approval_id);
    if (!card?.slack_ts || !card.slack_channel) return 'wait';
    if (payload.role === 'dm_fanout') {
      await fanOutDms(rowId, payload, { channel: card.slack_channel, ts: card.slack_ts });
      return 'done';
    }
    if (payload.role === 'update') {
      // A newer version of this card already went out (a decision after a refetch): keep it.
      if (await hasPost(payload.approval_id, 'update', 'delivered', rowId)) return 'done';
      await client.chat.update({ channel: card.slack_channel, ts: card.slack_ts, text: payload.message.text, blocks: payload.message.blocks as never });
    } else {
      await client.chat.postMessage({
        channel: card.slack_channel,
        thread_ts: card.slack_thread_ts ?? card.slack_ts,
        text: payload.message.text,
        blocks: payload.message.blocks as never,
      });
    }
    return 'done';
  }

  /** Slack's permalink of the card; built from channel and ts when Slack will not say. */
  async function permalinkOf(card: { channel: string; ts: string }): Promise<string> {
    const answer = await client.chat.getPermalink({ channel: card.channel, message_ts: card.ts }).catch(() => null);
    return answer?.permalink ?? slackMessageLink(card.channel, card.ts);
  }

  /**
   * Who the DMs go to (group members resolved now: an unknown group fails the row, to be retried),
   * then one `dm` row each, replacing this one in one commit.
   */
  async function fanOutDms(rowId: string, payload: Extract<SlackPost, { role: 'dm_fanout' }>, card: { channel: string; ts: string }): Promise<void> {
    const members: Array<ReadonlySet<string>> = [];
    for (const group of payload.approvers.filter(isUserGroup)) {
      const known = await groups.membersOf(group);
      if (known === null) throw new Error(`the members of user group ${group} are unknown (Slack did not answer)`);
      members.push(known);
    }
    const recipients = dmRecipients(payload.approvers.filter(isSlackUser), members, payload.exclude);
    const message = approvalDm(payload.facts, await permalinkOf(card));
    await outbox.replaceWith(
      rowId,
      'slack',
      recipients.map((user) => ({ target: 'dm', payload: { role: 'dm', approval_id: payload.approval_id, user, message } satisfies SlackPost })),
    );
  }

  return {
    /** Written in the caller's transaction, so a post exists exactly when its decision does. */
    async enqueue(trx: Trx, payload: SlackPost): Promise<void> {
      await outbox.enqueue(trx, 'slack', payload.role, payload);
    },

    /** Many posts in one statement, in order (a card's update before its reply). */
    async enqueueMany(trx: Trx, payloads: SlackPost[]): Promise<void> {
      await outbox.enqueueMany(
        trx,
        'slack',
        payloads.map((payload) => ({ target: payload.role, payload })),
      );
    },

    /**
     * Delivers due posts, claiming each row just before it is sent (SKIP LOCKED: one replica per
     * row), DM work after every other due post. A 429 reschedules at Slack's Retry-After and ends
     * the pass; other errors back off. A post waiting for its card backs off too, and gives up with
     * the card. At most `limit` posts: `more` says the pass stopped there having delivered some, so
     * more may be due.
     */
    async deliverDue(limit = 20): Promise<{ delivered: number; failed: number; waiting: number; more: boolean }> {
      const counts = { delivered: 0, failed: 0, waiting: 0, more: false };
      // Slack said 429: the whole client waits, rather than spend other rows' attempts on it.
      if (clock() < rateLimitedUntil) return counts;
      for (let i = 0; i < limit; i++) {
        const row = await outbox.claimDue('slack', DM_ROLES);
        if (!row) break;
        const dead = row.attempts >= MAX_ATTEMPTS;
        try {
          const result = await post(row.id, row.payload as SlackPost);
          if (result === 'wait') {
            counts.waiting++;
            // Waiting is no failed attempt: it gives up only when its card did.
            const orphaned = await cardGaveUp(row.payload as SlackPost);
            await outbox.giveBackAttempt(row.id);
            await outbox.reschedule(row.id, Math.min(60, WAIT_FOR_CARD_SECONDS * row.attempts), orphaned ? 'its card was never posted' : null, orphaned);
          } else {
            counts.delivered++;
            await outbox.markDelivered(row.id);
          }
        } catch (error) {
          counts.failed++;
          const e = error as { code?: string; retryAfter?: number; message: string };
          if (e.code === ErrorCode.RateLimitedError) {
            const wait = Math.max(1, e.retryAfter ?? 1);
            rateLimitedUntil = clock() + wait * 1000;
            await outbox.reschedule(row.id, wait, `rate limited: retry after ${wait}s`, false);
            break; // the whole client is limited: stop this pass
          }
          await outbox.reschedule(row.id, Math.min(600, 2 ** row.attempts), e.message, dead);
        }
      }
      // A full pass may have left due posts behind: the caller goes on (nothing else would wake it),
      // as long as posts go out. Posts waiting for a card come back every few seconds and failing
      // ones back off: passes of only those would go round and round.
      counts.more = counts.delivered + counts.failed + counts.waiting === limit && counts.delivered > 0;
      return counts;
    },
  };
}
export type SlackOutbox = ReturnType<typeof createSlackOutbox>;
