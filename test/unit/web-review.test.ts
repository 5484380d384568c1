import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { escapeHtml, html } from '../../src/web/html.ts';
import { linkSecretFile, resolveLinkSecret } from '../../src/web/link-secret.ts';
import { mintReviewLink, readReviewLink } from '../../src/web/review-links.ts';
import { assertCsrf, csrfToken, readSession, sealSession } from '../../src/web/sessions.ts';
import { createSigner } from '../../src/web/signing.ts';

const signer = createSigner('unit-test-secret-0123456789abcdef0123');
const later = new Date(Date.now() + 60_000);
const tokenOf = (url: string) => new URL(url, 'http://x').searchParams.get('t')!;

describe('escapeHtml and the html template', () => {
  it('escapes the five characters that can leave text or an attribute', () => {
    expect(escapeHtml(`<script>alert("x")</script> & 'y'`)).toBe('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;');
  });

  it('escapes every interpolated value, nested templates excepted', () => {
    const hostile = '"><script>alert(1)</script>';
    const out = html`<p title="${hostile}">${hostile}${html`<b>${hostile}</b>`}${[hostile, html`<i>ok</i>`]}</p>`.html;
    expect(out).not.toContain('<script>');
    expect(out).toBe(
      '<p title="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;">&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;<b>&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;</b>&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;<i>ok</i></p>',
    );
  });

  it('does not take user data shaped like markup ({html: ...}) for markup', () => {
    const params: unknown = JSON.parse('{"html": "<script>alert(1)</script>"}');
    expect(html`<p>${params}</p>`.html).not.toContain('<script>');
  });
});

describe('review link tokens', () => {
  it('reads back what was minted: approval, expiry (whole seconds, never later), nonce, bound approver', () => {
    const minted = mintReviewLink(signer, 'https://invoke.example', {
      approvalId: 'apr_1',
      expiresAt: new Date(later.getTime() + 999),
      bound: { keyId: 'key_1', person: 'alice' },
    });
    expect(minted.review_url).toMatch(/^https:\/\/invoke\.example\/approvals\/apr_1\/review\?t=/);
    const claims = readReviewLink(signer, tokenOf(minted.review_url), 'apr_1', new Date());
    expect(claims.bound).toEqual({ keyId: 'key_1', person: 'alice' });
    expect(claims.expiresAt.getTime()).toBeLessThanOrEqual(later.getTime() + 999);
    expect(claims.expiresAt.getTime() % 1000).toBe(0);
    expect(minted.bound_to).toBe('alice');
  });

  it('gives each link its own nonce', () => {
    const a = readReviewLink(signer, tokenOf(mintReviewLink(signer, undefined, { approvalId: 'apr_1', expiresAt: later }).review_url), 'apr_1', new Date());
    const b = readReviewLink(signer, tokenOf(mintReviewLink(signer, undefined, { approvalId: 'apr_1', expiresAt: later }).review_url), 'apr_1', new Date());
    expect(a.nonce).not.toBe(b.nonce);
  });

  it('refuses a tampered claim, a swapped signature, another approval, another secret, and garbage (403)', () => {
    const token = tokenOf(mintReviewLink(signer, undefined, { approvalId: 'apr_1', expiresAt: later }).review_url);
    const [body, signature] = token.split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString());
    const rebound = `${Buffer.from(JSON.stringify({ ...claims, k: 'key_admin', p: 'admin' })).toString('base64url')}.${signature}`;
    const otherSigner = createSigner('another-secret-0123456789abcdef012345');
    const foreign = tokenOf(mintReviewLink(otherSigner, undefined, { approvalId: 'apr_1', expiresAt: later }).review_url);
    for (const bad of [rebound, `${body}.${signature.slice(0, -2)}AA`, foreign, 'garbage', '', `${token}.x`]) {
      expect(() => readReviewLink(signer, bad, 'apr_1', new Date())).toThrow(expect.objectContaining({ statusCode: 403 }));
    }
    expect(() => readReviewLink(signer, token, 'apr_2', new Date())).toThrow(expect.objectContaining({ statusCode: 403 }));
    expect(() => readReviewLink(signer, undefined, 'apr_1', new Date())).toThrow(expect.objectContaining({ statusCode: 403 }));
  });

  it('answers 410 link_expired from its expiry on', () => {
    const token = tokenOf(mintReviewLink(signer, undefined, { approvalId: 'apr_1', expiresAt: later }).review_url);
    expect(() => readReviewLink(signer, token, 'apr_1', new Date(later.getTime() - 1000))).not.toThrow();
    expect(() => readReviewLink(signer, token, 'apr_1', later)).toThrow(expect.objectContaining({ statusCode: 410, code: 'link_expired' }));
  });

  it('keeps purposes apart: a link token is no session, a session no link', () => {
    const token = tokenOf(mintReviewLink(signer, undefined, { approvalId: 'apr_1', expiresAt: later }).review_url);
    expect(readSession(signer, `invoke_session=${token}`, new Date())).toBeNull();
    const { value } = sealSession(signer, 'key_1', new Date());
    expect(() => readReviewLink(signer, value, 'apr_1', new Date())).toThrow(expect.objectContaining({ statusCode: 403 }));
  });
});

