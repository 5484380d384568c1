import type { SlackMessage } from './card-types.ts';
import { escapeMrkdwn, inlineCode, slackDate } from './mrkdwn.ts';

/**
 * Direct messages to the approvers an approval names: one when its card is posted, one as a
 * reminder before it expires. Each carries a link to the card, where the decision is made.
 * Pure builders; the outbox (slack-outbox.ts) resolves who gets them and sends them.
 */

/** How many people one approval DMs: groups can be large, and a DM is a nudge, not a broadcast. */
export const MAX_DM_RECIPIENTS = 20;

/** What a DM says of its approval, fixed when the DM is queued. */
export interface DmFacts {
  kind: 'posted' | 'reminder';
  intent: string;
  tool: string;
  agent_id: string;
  /** ISO time. */
  expires_at: string;
}

/** The DM text with a link to the card (`permalink`). */
export function approvalDm(facts: DmFacts, permalink: string): SlackMessage {
  const what = `*${escapeMrkdwn(facts.intent, 200)}* (${inlineCode(facts.tool, 100)}, agent ${inlineCode(facts.agent_id, 100)})`;
  const lead = facts.kind === 'posted' ? `:inbox_tray: You may decide an approval: ${what}` : `:alarm_clock: Still waiting for a decision: ${what}`;
  const text = `${lead}. It expires ${slackDate(facts.expires_at)}. <${permalink}|Open the card> to approve or reject.`;
  return { text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] };
}

/**
 * The people to DM: named users and the members of named groups, without the requester (who
 * may not decide), once each, at most `MAX_DM_RECIPIENTS`.
 */
export function dmRecipients(users: readonly string[], groupMembers: ReadonlyArray<ReadonlySet<string>>, exclude: readonly string[]): string[] {
  const all = new Set<string>(users);
  for (const members of groupMembers) for (const member of members) all.add(member);
  for (const person of exclude) all.delete(person);
  return [...all].slice(0, MAX_DM_RECIPIENTS);
}
