// The agent's side with the SDK: an agent written against `import { Invoke } from 'invoke'`
// looks an invoice up (executed at once), then sends a reminder that policy freezes for a human.
// The agent waits on that one call (`waitForApproval`) while the approver clicks Approve on the
// card in Slack (the emulator, a signed interactivity request); the same call then returns the
// final answer. Everything on 127.0.0.1, as in run-demo.ts.
//
//   npm run demo:sdk        (tsx --conditions=invoke-source demo/sdk-agent.ts)
import { pathToFileURL } from 'node:url';
import { Invoke, type CallAnswer } from 'invoke';
import { APPROVE_ACTION_ID } from '../src/slack/blocks.ts';
import { waitFor } from './agent.ts';
import { startEnvironment, type Environment, type Stopper } from './environment.ts';
import { clickApprove } from './scenarios/stale-approval.ts';

const INVOICE_ID = 'inv_2001';

export interface SdkAgentResult {
  lookup: CallAnswer;
  reminder: CallAnswer;
  /** How long the agent's one `call` waited for the human. */
  waitedMs: number;
  approvalId: string;
  /** Reminders recorded by the payments API (the side effect, counted at the tool). */
  reminders: number;
  /** The Slack card's text after the decision. */
  card: string;
  log: string[];
}

/** The agent: ten lines of SDK. */
async function agent(invoke: Invoke) {
  const lookup = await invoke.call('payments.get_invoice', { invoice_id: INVOICE_ID });
  const policy = { rules: [{ when: 'true', effect: 'require_approval' as const, reason: 'A reminder email to a customer needs a human' }] };
  const began = Date.now();
  const reminder = await invoke.call('payments.send_reminder', { invoice_id: INVOICE_ID }, { policy, waitForApproval: 30_000 });
  return { lookup, reminder, waitedMs: Date.now() - began };
}

/** The approver: waits for the card in Slack, reads the approval id off its Approve button, clicks it. */
async function approver(env: Environment, signal: AbortSignal, log: (line: string) => void) {
  const card = await waitFor(
    'the approval card in Slack',
    async () => {
      await env.built.services.deliverOutbox();
      return env.slack.messages.find((m) => m.thread_ts === undefined && approveButtonOf(m.blocks) !== undefined);
    },
    signal,
  );
  const approvalId = approveButtonOf(card.blocks)!;
  log(`Slack: card for ${approvalId} in the channel; the approver clicks Approve`);
  const click = await clickApprove({ env }, approvalId, card.ts);
  if (click.status !== 200) throw new Error(`the Slack click answered ${click.status}`);
  await env.built.services.deliverOutbox();
  return { approvalId, cardTs: card.ts };
}

function approveButtonOf(blocks: unknown): string | undefined {
  if (!Array.isArray(blocks)) return undefined;
  for (const block of blocks as Array<{ type?: string; elements?: Array<{ action_id?: string; value?: string }> }>) {
    const button = block.type === 'actions' ? block.elements?.find((e) => e.action_id === APPROVE_ACTION_ID) : undefined;
    if (button?.value) return button.value;
  }
  return undefined;
}

export async function runSdkAgentDemo(options: { log?: (line: string) => void } = {}): Promise<SdkAgentResult> {
  const lines: string[] = [];
  const log = (line: string) => {
    lines.push(line);
    options.log?.(line);
  };
  const stoppers: Stopper[] = [];
  const controller = new AbortController();
  try {
    const env = await startEnvironment(0, stoppers);
    const invoke = new Invoke({ apiKey: env.apiKey, baseUrl: env.invokeUrl, agentId: 'billing_agent' });
    log(`Invoke at ${env.invokeUrl}; the agent uses the SDK`);
    const [run, decided] = await Promise.all([agent(invoke), approver(env, controller.signal, log)]);
    log(`agent: payments.get_invoice -> ${run.lookup.status}`);
    log(`agent: payments.send_reminder -> ${run.reminder.status} after waiting ${(run.waitedMs / 1000).toFixed(1)} s for the approval`);
    // The outcome goes into the card's thread too (the outbox), before anything stops.
    const reply = await waitFor(
      'the outcome in the card thread',
      async () => {
        await env.built.services.deliverOutbox();
        return env.slack.messages.find((m) => m.thread_ts === decided.cardTs);
      },
      controller.signal,
    );
    log(`Slack thread: ${reply.text ?? ''}`);
    const card = env.slack.messages.find((m) => m.ts === decided.cardTs);
    return {
      ...run,
      approvalId: decided.approvalId,
      reminders: env.payments.reminders.length,
      card: card?.text ?? '',
      log: lines,
    };
  } finally {
    controller.abort();
    for (let next = stoppers.pop(); next; next = stoppers.pop()) await next.stop().catch(() => undefined);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const result = await runSdkAgentDemo({ log: (line) => process.stdout.write(`${line}\n`) });
  process.stdout.write(`reminders sent: ${result.reminders}; card: ${result.card}\n`);
  process.exitCode = result.reminder.status === 'executed' ? 0 : 1;
}
