import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import type { SlackMessage } from '../../src/slack/card-types.ts';
import { createInvokeCommand, type InvokeCommand } from '../../src/slack/invoke-command.ts';
import { createTracesRepository } from '../../src/traces/traces-repository.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';

/** All the text a reader sees: section and context texts, in order. */
function textOf(message: SlackMessage): string {
  return message.blocks
    .flatMap((block) => {
      const text = (block.text as { text?: string } | undefined)?.text;
      const elements = (block.elements as Array<{ text?: string }> | undefined)?.map((e) => e.text ?? '') ?? [];
      return [...(text === undefined ? [] : [text]), ...elements];
    })
    .join('\n');
}

/** Lines of the call list (one per call): the ones carrying a call id. */
function callLines(message: SlackMessage): string[] {
  return textOf(message)
    .split('\n')
    .filter((line) => /`call_[^`]+`$/.test(line));
}

function expectWithinSlackLimits(message: SlackMessage): void {
  expect(message.text.length).toBeGreaterThan(0);
  expect(message.blocks.length).toBeGreaterThan(0);
  expect(message.blocks.length).toBeLessThanOrEqual(50);
  for (const block of message.blocks) {
    const text = (block.text as { text?: string } | undefined)?.text;
    if (text !== undefined) expect(text.length).toBeLessThanOrEqual(3000);
  }
  expect(JSON.stringify(message.blocks).length).toBeLessThan(13_000);
}

/**
 * `/invoke` against the real app's store: calls made through the API (executed, retried, blocked
 * by a deny rule, a replayed idempotency key, a pending and a rejected approval), then every
 * subcommand's answer read back as the text a Slack user would see.
 */
describe('/invoke command', () => {
  let built: BuiltApp;
  let tools: Awaited<ReturnType<typeof startToolServer>>;
  let command: InvokeCommand;
  let failFlaky = 0;
  const ids: { charge: string; flaky: string; wire: string; pending: string; rejected: string; pendingApproval: string; rejectedApproval: string } = {
    charge: '',
    flaky: '',
    wire: '',
    pending: '',
    rejected: '',
    pendingApproval: '',
    rejectedApproval: '',
  };
  /** An approver running the command: these tests are about the answers, not about who asks. */
  const approver = { userId: 'UAPPROVER', isApprover: async () => true };
  const run = (text: string, now = new Date()) => command.run(text, now, approver);

  beforeAll(async () => {
    tools = await startToolServer({
      'POST /charge': (_req, res) => json(res, 200, { charged: true }),
      'POST /wire': (_req, res) => json(res, 200, { wired: true }),
      'POST /remind': (_req, res) => json(res, 200, { sent: true }),
      'POST /flaky': (_req, res) => {
        if (failFlaky > 0) {
          failFlaky--;
          return json(res, 503, { error: 'try later' });
        }
        json(res, 200, { ok: true });
      },
    });
    built = await buildTestApp({ INVOKE_OUTBOX_INTERVAL_MS: '0' });
    const registered = await send(built.app, 'POST', '/v1/providers', {
      name: 'billing',
      base_url: tools.url,
      tools: [
        { name: 'charge', path: '/charge', risk: 'medium', description: 'Charge a customer' },
        { name: 'wire', path: '/wire', risk: 'medium', description: 'Wire money' },
        { name: 'send_reminder', path: '/remind', risk: 'high', description: 'Send an invoice reminder' },
        { name: 'flaky', path: '/flaky', risk: 'low', side_effects: false },
      ],
    });
    expect(registered.status).toBe(201);

    const call = async (body: Record<string, unknown>, expected: string) => {
      const res = await send(built.app, 'POST', '/v1/call', body);
      expect(res.body.status).toBe(expected);
      return res.body as { call_id: string; approval?: { id: string } };
    };
    const charge = { tool: 'billing.charge', params: { amount: 10 }, agent_id: 'a1', idempotency_key: 'dup-1' };
    ids.charge = (await call(charge, 'executed')).call_id;
    // The same key again: replayed, no new call.
    expect((await call(charge, 'executed')).call_id).toBe(ids.charge);
    failFlaky = 1;
    ids.flaky = (await call({ tool: 'billing.flaky', agent_id: 'a2', failure_policy: { retry: 2 } }, 'executed')).call_id;
    ids.wire = (
      await call(
        { tool: 'billing.wire', params: { amount: 5 }, agent_id: 'ops<&>', policy: { rules: [{ when: 'tool == billing.wire', effect: 'deny', reason: 'no wires allowed' }] } },
        'blocked',
      )
    ).call_id;
    const pending = await call(
      { tool: 'billing.send_reminder', params: { invoice_id: 'inv_1' }, agent_id: 'a3', approval_contract: { intent: 'send_invoice_reminder' } },
      'pending_approval',
    );
    ids.pending = pending.call_id;
    ids.pendingApproval = pending.approval!.id;
    const rejected = await call(
      { tool: 'billing.send_reminder', params: { invoice_id: 'inv_2' }, agent_id: 'a3', approval_contract: { intent: 'send_invoice_reminder' } },
      'pending_approval',
    );
    ids.rejected = rejected.call_id;
    ids.rejectedApproval = rejected.approval!.id;
    await built.services.approvals.reject({ approver: 'alice', via: 'slack' }, ids.rejectedApproval, 'customer paid by phone');

    // As the Slack outbox records it once the card is posted.
    await built.store.db.updateTable('approvals').set({ slack_channel: 'C0APPROVE', slack_ts: '1700000000.123456' }).where('id', '=', ids.pendingApproval).execute();

    command = createInvokeCommand({
      db: built.store.db,
      traces: createTracesRepository(built.store.db),
      // The app's own: it holds the replay counted above.
      calls: built.services.callsRepository,
      approvals: built.services.approvals,
      registry: built.services.registry,
    });
  });
  afterAll(async () => {
    await built?.app.close();
    await tools?.close();
  });

  describe('help', () => {
    it('lists every subcommand, for help and for empty text', async () => {
      for (const text of ['help', '', '   ', 'HELP']) {
        const message = await run(text);
        const shown = textOf(message);
        for (const usage of ['traces [agent:X] [tool:Y] [status:Z] [last:N]', 'trace &lt;call_id&gt;', 'approvals', 'approval &lt;id&gt;', 'stats [24h|7d]', 'tools', 'help']) {
          expect(shown).toContain(`/invoke ${usage}`);
        }
        expect(shown).not.toContain('Unknown command');
        expectWithinSlackLimits(message);
      }
    });

    it('answers an unknown subcommand with help, preceded by what was not understood (escaped)', async () => {
      const message = await run('frobnicate now');
      const shown = textOf(message);
      expect(shown.indexOf('Unknown command: `frobnicate`')).toBe(shown.indexOf(':warning:') + ':warning: '.length);
      expect(shown).toContain('/invoke traces');
      expect(message.text).toContain('Unknown command: frobnicate');

      const hostile = textOf(await run('<!channel>&'));
      expect(hostile).toContain('Unknown command: `&lt;!channel&gt;&amp;`');
      expect(hostile).not.toContain('<!channel>');
      const hostileNotice = await run('trace <!channel>');
      expect(hostileNotice.text).toBe('No call &lt;!channel&gt;.');
      expect(JSON.stringify(hostileNotice)).not.toContain('<!channel>');
    });
  });

  describe('traces', () => {
    it('lists the newest calls first, one line each with emoji, tool, agent, attempts, age and id', async () => {
      const message = await run('traces');
      const lines = callLines(message);
      expect(lines).toHaveLength(5);
      expect(lines.map((l) => l.match(/`(call_[^`]+)`$/)![1])).toEqual([ids.rejected, ids.pending, ids.wire, ids.flaky, ids.charge]);
      const [rejected, pending, wire, flaky, charge] = lines as [string, string, string, string, string];
      expect(charge).toMatch(/^:white_check_mark: `billing\.charge` · agent `a1` · executed · 1 attempt · (just now|\d+s ago) · `call_/);
      expect(flaky).toContain('`billing.flaky` · agent `a2` · executed · 2 attempts');
      expect(wire).toMatch(/^:no_entry: `billing\.wire` · agent `ops&lt;&amp;&gt;` · blocked/);
      expect(pending).toMatch(/^:hourglass_flowing_sand: `billing\.send_reminder` · agent `a3` · pending_approval/);
      expect(rejected).toMatch(/^:no_entry_sign: `billing\.send_reminder` · agent `a3` · rejected/);
      expect(textOf(message)).toContain('5 calls');
      expectWithinSlackLimits(message);
    });

    it('shows ages relative to the given time', async () => {
      const later = new Date(Date.now() + 3 * 3_600_000 + 5 * 60_000);
      const lines = callLines(await run('traces last:1', later));
      expect(lines[0]).toMatch(/ · 3h [45]m ago · /);
    });

    it('filters by agent, tool and status, and limits with last:N', async () => {
      expect(callLines(await run('traces agent:a1')).map((l) => l.includes(ids.charge))).toEqual([true]);
      expect(callLines(await run('traces agent:ops<&>'))).toHaveLength(1);
      expect(callLines(await run('traces tool:billing.send_reminder'))).toHaveLength(2);
      const blocked = callLines(await run('traces status:blocked'));
      expect(blocked).toHaveLength(1);
      expect(blocked[0]).toContain(ids.wire);
      expect(callLines(await run('traces tool:billing.send_reminder status:rejected agent:a3')).map((l) => l.includes(ids.rejected))).toEqual([true]);
      expect(callLines(await run('traces last:1'))[0]).toContain(ids.rejected);
      expect(callLines(await run('traces last:2')).map((l) => l.match(/`(call_[^`]+)`$/)![1])).toEqual([ids.rejected, ids.pending]);
      expect(callLines(await run('traces agent:a1 last:3'))).toHaveLength(1);

      const header = textOf(await run('traces agent:a1 tool:billing.charge'));
      expect(header).toContain('agent `a1`');
      expect(header).toContain('tool `billing.charge`');
    });

    it('says when nothing matches', async () => {
      const message = await run('traces agent:nobody');
      expect(callLines(message)).toHaveLength(0);
      expect(textOf(message)).toContain('No calls match.');
    });

    it('caps last:N at 50 and says so', async () => {
      const message = await run('traces last:500');
      expect(callLines(message)).toHaveLength(5);
      expect(textOf(message)).toContain('At most 50 calls are shown.');
    });

    it('answers bad arguments with a clear message', async () => {
      expect(textOf(await run('traces last:abc'))).toContain('last:abc is not a number of calls');
      expect(textOf(await run('traces last:0'))).toContain('last:0 is not a number of calls');
      expect(textOf(await run('traces last:-3'))).toContain('is not a number of calls');
      expect(textOf(await run('traces last:'))).toContain('needs a value');
      expect(textOf(await run('traces status:bogus'))).toContain('Unknown status "bogus"');
      expect(textOf(await run('traces color:red'))).toContain('Unknown filter "color:red"');
      expect(textOf(await run('traces a1'))).toContain('Unknown filter "a1"');
      const bad = await run('traces last:abc');
      expect(callLines(bad)).toHaveLength(0);
      expect(textOf(bad)).toContain('/invoke help');
    });
  });

  describe('trace', () => {
    it('shows the timeline of an executed call and its final answer', async () => {
      const message = await run(`trace ${ids.charge}`);
      const shown = textOf(message);
      expect(shown).toContain(`*Call* \`${ids.charge}\` · executed`);
      expect(shown).toContain('tool `billing.charge` · agent `a1` · 1 attempt');
      expect(shown).toContain('idempotency key `dup-1`');
      const steps = [...shown.matchAll(/^• \d\d:\d\d:\d\d\.\d{3} UTC \(\+\d+ ms\) · \*(\w+)\* (\w+)/gm)].map((m) => `${m[1]} ${m[2]}`);
      expect(steps.map((s) => s.split(' ')[0])).toEqual(['request_received', 'scope_checked', 'policy_evaluated', 'attempt_started', 'attempt_succeeded', 'execution_completed']);
      expect(shown).toMatch(/\*attempt_succeeded\* \w+ · took \d+ ms/);
      expect(shown).toContain('*Final answer:* :white_check_mark: executed');
      expectWithinSlackLimits(message);
    });

    it('shows why a blocked call was blocked', async () => {
      const shown = textOf(await run(`trace ${ids.wire}`));
      expect(shown).toContain('agent `ops&lt;&amp;&gt;`');
      expect(shown).toContain('*Final answer:* :no_entry: blocked: no wires allowed');
      expect(shown).toContain('*policy_evaluated*');
    });

    it('points a frozen call at its approval', async () => {
      const shown = textOf(await run(`trace ${ids.pending}`));
      expect(shown).toContain('*Final answer:* :hourglass_flowing_sand: pending_approval');
      expect(shown).toContain(`/invoke approval ${ids.pendingApproval}`);
      expect(shown).toContain('*approval_requested*');
    });

    it('shows the rejection of a rejected call', async () => {
      const shown = textOf(await run(`trace ${ids.rejected}`));
      expect(shown).toContain('*Final answer:* :no_entry_sign: rejected: rejected by alice: customer paid by phone');
      expect(shown).toContain('*approval_decided* rejected');
    });

    it('says so for an unknown call, and asks for an id when none is given', async () => {
      expect(textOf(await run('trace call_nope'))).toContain('No call call_nope.');
      expect(textOf(await run('trace <script>'))).toContain('No call &lt;script&gt;.');
      expect(textOf(await run('trace'))).toContain('Which call?');
      expect(textOf(await run(`trace ${ids.charge} extra`))).toContain('trace takes one call id');
    });
  });

  describe('approvals', () => {
    it('lists pending approvals, oldest first, with a link to the card', async () => {
      const message = await run('approvals');
      const shown = textOf(message);
      expect(shown).toContain('*Pending approvals*: 1, oldest first');
      const lines = shown.split('\n');
      const at = lines.findIndex((l) => l.includes(ids.pendingApproval));
      const [line, why, params] = lines.slice(at, at + 3) as [string, string, string];
      expect(line).toContain('`billing.send_reminder`');
      expect(line).toContain('intent *send_invoice_reminder*');
      expect(line).toContain('agent `a3`');
      expect(line).toContain('risk high');
      expect(line).toContain('<https://slack.com/archives/C0APPROVE/p1700000000123456|open card>');
      expect(why).toMatch(/^ {3}why: \S/);
      expect(params).toContain('params `invoice_id: "inv_1"`');
      expect(params).toMatch(/expires <!date\^\d+\^\{date_short_pretty\} \{time\}\|[^>]+> \(in \d+[hm]/);
      expect(shown).not.toContain(ids.rejectedApproval);
      expectWithinSlackLimits(message);
    });

    it('uses the workspace URL for links when given', async () => {
      const teamCommand = createInvokeCommand({
        db: built.store.db,
        traces: createTracesRepository(built.store.db),
        calls: built.services.callsRepository,
        approvals: built.services.approvals,
        registry: built.services.registry,
        slackTeamUrl: 'https://acme.slack.com/',
      });
      expect(textOf(await teamCommand.run('approvals', new Date(), approver))).toContain('<https://acme.slack.com/archives/C0APPROVE/p1700000000123456|open card>');
    });

    it('lists oldest first and marks approvals without a card', async () => {
      const another = await send(built.app, 'POST', '/v1/call', {
        tool: 'billing.send_reminder',
        params: { invoice_id: 'inv_3' },
        agent_id: 'a4',
        approval_contract: { intent: 'send_invoice_reminder' },
      });
      expect(another.body.status).toBe('pending_approval');
      try {
        const shown = textOf(await run('approvals'));
        expect(shown).toContain('*Pending approvals*: 2, oldest first');
        expect(shown.indexOf(ids.pendingApproval)).toBeLessThan(shown.indexOf(another.body.approval.id));
        expect(shown.split('\n').find((l) => l.includes(another.body.approval.id))).toMatch(/ · no card$/);
      } finally {
        await built.services.approvals.reject({ approver: 'alice', via: 'slack' }, another.body.approval.id, 'cleanup');
        await built.store.db.deleteFrom('approval_events').where('approval_id', '=', another.body.approval.id).execute();
        await built.store.db.deleteFrom('approvals').where('id', '=', another.body.approval.id).execute();
        await built.store.db.deleteFrom('calls').where('id', '=', another.body.call_id).execute();
      }
    });

    it('refuses arguments', async () => {
      expect(textOf(await run('approvals now'))).toContain('approvals takes at most one word, mine');
      expect(textOf(await run('approvals mine now'))).toContain('approvals takes at most one word, mine');
    });
  });

  describe('approval', () => {
    it("shows a pending approval's status, tool, params and decision", async () => {
      const message = await run(`approval ${ids.pendingApproval}`);
      const shown = textOf(message);
      expect(shown).toContain(`*Approval* \`${ids.pendingApproval}\` · pending · <https://slack.com/archives/C0APPROVE/p1700000000123456|open card>`);
      expect(shown).toContain('tool `billing.send_reminder` · agent `a3` · risk');
      expect(shown).toContain('intent send_invoice_reminder');
      expect(shown).toContain(`call \`${ids.pending}\``);
      expect(shown).toContain('```{"invoice_id":"inv_1"}```');
      expect(shown).toContain('*Decision*\nNot decided yet.');
      expectWithinSlackLimits(message);
    });

    it('shows the decision of a decided approval', async () => {
      const shown = textOf(await run(`approval ${ids.rejectedApproval}`));
      expect(shown).toContain(`\`${ids.rejectedApproval}\` · rejected`);
      expect(shown).toContain('```{"invoice_id":"inv_2"}```');
      expect(shown).toContain('outcome rejected');
      expect(shown).toContain('by `alice`');
      expect(shown).toContain('reason: customer paid by phone');
      expect(shown).not.toContain('open card');
    });

    it('says so for an unknown approval, and asks for an id when none is given', async () => {
      expect(textOf(await run('approval apr_nope'))).toContain('No approval apr_nope.');
      expect(textOf(await run('approval'))).toContain('Which approval?');
      expect(textOf(await run('approval a b'))).toContain('approval takes one approval id');
    });
  });

  describe('stats', () => {
    const countOf = (shown: string, label: string) => {
      const match = shown.match(new RegExp(`${label}[^\\n]*?: (\\d+)`));
      return match ? Number(match[1]) : undefined;
    };

    it('counts calls by outcome, retries, reconciliations, replays and approvals in the last 24h', async () => {
      for (const text of ['stats', 'stats 24h']) {
        const message = await run(text);
        const shown = textOf(message);
        expect(shown).toContain('*Stats for the last 24h*');
        expect(countOf(shown, '\\*Calls\\*')).toBe(5);
        expect(countOf(shown, ':white_check_mark: executed')).toBe(2);
        expect(countOf(shown, ':no_entry: blocked')).toBe(1);
        expect(countOf(shown, 'pending_approval')).toBe(1);
        expect(countOf(shown, ':no_entry_sign: rejected')).toBe(1);
        expect(countOf(shown, ':x: failed')).toBe(0);
        expect(countOf(shown, 'outcome_reconciled')).toBe(0);
        expect(countOf(shown, 'replan_required')).toBe(0);
        expect(countOf(shown, 'unknown_outcome')).toBe(0);
        expect(countOf(shown, '\\*Retried\\*')).toBe(1);
        expect(countOf(shown, '\\*Reconciled\\*')).toBe(0);
        expect(countOf(shown, '\\*Duplicates replayed\\*')).toBe(1);
        expect(countOf(shown, '\\*Approvals\\*')).toBe(2);
        expect(countOf(shown, ':hourglass_flowing_sand: pending')).toBe(1);
        expect(shown).toMatch(/:no_entry_sign: rejected: 1\n?/);
        expectWithinSlackLimits(message);
      }
    });

    it('counts over 7 days too, and only inside the window', async () => {
      const week = textOf(await run('stats 7d'));
      expect(week).toContain('*Stats for the last 7d*');
      expect(countOf(week, '\\*Calls\\*')).toBe(5);
      expect(countOf(week, '\\*Duplicates replayed\\*')).toBe(1);

      // Two days on, the 24h window is empty and the 7d window still holds everything.
      const later = new Date(Date.now() + 2 * 24 * 3_600_000);
      const empty = textOf(await run('stats 24h', later));
      expect(countOf(empty, '\\*Calls\\*')).toBe(0);
      expect(countOf(empty, ':white_check_mark: executed')).toBe(0);
      expect(countOf(empty, '\\*Duplicates replayed\\*')).toBe(0);
      expect(countOf(empty, '\\*Approvals\\*')).toBe(0);
      expect(countOf(textOf(await run('stats 7d', later)), '\\*Calls\\*')).toBe(5);
    });

    it('answers an unknown window with a clear message', async () => {
      expect(textOf(await run('stats 3y'))).toContain('Unknown window "3y": use 24h or 7d.');
      expect(textOf(await run('stats 24h 7d'))).toContain('stats takes at most one window');
      // A name every object has is not a window (it once reached the store as an invalid date).
      expect(textOf(await run('stats constructor'))).toContain('Unknown window "constructor": use 24h or 7d.');
    });
  });

  describe('tools', () => {
    it('lists the capability cards with key, risk and side effects', async () => {
      const message = await run('tools');
      const shown = textOf(message);
      const line = (key: string) => shown.split('\n').find((l) => l.includes(`\`${key}\``));
      expect(line('billing.charge')).toMatch(/risk medium · side effects/);
      expect(line('billing.charge')).toContain('Charge a customer');
      expect(line('billing.send_reminder')).toContain('risk high');
      expect(line('billing.flaky')).toMatch(/risk low · no side effects/);
      expect(line('fetch.url')).toBeDefined();
      expectWithinSlackLimits(message);
      expect(textOf(await run('tools all'))).toContain('tools takes no arguments');
    });

    it("stays within Slack's limits with many long tool cards, saying how many were left out", async () => {
      const many = Array.from({ length: 120 }, (_, i) => ({
        name: `tool_${String(i).padStart(3, '0')}`,
        path: '/charge',
        risk: 'low',
        description: `<b>&${'x'.repeat(600)}`,
      }));
      const res = await send(built.app, 'POST', '/v1/providers', { name: 'bulk', base_url: tools.url, tools: many });
      expect(res.status).toBe(201);
      const message = await run('tools');
      expectWithinSlackLimits(message);
      const shown = textOf(message);
      expect(shown).toMatch(/… and \d+ more not shown/);
      expect(shown).toContain('&lt;b&gt;&amp;xxx');
      expect(shown).not.toContain('<b>');
    });
  });
});
