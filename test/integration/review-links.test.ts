import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { mintReviewLink } from '../../src/web/review-links.ts';
import { createSigner } from '../../src/web/signing.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';

const LINK_SECRET = 'review-link-secret-for-tests-0123456789';
const APPROVER_SCOPES = ['approvals:read', 'approvals:write'];
const ALICE = 'key-alice';
const READER = 'key-reader';
/** Bob's agent key requests calls; Bob's approver key is the same person, so it may not decide them. */
const BOB_AGENT = 'key-bob-agent';
const BOB = 'key-bob';

const REFUND_SCHEMA = {
  type: 'object',
  properties: { invoice_id: { type: 'string' }, amount: { type: 'number', minimum: 1 }, currency: { type: 'string', enum: ['EUR', 'USD'] } },
  required: ['invoice_id', 'amount'],
  additionalProperties: false,
};

/** The review pages without a browser: links, sign-in, decisions, refusals, headers, both error shapes. */
describe('review links and the web pages', () => {
  let built: BuiltApp;
  let tools: Awaited<ReturnType<typeof startToolServer>>;
  const signer = createSigner(LINK_SECRET);

  beforeAll(async () => {
    tools = await startToolServer({
      'POST /remind': (_req, res) => json(res, 200, { sent: true }),
      'POST /refund': (req, res) => json(res, 200, { refunded: (req.body as { amount?: number }).amount }),
      'GET /invoices/*': (_req, res) => json(res, 200, { invoice_id: 'inv_1', invoice_status: 'overdue', balance: 100 }),
    });
    built = await buildTestApp({
      INVOKE_LINK_SECRET: LINK_SECRET,
      INVOKE_OUTBOX_INTERVAL_MS: '0',
      INVOKE_API_KEY_SCOPES: JSON.stringify({
        [ALICE]: { scopes: APPROVER_SCOPES, approver_id: 'alice' },
        [READER]: { scopes: ['approvals:read'], approver_id: 'rita' },
        [BOB_AGENT]: { scopes: ['tools:read', 'tools:call'], approver_id: 'bob' },
        [BOB]: { scopes: APPROVER_SCOPES, approver_id: 'bob' },
      }),
    });
    const res = await send(built.app, 'POST', '/v1/providers', {
      name: 'billing',
      base_url: tools.url,
      tools: [
        { name: 'send_reminder', path: '/remind', risk: 'high' },
        { name: 'get_invoice', method: 'GET', path: '/invoices/{invoice_id}', side_effects: false, risk: 'low' },
        { name: 'refund', path: '/refund', risk: 'high', input_schema: REFUND_SCHEMA },
        { name: 'refund_locked', path: '/refund', risk: 'high', input_schema: REFUND_SCHEMA, editable: false },
      ],
    });
    expect(res.status).toBe(201);
  });
  afterAll(async () => {
    await built.app.close();
    await tools.close();
  });

  /** Freezes one call; returns the approval id and the review link from the agent's answer. */
  async function freeze(options: { key?: string; params?: Record<string, unknown> } = {}): Promise<{ id: string; link: string }> {
    const res = await send(
      built.app,
      'POST',
      '/v1/call',
      {
        tool: 'billing.send_reminder',
        params: options.params ?? { invoice_id: 'inv_1' },
        agent_id: 'billing_agent',
        approval_contract: {
          intent: 'send_invoice_reminder',
          conditions: { invoice_status: 'overdue' },
          state_refetch: { tool: 'billing.get_invoice', params: { invoice_id: 'inv_1' } },
        },
      },
      options.key ? { 'x-api-key': options.key } : {},
    );
    expect(res.status).toBe(202);
    return { id: res.body.approval.id, link: res.body.approval.review_url };
  }

  const get = (url: string, headers: Record<string, string> = {}) => built.app.inject({ method: 'GET', url, headers });
  const postForm = (url: string, form: Record<string, string>, headers: Record<string, string> = {}) =>
    built.app.inject({ method: 'POST', url, headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, payload: new URLSearchParams(form).toString() });

  /** Signs in with a key; returns the Cookie header the browser would send back. */
  async function signIn(key: string): Promise<string> {
    const res = await postForm('/web/sign-in', { key, next: '/dashboard/approvals' });
    expect(res.statusCode).toBe(303);
    const cookie = String(res.headers['set-cookie']);
    return cookie.split(';')[0]!;
  }

  const tokenOf = (link: string) => new URL(link, 'http://x').searchParams.get('t')!;
  const csrfIn = (page: string) => /name="csrf" value="([^"]+)"/.exec(page)?.[1] ?? '';

  it("puts a relative review link in the agent's answer and in GET /v1/approvals/:id", async () => {
    const { id, link } = await freeze();
    expect(link).toMatch(new RegExp(`^/approvals/${id}/review\\?t=[\\w-]+\\.[\\w-]+$`));
    const res = await send(built.app, 'GET', `/v1/approvals/${id}`);
    expect(res.body.approval.review_url).toMatch(new RegExp(`^/approvals/${id}/review\\?t=`));
  });

  it('asks for sign-in on an unbound link, with the security headers on every page', async () => {
    const { link } = await freeze();
    const res = await get(link);
    expect(res.statusCode).toBe(401);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toContain('action="/web/sign-in"');
    expect(res.body).not.toContain('send_invoice_reminder');
    const csp = String(res.headers['content-security-policy']);
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'none'");
    expect(csp).toMatch(/style-src 'nonce-[A-Za-z0-9+/=]+'/);
    expect(csp).toContain("frame-ancestors 'none'");
    const nonce = /'nonce-([^']+)'/.exec(csp)![1];
    expect(res.body).toContain(`<style nonce="${nonce}">`);
    expect(res.body).not.toMatch(/<script/i);
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['referrer-policy']).toBe('no-referrer');
  });

  it('signs in with an approver key: an HttpOnly, SameSite=Strict session cookie, back to the link', async () => {
    const { link } = await freeze();
    const res = await postForm('/web/sign-in', { key: ALICE, next: link });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe(link);
    const cookie = String(res.headers['set-cookie']);
    expect(cookie).toMatch(/^invoke_session=[\w-]+\.[\w-]+; Path=\/; Max-Age=1800; HttpOnly; SameSite=Strict$/);
    expect(cookie).not.toContain(ALICE);
  });

  it('refuses an unknown key at sign-in (401, the form again) and never redirects off this server', async () => {
    const bad = await postForm('/web/sign-in', { key: 'not-a-key', next: '/dashboard/approvals' });
    expect(bad.statusCode).toBe(401);
    expect(bad.body).toContain('That key is not known here.');
    expect(bad.headers['set-cookie']).toBeUndefined();
    const offSite = await postForm('/web/sign-in', { key: ALICE, next: '//evil.example/x' });
    expect(offSite.headers.location).toBe('/dashboard/approvals');
  });

  it('shows the facts after sign-in, escaping hostile params', async () => {
    const { link } = await freeze({ params: { invoice_id: 'inv_1', note: '<script>alert(1)</script>"><img src=x onerror=alert(2)>' } });
    const res = await get(link, { cookie: await signIn(ALICE) });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('<h1>send_invoice_reminder</h1>');
    expect(res.body).toContain('billing.send_reminder');
    expect(res.body).toContain('billing_agent');
    expect(res.body).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(res.body).toContain('&quot;&gt;&lt;img src=x onerror=alert(2)&gt;');
    expect(res.body).not.toContain('<script>');
    expect(res.body).not.toContain('<img');
    expect(res.body).toContain('Deciding as <strong class="decider">alice</strong>');
  });

  it('approves through a link once: the call runs, a second use of the link is refused (410)', async () => {
    const before = tools.count('POST', '/remind');
    const { id, link } = await freeze();
    const cookie = await signIn(ALICE);
    const page = await get(link, { cookie });
    const done = await postForm(`/approvals/${id}/review/approve`, { t: tokenOf(link), csrf: csrfIn(page.body), comment: 'fine' }, { cookie });
    expect(done.statusCode).toBe(200);
    expect(done.body).toContain('<strong class="outcome">executed</strong>');
    expect(tools.count('POST', '/remind')).toBe(before + 1);
    const approval = await send(built.app, 'GET', `/v1/approvals/${id}`);
    expect(approval.body.approval.status).toBe('executed');
    expect(approval.body.approval.decision.approver).toBe('alice');

    const again = await postForm(`/approvals/${id}/review/reject`, { t: tokenOf(link), csrf: csrfIn(page.body), reason: 'again' }, { cookie });
    expect(again.statusCode).toBe(410);
    expect(again.body).toContain('data-code="link_used"');
    const reopened = await get(link, { cookie });
    expect(reopened.statusCode).toBe(410);
  });

  it('rejects with a reason; a reject without one is a 400 and spends nothing', async () => {
    const { id, link } = await freeze();
    const cookie = await signIn(ALICE);
    const csrf = csrfIn((await get(link, { cookie })).body);
    const empty = await postForm(`/approvals/${id}/review/reject`, { t: tokenOf(link), csrf, reason: '  ' }, { cookie });
    expect(empty.statusCode).toBe(400);
    const res = await postForm(`/approvals/${id}/review/reject`, { t: tokenOf(link), csrf, reason: 'wrong customer' }, { cookie });
    expect(res.statusCode).toBe(200);
    const approval = await send(built.app, 'GET', `/v1/approvals/${id}`);
    expect(approval.body.approval.status).toBe('rejected');
    expect(approval.body.approval.decision).toMatchObject({ approver: 'alice', reason: 'wrong customer' });
  });

  it('refuses a decision without the CSRF token of the page (403), and spends nothing', async () => {
    const { id, link } = await freeze();
    const cookie = await signIn(ALICE);
    const forged = await postForm(`/approvals/${id}/review/approve`, { t: tokenOf(link) }, { cookie });
    expect(forged.statusCode).toBe(403);
    // A token from another session does not do either.
    const otherCsrf = csrfIn((await get(link, { cookie: await signIn(ALICE) })).body);
    expect((await postForm(`/approvals/${id}/review/approve`, { t: tokenOf(link), csrf: otherCsrf }, { cookie })).statusCode).toBe(403);
    expect((await send(built.app, 'GET', `/v1/approvals/${id}`)).body.approval.status).toBe('pending');
  });

  it('refuses self-approval on the page (403), and the link stays good for another approver', async () => {
    const { id, link } = await freeze({ key: BOB_AGENT });
    const bob = await signIn(BOB);
    const page = await get(link, { cookie: bob });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('class="error refusal"');
    expect(page.body).toContain('bob requested this call');
    expect(page.body).not.toContain('review/approve');
    // Bob posts anyway, with a form as valid as his session can make: the service refuses him as it refuses the API.
    const forced = await postForm(`/approvals/${id}/review/approve`, { t: tokenOf(link), csrf: bobCsrf(bob, link) }, { cookie: bob });
    expect(forced.statusCode).toBe(403);
    expect(forced.body).toContain('data-code="self_approval"');
    const alice = await signIn(ALICE);
    const ok = await postForm(`/approvals/${id}/review/approve`, { t: tokenOf(link), csrf: csrfIn((await get(link, { cookie: alice })).body) }, { cookie: alice });
    expect(ok.statusCode).toBe(200);
    expect((await send(built.app, 'GET', `/v1/approvals/${id}`)).body.approval.decision.approver).toBe('alice');
  });

  it('refuses altered, misplaced, expired and unknown links: 403, 403, 410, 404, as HTML or as JSON', async () => {
    const { id, link } = await freeze();
    const token = tokenOf(link);
    const [body, signature] = token.split('.');
    const claims = JSON.parse(Buffer.from(body!, 'base64url').toString());
    const stretched = `${Buffer.from(JSON.stringify({ ...claims, e: claims.e + 86_400 })).toString('base64url')}.${signature}`;
    const other = await freeze();

    const altered = await get(`/approvals/${id}/review?t=${stretched}`);
    expect(altered.statusCode).toBe(403);
    expect(altered.headers['content-type']).toMatch(/^text\/html/);
    expect(altered.body).toContain('data-code="forbidden"');
    expect((await get(`/approvals/${other.id}/review?t=${token}`)).statusCode).toBe(403);
    expect((await get(`/approvals/${id}/review`)).statusCode).toBe(403);

    const expired = mintReviewLink(signer, undefined, { approvalId: id, expiresAt: new Date(Date.now() - 1000) });
    const gone = await get(expired.review_url);
    expect(gone.statusCode).toBe(410);
    expect(gone.body).toContain('data-code="link_expired"');

    const unknown = mintReviewLink(signer, undefined, { approvalId: 'apr_nope', expiresAt: new Date(Date.now() + 60_000) });
    expect((await get(unknown.review_url)).statusCode).toBe(404);

    const asJson = await get(expired.review_url, { accept: 'application/json' });
    expect(asJson.statusCode).toBe(410);
    expect(asJson.json()).toEqual({ error: { code: 'link_expired', message: expect.stringContaining('expired'), details: { expired_at: expect.any(String) } } });
    expect(asJson.headers['cache-control']).toBe('no-store');
    expect((await get(`/approvals/${id}/review?t=${stretched}`, { accept: 'application/json' })).json().error.code).toBe('forbidden');
  });

  it('mints a link bound to the caller through the API: it opens without sign-in and decides as that approver only', async () => {
    const { id } = await freeze();
    const minted = await send(built.app, 'POST', `/v1/approvals/${id}/links`, { ttl_seconds: 600 }, { 'x-api-key': ALICE });
    expect(minted.status).toBe(201);
    expect(minted.body.bound_to).toBe('alice');
    expect(Date.parse(minted.body.expires_at)).toBeLessThanOrEqual(Date.now() + 600_000);
    const page = await get(minted.body.review_url);
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('Deciding as <strong class="decider">alice</strong>');
    // Signed in as someone else, the bound link still decides as alice.
    const done = await postForm(`/approvals/${id}/review/approve`, { t: tokenOf(minted.body.review_url), csrf: csrfIn(page.body) });
    expect(done.statusCode).toBe(200);
    expect((await send(built.app, 'GET', `/v1/approvals/${id}`)).body.approval.decision.approver).toBe('alice');
    // Scope and existence are the API's: a key without approvals:read, an unknown approval.
    expect((await send(built.app, 'POST', `/v1/approvals/${id}/links`, {}, { 'x-api-key': BOB_AGENT })).status).toBe(403);
    expect((await send(built.app, 'POST', '/v1/approvals/apr_nope/links', {}, { 'x-api-key': ALICE })).status).toBe(404);
  });

  it('lets a key with approvals:read only look, not decide', async () => {
    const { id, link } = await freeze();
    const rita = await signIn(READER);
    const page = await get(link, { cookie: rita });
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('lacks approvals:write');
    expect(page.body).not.toContain('review/approve');
    const bound = await send(built.app, 'POST', `/v1/approvals/${id}/links`, {}, { 'x-api-key': READER });
    const forced = await postForm(`/approvals/${id}/review/approve`, { t: tokenOf(bound.body.review_url), csrf: csrfIn(page.body) });
    expect(forced.statusCode).toBe(403);
    expect((await send(built.app, 'GET', `/v1/approvals/${id}`)).body.approval.status).toBe('pending');
  });

  it('refreshes live state with the same refetch as the card, deciding nothing and spending nothing', async () => {
    const { id, link } = await freeze();
    const cookie = await signIn(ALICE);
    const csrf = csrfIn((await get(link, { cookie })).body);
    const res = await postForm(`/approvals/${id}/review/refresh`, { t: tokenOf(link), csrf }, { cookie });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('Live state');
    expect(res.body).toContain('billing.get_invoice');
    expect(res.body).toContain('No drift since the freeze.');
    const audit = await send(built.app, 'GET', `/v1/approvals/${id}/audit`);
    expect(audit.body.audit.map((e: { kind: string }) => e.kind)).toContain('refetched');
    expect((await get(link, { cookie })).statusCode).toBe(200);
  });

  it('lists pending and recent approvals on the dashboard, each pending one with a link bound to the viewer', async () => {
    const anonymous = await get('/dashboard/approvals');
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.body).toContain('action="/web/sign-in"');
    const { id } = await freeze();
    const decided = await freeze();
    expect((await send(built.app, 'POST', `/v1/approvals/${decided.id}/reject`, { reason: 'not now' }, { 'x-api-key': ALICE })).status).toBe(200);
    const cookie = await signIn(ALICE);
    const res = await get('/dashboard/approvals', { cookie });
    expect(res.statusCode).toBe(200);
    const row = new RegExp(`<tr data-approval="${id}">.*?href="([^"]+)"`, 's').exec(res.body);
    expect(row).not.toBeNull();
    const link = row![1]!.replace(/&amp;/g, '&');
    const claims = signer.open('review-link', tokenOf(link))!;
    expect(claims).toMatchObject({ a: id, p: 'alice' });
    // The latest decision heads the recent list.
    expect(/<table class="recent">.*?data-approval="([^"]+)"/s.exec(res.body)?.[1]).toBe(decided.id);
  });

  it('decides once when the same link is submitted twice at the same moment', async () => {
    const before = tools.count('POST', '/remind');
    const { id, link } = await freeze();
    const cookie = await signIn(ALICE);
    const csrf = csrfIn((await get(link, { cookie })).body);
    const form = { t: tokenOf(link), csrf };
    const answers = await Promise.all([postForm(`/approvals/${id}/review/approve`, form, { cookie }), postForm(`/approvals/${id}/review/approve`, form, { cookie })]);
    expect(answers.map((a) => a.statusCode).sort()).toEqual([200, 410]);
    expect(tools.count('POST', '/remind')).toBe(before + 1);
  });

  describe('edit, then approve, on the page', () => {
    /** Freezes a refund whose deny rule an edit could trip; returns its id, its link, a signed-in cookie and the page's CSRF token. */
    async function frozenRefund(body: Record<string, unknown> = {}) {
      const res = await send(built.app, 'POST', '/v1/call', {
        tool: 'billing.refund',
        params: { invoice_id: 'inv_1', amount: 120, currency: 'EUR' },
        agent_id: 'billing_agent',
        approval_contract: { intent: 'refund_invoice' },
        policy: { rules: [{ when: 'params.amount > 1000', effect: 'deny', reason: 'refunds over 1000 are never automated' }] },
        ...body,
      });
      expect(res.status).toBe(202);
      const id: string = res.body.approval.id;
      const link: string = res.body.approval.review_url;
      const cookie = await signIn(ALICE);
      const page = await get(link, { cookie });
      expect(page.statusCode).toBe(200);
      return { id, link, cookie, page: page.body, csrf: csrfIn(page.body) };
    }
    const refunds = () => tools.requests.filter((r) => r.path === '/refund');
    const editAs = (f: { id: string; link: string; cookie: string; csrf: string }, params: string, comment?: string) =>
      postForm(`/approvals/${f.id}/review/edit`, { t: tokenOf(f.link), csrf: f.csrf, params, ...(comment ? { comment } : {}) }, { cookie: f.cookie });
    const approveAs = (f: { id: string; link: string; cookie: string; csrf: string }) =>
      postForm(`/approvals/${f.id}/review/approve`, { t: tokenOf(f.link), csrf: f.csrf }, { cookie: f.cookie });
    const approvalOf = async (id: string) => (await send(built.app, 'GET', `/v1/approvals/${id}`)).body.approval;

    it('runs the edited params; the approval records the edit and its diff, and the pages show it', async () => {
      const f = await frozenRefund();
      expect(f.page).toContain(`action="/approvals/${f.id}/review/edit"`);
      const before = refunds().length;
      const done = await editAs(f, JSON.stringify({ invoice_id: 'inv_1', amount: 80, currency: 'EUR' }), 'partial refund');
      expect(done.statusCode).toBe(200);
      expect(done.body).toContain('<strong class="outcome">executed</strong>');
      expect(refunds().length).toBe(before + 1);
      expect(refunds().at(-1)!.body).toEqual({ invoice_id: 'inv_1', amount: 80, currency: 'EUR' });
      // The result page says what ran was edited, with the diff.
      expect(done.body).toContain('Approved with edits by alice');
      expect(done.body).toMatch(/<code>amount<\/code>: 120 → 80/);

      const approval = await approvalOf(f.id);
      expect(approval.status).toBe('executed');
      const diff = [{ path: 'amount', change: 'changed', old: 120, new: 80 }];
      expect(approval.edited).toMatchObject({ by: 'alice', original_params: { amount: 120 }, params: { amount: 80 }, diff });
      expect(approval.decision).toMatchObject({ approver: 'alice', comment: 'partial refund', edited: { by: 'alice', diff } });

      // Another link to the decided approval shows the decided state, with the edit.
      const fresh = mintReviewLink(signer, undefined, { approvalId: f.id, expiresAt: new Date(Date.now() + 60_000) });
      const decided = await get(fresh.review_url, { cookie: f.cookie });
      expect(decided.statusCode).toBe(200);
      expect(decided.body).toContain('Approved with edits by alice');
      expect(decided.body).toMatch(/<code>amount<\/code>: 120 → 80/);
      expect(decided.body).not.toContain('review/edit');
    });

    it('under a quorum, an edit restarts the count: the page names the fresh approval that now waits', async () => {
      const f = await frozenRefund({ approval_contract: { intent: 'refund_invoice', approvals_required: 2 } });
      const before = refunds().length;
      const res = await editAs(f, JSON.stringify({ invoice_id: 'inv_1', amount: 60, currency: 'EUR' }));
      expect(res.statusCode).toBe(200);
      expect(res.body).toContain('<strong class="outcome">edited</strong>');
      expect(res.body).toContain('Params edited by alice');
      expect(refunds().length).toBe(before);
      const replaced = await approvalOf(f.id);
      expect(replaced.status).toBe('invalidated');
      const freshId: string = replaced.decision.new_approval_id;
      expect(res.body).toContain(`<code>${freshId}</code>`);
      expect(res.body).toContain('1 of 2');
    });

    it('refuses params that are not JSON, or not a JSON object, with 400; the link still decides afterwards', async () => {
      const f = await frozenRefund();
      const notJson = await editAs(f, '{"amount": 80,');
      expect(notJson.statusCode).toBe(400);
      expect(notJson.body).toContain('not valid JSON');
      // The page comes back with what was typed, to be corrected.
      expect(notJson.body).toContain('<textarea class="params" name="params">{&quot;amount&quot;: 80,</textarea>');
      const array = await editAs(f, '[{"amount": 80}]');
      expect(array.statusCode).toBe(400);
      expect(array.body).toContain('must be a JSON object');
      expect((await approvalOf(f.id)).status).toBe('pending');
      const before = refunds().length;
      const ok = await approveAs(f);
      expect(ok.statusCode).toBe(200);
      expect(ok.body).toContain('<strong class="outcome">executed</strong>');
      expect(refunds().at(-1)!.body).toMatchObject({ amount: 120 });
      expect(refunds().length).toBe(before + 1);
    });

    it("refuses params the tool's schema refuses with 400 and every problem on the page; the link still decides", async () => {
      const f = await frozenRefund();
      const before = refunds().length;
      const res = await editAs(f, JSON.stringify({ invoice_id: 'inv_1', amount: 0, currency: 'GBP' }));
      expect(res.statusCode).toBe(400);
      expect(res.headers['content-type']).toMatch(/^text\/html/);
      expect(res.body).toContain('data-code="validation_error"');
      expect(res.body).toMatch(/<li><code>params\.amount<\/code>[^<]*&gt;= 1/);
      expect(res.body).toMatch(/<li><code>params\.currency<\/code>[^<]*allowed values/);
      expect(refunds().length).toBe(before);
      expect((await approvalOf(f.id)).status).toBe('pending');
      expect((await approveAs(f)).statusCode).toBe(200);
      expect(refunds().length).toBe(before + 1);
    });

    it('refuses an edit a deny rule matches: 403 edit_denied, nothing runs, the link still decides', async () => {
      const f = await frozenRefund();
      const before = refunds().length;
      const res = await editAs(f, JSON.stringify({ invoice_id: 'inv_1', amount: 5000, currency: 'EUR' }));
      expect(res.statusCode).toBe(403);
      expect(res.body).toContain('data-code="edit_denied"');
      expect(res.body).toContain('never automated');
      expect(refunds().length).toBe(before);
      expect((await approvalOf(f.id)).status).toBe('pending');
      expect((await approveAs(f)).statusCode).toBe(200);
      expect(refunds().at(-1)!.body).toMatchObject({ amount: 120 });
    });

    it('answers a JSON client with the one JSON error shape for a refused edit', async () => {
      const f = await frozenRefund();
      const res = await postForm(
        `/approvals/${f.id}/review/edit`,
        { t: tokenOf(f.link), csrf: f.csrf, params: JSON.stringify({ invoice_id: 'inv_1', amount: 0 }) },
        { cookie: f.cookie, accept: 'application/json' },
      );
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toMatchObject({ code: 'validation_error', details: { problems: expect.any(Array) } });
    });

    it('shows no Edit form when the card or the contract opts out of edits, and refuses a forced edit (409)', async () => {
      const byCard = await frozenRefund({ tool: 'billing.refund_locked' });
      const byContract = await frozenRefund({ approval_contract: { intent: 'refund_invoice', editable: false } });
      for (const f of [byCard, byContract]) {
        expect(f.page).toContain(`action="/approvals/${f.id}/review/approve"`);
        expect(f.page).not.toContain('review/edit');
        expect(f.page).not.toContain('Edit params');
        const forced = await editAs(f, JSON.stringify({ invoice_id: 'inv_1', amount: 10 }));
        expect(forced.statusCode).toBe(409);
        expect(forced.body).toContain('data-code="not_editable"');
        expect((await approveAs(f)).statusCode).toBe(200);
      }
    });
  });

  /** The CSRF token Bob's page would carry if it showed forms (it does not: he may not decide). */
  function bobCsrf(cookie: string, link: string): string {
    const session = signer.open('session', cookie.split('=')[1]!)!;
    return signer.sign('csrf', `${String(session.n)}|${String(signer.open('review-link', tokenOf(link))!.n)}`);
  }
});

describe('web sign-in and the failed-authentication limit', () => {
  let built: BuiltApp;
  beforeAll(async () => {
    built = await buildTestApp({
      INVOKE_LINK_SECRET: LINK_SECRET,
      INVOKE_AUTH_FAILURE_LIMIT: '2',
      INVOKE_API_KEY_SCOPES: JSON.stringify({ [ALICE]: { scopes: APPROVER_SCOPES } }),
    });
  });
  afterAll(async () => {
    await built.app.close();
  });

  it('counts failed sign-ins like failed API keys: past the limit the address is refused (429), even with a right key', async () => {
    const signIn = (key: string) =>
      built.app.inject({ method: 'POST', url: '/web/sign-in', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ key }).toString() });
    expect((await signIn('guess-1')).statusCode).toBe(401);
    expect((await signIn('guess-2')).statusCode).toBe(401);
    expect((await signIn(ALICE)).statusCode).toBe(429);
  });
});
