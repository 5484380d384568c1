import type { WebClient } from '@slack/web-api';
import type { ApprovalView } from '../approvals/approval-service.ts';
import type { DriftReport } from '../calls/state-verify.ts';
import type { RiskLevel } from '../vocabulary.ts';
import { approvalCard, refetchedCard } from './blocks.ts';
import type { ApprovalCardInput } from './card-types.ts';
import type { DecidableApprovalsFinder } from './decidable-approvals.ts';
import { slackDate } from './mrkdwn.ts';
import { cardInputOf } from './slack-notifier.ts';

type Block = Record<string, unknown>;

/** Slack's limit on blocks in a view (a Home tab included). */
export const HOME_MAX_BLOCKS = 100;
/** Cards shown at most; each is up to 8 blocks plus a divider, so ten fit under the limit. */
export const HOME_MAX_CARDS = 10;

/** Live state read by a Refetch clicked in the Home tab, shown on that approval's card there. */
export interface HomeRefetch {
  approvalId: string;
  live: { state_source: string; drift: DriftReport | null };
}

export interface HomeInput {
  isApprover: boolean;
  /** Pending approvals the viewer may decide, oldest first, as their cards show them. */
  pending: ApprovalCardInput[];
  /** False when not every pending approval was looked through. */
  scannedAll: boolean;
  now: Date;
  refetch?: HomeRefetch;
}

const mrkdwn = (text: string) => ({ type: 'mrkdwn', text });
const section = (blockId: string, text: string): Block => ({ type: 'section', block_id: blockId, text: mrkdwn(text) });
const context = (blockId: string, text: string): Block => ({ type: 'context', block_id: blockId, elements: [mrkdwn(text)] });

/**
 * The Home tab: the viewer's pending approvals, each as its channel card (same facts, same
 * buttons, same action ids, so a click here runs the same handlers), oldest first. Capped by
 * Slack's 100 blocks a view: the first cards that fit, and a count of the rest.
 */
export function homeView(input: HomeInput): Record<string, unknown> {
  const blocks: Block[] = [{ type: 'header', block_id: 'home.head', text: { type: 'plain_text', text: 'Approvals waiting for you' } }];
  const updated = `Updated ${slackDate(input.now)}`;

  if (!input.isApprover) {
    blocks.push(section('home.none', 'You are not an Invoke approver, so nothing here is yours to decide.'), context('home.updated', updated));
    return { type: 'home', blocks };
  }
  if (input.pending.length === 0) {
    blocks.push(section('home.none', ':white_check_mark: Nothing is waiting for your decision.'), context('home.updated', updated));
    return { type: 'home', blocks };
  }

  const count = `${input.pending.length}${input.scannedAll ? '' : '+'}`;
  blocks.push(context('home.summary', `*${count}* pending you may decide, oldest first · ${updated}`), { type: 'divider', block_id: 'home.top' });
  let shown = 0;
  for (const approval of input.pending.slice(0, HOME_MAX_CARDS)) {
    const card = input.refetch?.approvalId === approval.approval_id ? refetchedCard(approval, input.refetch.live, input.now).blocks : approvalCard(approval).blocks;
    // Room for this card, its divider and the closing count.
    if (blocks.length + card.length + 2 > HOME_MAX_BLOCKS) break;
    blocks.push(...card, { type: 'divider', block_id: `${approval.approval_id.slice(0, 200)}.home.div` });
    shown += 1;
  }
  const rest = input.pending.length - shown;
  if (rest > 0) {
    blocks.push(context('home.more', `${rest}${input.scannedAll ? '' : '+'} more not shown: \`/invoke approvals mine\` lists them.`));
  } else if (!input.scannedAll) {
    blocks.push(context('home.more', 'Only the oldest pending approvals were looked through; more may be waiting.'));
  }
  return { type: 'home', blocks };
}

/** The card facts of an approval as the API and `/invoke` see it; `defaultDeciders` decide unrouted ones. */
function cardInputOfView(view: ApprovalView, defaultDeciders: readonly string[]): ApprovalCardInput {
  return cardInputOf({ ...view, risk: view.risk as RiskLevel }, view.approvals.length, defaultDeciders);
}

/**
 * Publishes a user's Home tab: on `app_home_opened`, and after each decision they make in Slack
 * (so a card they decided leaves their tab). A direct Web API call, not the outbox: the tab is a
 * view of the present, rebuilt whenever it is opened, so a lost publish loses nothing.
 */
export function createAppHome(deps: {
  client: WebClient;
  decidable: DecidableApprovalsFinder;
  /** Who decides an approval that names no approvers (SLACK_APPROVER_IDS), as its channel card says. */
  defaultDeciders: readonly string[];
  log: { warn(obj: unknown, msg?: string): void };
}) {
  return {
    async publish(userId: string, refetch?: HomeRefetch): Promise<void> {
      try {
        const mine = await deps.decidable.pendingFor(userId);
        const view = homeView({
          isApprover: mine.isApprover,
          pending: mine.approvals.map((view) => cardInputOfView(view, deps.defaultDeciders)),
          scannedAll: mine.scannedAll,
          now: new Date(),
          ...(refetch ? { refetch } : {}),
        });
        await deps.client.views.publish({ user_id: userId, view: view as never });
      } catch (error) {
        deps.log.warn({ err: error, user: userId }, 'could not publish the App Home tab');
      }
    },
  };
}
export type AppHome = ReturnType<typeof createAppHome>;