describe('web sessions and CSRF tokens', () => {
  it('reads a session back until it expires (30 minutes)', () => {
    const now = new Date();
    const { value } = sealSession(signer, 'key_1', now);
    expect(readSession(signer, `other=1; invoke_session=${value}`, now)).toMatchObject({ keyId: 'key_1' });
    expect(readSession(signer, `invoke_session=${value}`, new Date(now.getTime() + 30 * 60_000))).toBeNull();
    expect(readSession(signer, `invoke_session=${value.slice(0, -1)}x`, now)).toBeNull();
  });

  it('ties a CSRF token to both the session and the link', () => {
    const session = sealSession(signer, 'key_1', new Date()).session;
    const other = sealSession(signer, 'key_1', new Date()).session;
    const token = csrfToken(signer, { session, linkNonce: 'n1' });
    expect(() => assertCsrf(signer, { session, linkNonce: 'n1' }, token)).not.toThrow();
    expect(() => assertCsrf(signer, { session: other, linkNonce: 'n1' }, token)).toThrow(expect.objectContaining({ statusCode: 403 }));
    expect(() => assertCsrf(signer, { session, linkNonce: 'n2' }, token)).toThrow(expect.objectContaining({ statusCode: 403 }));
    expect(() => assertCsrf(signer, { session, linkNonce: 'n1' }, undefined)).toThrow(expect.objectContaining({ statusCode: 403 }));
  });
});

describe('the link secret', () => {
  it('is the configured one when set', async () => {
    expect(await resolveLinkSecret({ linkSecret: 'x'.repeat(32), dataDir: 'memory://', databaseUrl: 'postgres://db/x' })).toMatchObject({ source: 'config' });
  });

  it('is off on a Postgres server without one: a per-process secret would break links across replicas and restarts', async () => {
    expect(await resolveLinkSecret({ dataDir: './unused', databaseUrl: 'postgres://db/x' })).toBeNull();
  });

  it('is generated once beside an embedded data directory (mode 0600) and kept across restarts', async () => {
    const dataDir = path.join(mkdtempSync(path.join(tmpdir(), 'invoke-link-')), 'data');
    const first = await resolveLinkSecret({ dataDir });
    const second = await resolveLinkSecret({ dataDir });
    expect(first).toMatchObject({ source: 'data-dir', file: linkSecretFile(dataDir) });
    expect(second!.secret).toBe(first!.secret);
    expect(readFileSync(linkSecretFile(dataDir), 'utf8').trim()).toBe(first!.secret);
    expect(statSync(linkSecretFile(dataDir)).mode & 0o777).toBe(0o600);
  });
});

describe('link configuration', () => {
  it('takes INVOKE_PUBLIC_URL without its trailing slashes, http or https only', () => {
    expect(loadConfig({ INVOKE_PUBLIC_URL: 'https://invoke.example/base//' }).publicUrl).toBe('https://invoke.example/base');
    expect(() => loadConfig({ INVOKE_PUBLIC_URL: 'ftp://invoke.example' })).toThrow(ConfigError);
  });

  it('refuses an INVOKE_PUBLIC_URL with a query or a fragment: a review link is appended to it', () => {
    expect(() => loadConfig({ INVOKE_PUBLIC_URL: 'https://invoke.example/?tenant=a' })).toThrow(/INVOKE_PUBLIC_URL: .*query/);
    expect(() => loadConfig({ INVOKE_PUBLIC_URL: 'https://invoke.example/#top' })).toThrow(/INVOKE_PUBLIC_URL: .*fragment/);
  });

  it('wants INVOKE_LINK_SECRET of 32 characters at least', () => {
    expect(() => loadConfig({ INVOKE_LINK_SECRET: 'short' })).toThrow(/INVOKE_LINK_SECRET/);
  });

  it('keeps a generated secret beside the data directory, however it is spelled', () => {
    expect(linkSecretFile('/srv/invoke/data/')).toBe('/srv/invoke/data.link-secret');
  });
});
