import { ErrorCode, type WebClient } from '@slack/web-api';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../db/schema.ts';
import { jsonb } from '../db/store.ts';
import type { SlackMessage } from './card-types.ts';

const MAX_ATTEMPTS = 12;
/** A card's update or thread reply waits this long for the card itself to be posted. */
const WAIT_FOR_CARD_SECONDS = 2;

/**
 * What to post, as an outbox row: the approval it belongs to and its role.
 * - `card`: a new approval card (in the thread of `thread_of`'s card when it replaces one);
 *   once posted, its channel and ts are stored on the approval.
 * - `update`: `chat.update` of the approval's card.
 * - `reply`: a message in the approval's card thread.
 * - `notice`: a message to a channel, tied to no approval.
 */
export type SlackPost =
  | { role: 'card'; approval_id: string; channel: string; thread_of: string | null; message: SlackMessage }
  | { role: 'update'; approval_id: string; message: SlackMessage }
  | { role: 'reply'; approval_id: string; message: SlackMessage }
  | { role: 'notice'; channel: string; message: SlackMessage };

export function createSlackOutbox(db: Kysely<Database>, client: WebClient) {
  async function cardOf(approvalId: string) {
    return db.selectFrom('approvals').select(['slack_channel', 'slack_ts', 'slack_thread_ts']).where('id', '=', approvalId).executeTakeFirst();
  }

  /** Runs one post; returns 'wait' when the card it depends on is not posted yet. */
  async function post(payload: SlackPost): Promise<'done' | 'wait'> {
    if (payload.role === 'card') {
      let threadTs: string | undefined;
      if (payload.thread_of) {
        const parent = await cardOf(payload.thread_of);
        if (!parent?.slack_ts) return 'wait';
        threadTs = parent.slack_thread_ts ?? parent.slack_ts;
      }
      const posted = await client.chat.postMessage({ channel: payload.channel, text: payload.message.text, blocks: payload.message.blocks as never, thread_ts: threadTs });
      await db
        .updateTable('approvals')
        .set({ slack_channel: posted.channel ?? payload.channel, slack_ts: posted.ts ?? null, slack_thread_ts: threadTs ?? null })
        .where('id', '=', payload.approval_id)
        .execute();
      return 'done';
    }
    if (payload.role === 'notice') {
      await client.chat.postMessage({ channel: payload.channel, text: payload.message.text, blocks: payload.message.blocks as never });
      return 'done';
    }
    const card = await cardOf(payload.approval_id);
    if (!card?.slack_ts || !card.slack_channel) return 'wait';
    if (payload.role === 'update') {
      await client.chat.update({ channel: card.slack_channel, ts: card.slack_ts, text: payload.message.text, blocks: payload.message.blocks as never });
    } else {
      await client.chat.postMessage({ channel: card.slack_channel, thread_ts: card.slack_thread_ts ?? card.slack_ts, text: payload.message.text, blocks: payload.message.blocks as never });
    }
    return 'done';
  }

  return {
    /** Written in the caller's transaction, so a post exists exactly when its decision does. */
    async enqueue(trx: Transaction<Database> | Kysely<Database>, payload: SlackPost): Promise<void> {
      await trx.insertInto('outbox').values({ kind: 'slack', target: payload.role, payload: jsonb(payload) }).execute();
    },

    /**
     * Delivers due posts in order. Rows are claimed with SKIP LOCKED (one replica per row); a
     * 429 reschedules at Slack's Retry-After and ends the pass; other errors back off.
     */
    async deliverDue(limit = 20): Promise<{ delivered: number; failed: number; waiting: number }> {
      const claimed = await db
        .updateTable('outbox')
        .set({ next_attempt_at: sql`now() + interval '60 seconds'`, attempts: sql`attempts + 1` })
        .where(
          'id',
          'in',
          db
            .selectFrom('outbox')
            .select('id')
            .where('kind', '=', 'slack')
            .where('status', '=', 'pending')
            .where('next_attempt_at', '<=', sql<Date>`now()`)
            .orderBy('id')
            .limit(limit)
            .forUpdate()
            .skipLocked(),
        )
        .returning(['id', 'payload', 'attempts'])
        .execute();
      claimed.sort((a, b) => Number(a.id) - Number(b.id));
      const counts = { delivered: 0, failed: 0, waiting: 0 };
      let rateLimitedFor: number | null = null;
      for (const row of claimed) {
        if (rateLimitedFor !== null) {
          await reschedule(row.id, rateLimitedFor, null, false);
          continue;
        }
        try {
          const result = await post(row.payload as SlackPost);
          if (result === 'wait') {
            counts.waiting++;
            await reschedule(row.id, WAIT_FOR_CARD_SECONDS, null, false, row.attempts - 1);
          } else {
            counts.delivered++;
            await db.updateTable('outbox').set({ status: 'delivered', delivered_at: sql`now()`, last_error: null }).where('id', '=', row.id).execute();
          }
        } catch (error) {
          counts.failed++;
          const e = error as { code?: string; retryAfter?: number; message: string };
          if (e.code === ErrorCode.RateLimitedError) {
            rateLimitedFor = Math.max(1, e.retryAfter ?? 1);
            await reschedule(row.id, rateLimitedFor, `rate limited: retry after ${rateLimitedFor}s`, false);
          } else {
            await reschedule(row.id, Math.min(600, 2 ** row.attempts), e.message, row.attempts >= MAX_ATTEMPTS);
          }
        }
      }
      return counts;
    },
  };

  async function reschedule(id: string, seconds: number, error: string | null, dead: boolean, attempts?: number): Promise<void> {
    await db
      .updateTable('outbox')
      .set({
        status: dead ? 'dead' : 'pending',
        next_attempt_at: sql`now() + ${`${seconds} seconds`}::interval`,
        ...(error === null ? {} : { last_error: error.slice(0, 1000) }),
        ...(attempts === undefined ? {} : { attempts }),
      })
      .where('id', '=', id)
      .execute();
  }
}
export type SlackOutbox = ReturnType<typeof createSlackOutbox>;
