import { beforeAll, describe, expect, it } from 'vitest';
import { formatTable, runDemo, type DemoResult, type ScenarioResult } from '../../demo/run-demo.ts';
import { runSdkAgentDemo } from '../../demo/sdk-agent.ts';

/**
 * The blast-radius demo end to end, in-process: the mock tools, the Slack emulator and Invoke on
 * loopback, each scenario run naive and through Invoke. The counts asserted here are the ones
 * the demo read from the mocks and the emulator after each run.
 */
describe('the blast-radius demo', () => {
  let result: DemoResult;
  const scenario = (id: number): ScenarioResult => {
    const found = result.scenarios.find((s) => s.id === id);
    if (!found) throw new Error(`no scenario ${id}`);
    expect(found.error).toBeUndefined();
    return found;
  };

  beforeAll(async () => {
    result = await runDemo({ flakyFailFirstN: 2 });
  }, 60_000);

  it('runs all seven scenarios and stops', () => {
    expect(result.scenarios.map((s) => [s.id, s.error])).toEqual([1, 2, 3, 4, 5, 6, 7].map((id) => [id, undefined]));
    expect(result.ok).toBe(true);
  });

  it('1: the flaky tool is recovered by bounded retry; the naive loop gives up', () => {
    const s = scenario(1);
    expect(s.naive!.counts).toEqual({ tool_calls: 2, answered: 0 });
    expect(s.naive!.details).toMatchObject({ gave_up: true });
    expect(s.invoke!.counts).toEqual({ tool_calls: 3, answered: 1 });
    expect(s.invoke!.outcome).toBe('executed');
    expect(s.invoke!.details).toMatchObject({ attempts: 3 });
  });

  it('2: a payment that timed out after the charge: naive charges twice, Invoke reconciles and charges once', () => {
    const s = scenario(2);
    expect(s.naive!.counts.charges).toBe(2);
    expect(s.invoke!.counts.charges).toBe(1);
    expect(s.invoke!.outcome).toBe('outcome_reconciled');
    expect(s.invoke!.details).toMatchObject({ attempts: 1, reconciliation: 'do_not_retry' });
  });

  it('3: a CRM update naming another customer: naive writes the wrong record, Invoke blocks and touches nothing', () => {
    const s = scenario(3);
    expect(s.naive!.counts).toEqual({ writes_other: 1, writes_resolved: 0 });
    expect(s.invoke!.counts).toEqual({ writes_other: 0, writes_resolved: 0 });
    expect(s.invoke!.outcome).toBe('blocked');
  });

  it('4: a retried issue creation: naive opens two issues, Invoke replays the first', () => {
    const s = scenario(4);
    expect(s.naive!.counts.issues).toBe(2);
    expect(s.invoke!.counts.issues).toBe(1);
    expect(s.invoke!.outcome).toBe('executed');
    expect(s.invoke!.details).toMatchObject({ replayed: true, agent_timeouts: 1 });
  });

  it('5: a stale approval: naive sends the reminder for a paid invoice, Invoke requeues it in the Slack thread', () => {
    const s = scenario(5);
    expect(s.naive!.counts).toEqual({ reminders: 1, stale_reminders: 1 });
    expect(s.invoke!.counts).toEqual({ reminders: 0, stale_reminders: 0, slack_thread_posts: 2, slack_card_updates: 1 });
    expect(s.invoke!.outcome).toBe('requeued');
    expect(s.invoke!.details).toMatchObject({ approval_status: 'invalidated', fresh_card_in_thread: true, repeated_call_status: 'pending_approval' });
    expect(result.slackThread.some((line) => line.startsWith('thread: fresh card'))).toBe(true);
    expect(result.slackThread.some((line) => line.startsWith('card (updated 1x)'))).toBe(true);
  });

  it('6: a refund the API calls a success and the source of truth does not: naive reports success, Invoke answers replan_required', () => {
    const s = scenario(6);
    expect(s.naive!.counts).toEqual({ confirmed: 0, success_reports: 1 });
    expect(s.naive!.summary).toMatch(/refund succeeded/);
    expect(s.invoke!.counts).toEqual({ confirmed: 0, success_reports: 1 });
    expect(s.invoke!.outcome).toBe('replan_required');
    expect(s.invoke!.details).toMatchObject({ call_status: 'replan_required' });
  });

  it('7: the agent asks for the wrong amount: naive sends it, the approver fixes it in Slack and the edited refund runs', () => {
    const s = scenario(7);
    expect(s.naive!.counts).toEqual({ refund_requests: 1, amount_sent: 2400 });
    expect(s.invoke!.counts).toEqual({ refund_requests: 1, amount_sent: 240 });
    expect(s.invoke!.outcome).toBe('executed');
    expect(s.invoke!.details).toMatchObject({
      approval_status: 'executed',
      edited_by: 'U0APPROVER',
      diff: 'amount changed: 2400 -> 240',
      card_shows_edit: true,
    });
    expect(result.slackThread.some((line) => line.startsWith('card (edited)'))).toBe(true);
  });

  it('prints a table with both runs and the Invoke answer per scenario', () => {
    const table = formatTable(result);
    expect(table).toMatch(/charges recorded by the payments API\s+2\s+1\s+outcome_reconciled/);
    expect(table).toMatch(/issues created in the tracker\s+2\s+1\s+executed/);
  });
});

/** The second demo: an agent on the SDK, one call waiting for a Slack approval. */
describe('the SDK agent demo', () => {
  it('looks up, then waits on one call while the approver clicks Approve in Slack; the reminder is sent once', async () => {
    const result = await runSdkAgentDemo();
    expect(result.lookup.status).toBe('executed');
    expect(result.reminder.status).toBe('executed');
    expect(result.reminder.result).toEqual({ invoice_id: 'inv_2001', reminder_sent: true });
    expect(result.reminders).toBe(1);
    expect(result.card).toMatch(/^Approval executed: payments\.send_reminder.*decided by <@U0APPROVER>/);
    expect(result.log).toContain(`Slack: card for ${result.approvalId} in the channel; the approver clicks Approve`);
    expect(result.log).toContain('Slack thread: :white_check_mark: *Executed* after approval by <@U0APPROVER>.');
  }, 60_000);
});
