// 4. An issue creation retried after a client timeout: one idempotency key, one issue.
import { agentLoop } from '../agent.ts';
import { direct, failedSummary, invokeCall, type Scenario } from './scenario.ts';

const ISSUE = { title: 'Checkout p95 latency above SLO', body: 'p95 at 2.4 s for 15 minutes; paging on-call.' };

export const duplicateIssue: Scenario = {
  id: 4,
  title: 'Duplicate retry of issue creation',
  measures: [{ key: 'issues', label: 'issues created in the tracker' }],
  async naive(ctx) {
    const { tracker } = ctx.env;
    const loop = await agentLoop(direct(ctx, 'POST', `${tracker.url}/issues`, ISSUE), ctx.signal);
    const counts = { issues: tracker.issues.length };
    if (!loop.value) return { counts, summary: failedSummary('no issue confirmed', loop.failures) };
    return { counts, summary: `timed out, retried, got ${loop.value.body.id}` };
  },
  async invoke(ctx) {
    const { tracker } = ctx.env;
    const loop = await agentLoop(invokeCall(ctx, { tool: 'tracker.create_issue', params: ISSUE, idempotency_key: 'incident-4711:open-issue' }), ctx.signal);
    const counts = { issues: tracker.issues.length };
    if (!loop.value) throw new Error(`no answer from Invoke: ${loop.failures.join('; ')}`);
    const replayed = loop.value.headers.get('idempotent-replayed') === 'true';
    const answer = loop.value.body;
    const timeouts = loop.failures.filter((f) => f.includes('no answer within')).length;
    const asked = loop.failures.filter((f) => f.startsWith('409')).length;
    return {
      counts,
      outcome: String(answer.status),
      summary: `${answer.status} ${answer.result?.id ?? ''}${replayed ? ', replayed' : ''} (agent timed out ${timeouts}x, got 409 in flight ${asked}x, same key)`,
      details: { replayed, agent_timeouts: timeouts, in_flight_409s: asked },
    };
  },
};
