/**
 * From a frozen call's 202 to its approval card at Slack, and to the DM telling its approver:
 * the time an approver waits before the card can appear, and before they hear of it. Each call
 * names its approver (a request rule narrowing to the global approver), so each card is followed
 * by a DM (`conversations.open`, `chat.getPermalink`, `chat.postMessage`), all through the
 * outbox. Slack is the local Web API emulator (demo/slack-emulator.ts); the baseline is the same
 * `chat.postMessage` sent to it directly with Invoke's own Slack client.
 */
import { loadConfig } from '../../src/config.ts';
import { createSlackClient } from '../../src/slack/slack-app.ts';
import { startSlackEmulator } from '../../demo/slack-emulator.ts';
import { fetchJson, percentiles } from '../load.ts';
import { AUTH, ms, startInvokeWithTool, TOOL_KEY, type Section } from '../section.ts';

const CHANNEL = 'C0BENCHAPPROVALS';
const APPROVER = 'U0BENCH';
const CARD_TIMEOUT_MS = 120_000;

interface Frozen {
  approvalId: string;
  /** Epoch ms when the 202 arrived (the emulator stamps calls in epoch ms too). */
  answeredAt: number;
  answerMs: number;
}

/** A call that freezes: an approval contract asks a human first, whatever the tool's risk. */
async function freezeCall(invokeUrl: string, i: number): Promise<Frozen> {
  const t0 = performance.now();
  const { status, body } = await fetchJson<{ approval?: { id: string } }>(`${invokeUrl}/v1/call`, {
    headers: AUTH,
    body: {
      tool: TOOL_KEY,
      params: { n: i },
      agent_id: 'bench',
      approval_contract: { intent: 'bench_approval' },
      policy: { rules: [{ when: 'true', effect: 'require_approval', approvers: [APPROVER] }] },
    },
  });
  const answeredAt = Date.now();
  if (status !== 202 || !body.approval) throw new Error(`slack: a frozen call answered ${status} without an approval`);
  return { approvalId: body.approval.id, answeredAt, answerMs: performance.now() - t0 };
}

export const slackSection: Section = async (ctx) => {
  const calls = ctx.quick ? 10 : 50;
  // Offered load: one frozen call every `gapMs`, so the figure is the wait for a card, not a backlog.
  const gapMs = ctx.quick ? 100 : 200;
  const outboxIntervalMs = loadConfig({}).outboxIntervalMs;
  const slack = await startSlackEmulator();
  const slackConfig = { botToken: 'xoxb-bench', approvalChannel: CHANNEL, approverIds: [APPROVER], traceViewerIds: [], apiUrl: slack.url, userGroupTtlMs: 300_000 };
  const invoke = await startInvokeWithTool(ctx, {
    SLACK_BOT_TOKEN: slackConfig.botToken,
    SLACK_SIGNING_SECRET: 'bench-signing-secret',
    SLACK_APPROVAL_CHANNEL: CHANNEL,
    SLACK_APPROVER_IDS: APPROVER,
    SLACK_API_URL: slack.url,
  });
  try {
    const client = createSlackClient(slackConfig);
    const direct: number[] = [];
    for (let i = 0; i < calls; i++) {
      const t0 = performance.now();
      await client.chat.postMessage({ channel: CHANNEL, text: `baseline ${i}` });
      direct.push(performance.now() - t0);
    }

    const sent: Array<Promise<Frozen>> = [];
    for (let i = 0; i < calls; i++) {
      sent.push(freezeCall(invoke.url, i));
      await new Promise((resolve) => setTimeout(resolve, gapMs));
    }
    const frozen = await Promise.all(sent);

    const cardAt = new Map<string, number>();
    const dmAt = new Map<string, number>();
    const dmChannel = slack.dmChannelOf(APPROVER);
    const deadline = Date.now() + CARD_TIMEOUT_MS;
    while (cardAt.size < frozen.length || dmAt.size < frozen.length) {
      if (Date.now() > deadline) {
        throw new Error(`slack: only ${cardAt.size} cards and ${dmAt.size} DMs of ${frozen.length} were posted within ${CARD_TIMEOUT_MS / 1000} s`);
      }
      // A card names its approval; its DM links to the card (by its ts).
      const cardTs = new Map(slack.messages.filter((m) => m.channel === CHANNEL).map((m) => [m.ts.replace('.', ''), JSON.stringify(m.blocks ?? '')]));
      for (const post of slack.callsTo('chat.postMessage')) {
        const text = JSON.stringify(post.args);
        if (post.args['channel'] === dmChannel) {
          const ts = /\/p(\d+)\|/.exec(text)?.[1];
          const card = ts ? cardTs.get(ts) : undefined;
          for (const f of frozen) if (card && !dmAt.has(f.approvalId) && card.includes(f.approvalId)) dmAt.set(f.approvalId, post.at);
          continue;
        }
        for (const f of frozen) if (!cardAt.has(f.approvalId) && text.includes(f.approvalId)) cardAt.set(f.approvalId, post.at);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const toCard = percentiles(frozen.map((f) => cardAt.get(f.approvalId)! - f.answeredAt));
    const toDm = percentiles(frozen.map((f) => dmAt.get(f.approvalId)! - f.answeredAt));
    const answer = percentiles(frozen.map((f) => f.answerMs));
    const base = percentiles(direct);
    const row = (name: string, p: ReturnType<typeof percentiles>) => [name, ms(p.p50), ms(p.p90), ms(p.p99), ms(p.max)];
    return {
      tables: [
        {
          title: `Approval card latency (${calls} frozen calls, one every ${gapMs} ms)`,
          columns: ['what', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'],
          rows: [
            row('chat.postMessage sent directly (baseline)', base),
            row('/v1/call freezing the call (202)', answer),
            row('202 -> chat.postMessage of its card', toCard),
            row('202 -> chat.postMessage of the DM to its approver', toDm),
          ],
          notes: [
            `Cards go out through the outbox, delivered as soon as the row commits (NOTIFY), with INVOKE_OUTBOX_INTERVAL_MS (${outboxIntervalMs} ms here) as the safety net.`,
            'The DM waits for its card (it links to it): once the card is posted, its fan-out row resolves the approvers and queues one DM row each, sent with conversations.open + chat.postMessage.',
          ],
        },
      ],
      data: { calls, gap_ms: gapMs, outbox_interval_ms: outboxIntervalMs, direct_post: base, freeze_answer: answer, answer_to_card: toCard, answer_to_dm: toDm },
    };
  } finally {
    await invoke.stop();
    await slack.close();
  }
};
