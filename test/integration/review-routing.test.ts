import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { createSigner } from '../../src/web/signing.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';

const LINK_SECRET = 'review-routing-secret-for-tests-0123456789';
const APPROVER_SCOPES = ['approvals:read', 'approvals:write'];
/** Approves what nothing routes elsewhere (no INVOKE_APPROVERS: any approvals:write key). */
const ALICE = 'key-alice';
/** The approver the charge tool's card names. */
const FIN = 'key-fin';

/**
 * Review links under routing: a link bound to an approver the approval's routing does not name
 * shows why it cannot decide and offers no decision; posted anyway, the service refuses it and
 * the link is not spent.
 */
describe('review links for routed approvals', () => {
  let built: BuiltApp;
  let tools: Awaited<ReturnType<typeof startToolServer>>;
  const signer = createSigner(LINK_SECRET);

  beforeAll(async () => {
    tools = await startToolServer({ 'POST /charge': (_req, res) => json(res, 200, { charged: true }) });
    built = await buildTestApp({
      INVOKE_LINK_SECRET: LINK_SECRET,
      INVOKE_OUTBOX_INTERVAL_MS: '0',
      INVOKE_REQUIRE_APPROVAL_AT: 'high',
      INVOKE_API_KEY_SCOPES: JSON.stringify({
        [ALICE]: { scopes: APPROVER_SCOPES, approver_id: 'alice' },
        [FIN]: { scopes: APPROVER_SCOPES, approver_id: 'fin-bot' },
      }),
    });
    const res = await send(built.app, 'POST', '/v1/providers', {
      name: 'pay',
      base_url: tools.url,
      tools: [{ name: 'charge', path: '/charge', risk: 'high', approvers: ['fin-bot'] }],
    });
    expect(res.status).toBe(201);
  });
  afterAll(async () => {
    await built.app.close();
    await tools.close();
  });

  const tokenOf = (link: string) => new URL(link, 'http://x').searchParams.get('t')!;
  /** The CSRF token a page opened through a bound link (no session) carries. */
  const csrfOf = (link: string) => signer.sign('csrf', `-|${String(signer.open('review-link', tokenOf(link))!.n)}`);
  const postForm = (url: string, form: Record<string, string>) =>
    built.app.inject({ method: 'POST', url, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams(form).toString() });

  it('a link bound to an approver the routing does not name shows why and has no buttons; posted anyway, it is refused and not spent', async () => {
    const frozen = await send(built.app, 'POST', '/v1/call', { tool: 'pay.charge', params: { n: 1 }, agent_id: 'billing_agent' });
    expect(frozen.status).toBe(202);
    const id = frozen.body.approval.id as string;
    const charges = tools.count('POST', '/charge');

    const alicesLink = (await send(built.app, 'POST', `/v1/approvals/${id}/links`, {}, { 'x-api-key': ALICE })).body.review_url as string;
    const page = await built.app.inject({ method: 'GET', url: alicesLink });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('class="error refusal"');
    expect(page.body).toContain('alice is not an approver of this approval; it may be decided by fin-bot');
    expect(page.body).not.toContain('review/approve');
    expect(page.body).not.toContain('review/edit');

    const forced = await postForm(`/approvals/${id}/review/approve`, { t: tokenOf(alicesLink), csrf: csrfOf(alicesLink) });
    expect(forced.statusCode).toBe(403);
    expect(forced.body).toContain('data-code="not_an_approver"');
    const edited = await postForm(`/approvals/${id}/review/edit`, { t: tokenOf(alicesLink), csrf: csrfOf(alicesLink), params: '{"n": 2}' });
    expect(edited.statusCode).toBe(403);
    // Live state is for the deciders too, as the card's Refetch is.
    const refreshed = await postForm(`/approvals/${id}/review/refresh`, { t: tokenOf(alicesLink), csrf: csrfOf(alicesLink) });
    expect(refreshed.statusCode).toBe(403);
    expect(refreshed.body).toContain('data-code="not_an_approver"');
    expect(tools.count('POST', '/charge')).toBe(charges);
    expect((await send(built.app, 'GET', `/v1/approvals/${id}`)).body.approval.status).toBe('pending');

    // The routed approver's own link decides.
    const finsLink = (await send(built.app, 'POST', `/v1/approvals/${id}/links`, {}, { 'x-api-key': FIN })).body.review_url as string;
    expect((await built.app.inject({ method: 'GET', url: finsLink })).body).toContain('review/approve');
    const ok = await postForm(`/approvals/${id}/review/approve`, { t: tokenOf(finsLink), csrf: csrfOf(finsLink) });
    expect(ok.statusCode).toBe(200);
    expect((await send(built.app, 'GET', `/v1/approvals/${id}`)).body.approval).toMatchObject({ status: 'executed', decision: { approver: 'fin-bot' } });
  });
});
