import { ForbiddenError } from '../errors.ts';
import { newNonce, type Signer } from './signing.ts';

export const SESSION_COOKIE = 'invoke_session';
/** Short-lived: a web session is an approver key left in a browser. */
export const SESSION_TTL_MS = 30 * 60_000;

/** A browser signed in with an approver key: the key's id (never the key), until `expiresAt`. */
export interface WebSession {
  keyId: string;
  nonce: string;
  expiresAt: Date;
}

/** The value of one cookie in a `Cookie` header. */
function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return rest.join('=');
  }
  return undefined;
}

export function sealSession(signer: Signer, keyId: string, now: Date): { value: string; session: WebSession } {
  const session = { keyId, nonce: newNonce(), expiresAt: new Date(now.getTime() + SESSION_TTL_MS) };
  return { value: signer.seal('session', { k: keyId, n: session.nonce, e: session.expiresAt.getTime() }), session };
}

/** The session in the request's cookies, if signed by this server and not expired. */
export function readSession(signer: Signer, cookieHeader: string | undefined, now: Date): WebSession | null {
  const value = cookieValue(cookieHeader, SESSION_COOKIE);
  const claims = value ? signer.open('session', value) : null;
  if (!claims || typeof claims.k !== 'string' || typeof claims.n !== 'string' || typeof claims.e !== 'number') return null;
  if (claims.e <= now.getTime()) return null;
  return { keyId: claims.k, nonce: claims.n, expiresAt: new Date(claims.e) };
}

/** HttpOnly (no script reads it), SameSite=Strict (no other site sends it), Secure over https. */
export function sessionCookieHeader(value: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${value}; Path=/; Max-Age=${SESSION_TTL_MS / 1000}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

export function clearedSessionCookieHeader(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

/**
 * A decision form's CSRF token: tied to the session and to the link the page was opened with,
 * so a form from another site (which knows neither) cannot be replayed into a decision.
 */
export function csrfToken(signer: Signer, context: { session: WebSession | null; linkNonce: string | null }): string {
  return signer.sign('csrf', `${context.session?.nonce ?? '-'}|${context.linkNonce ?? '-'}`);
}

export function assertCsrf(signer: Signer, context: { session: WebSession | null; linkNonce: string | null }, presented: unknown): void {
  const text = `${context.session?.nonce ?? '-'}|${context.linkNonce ?? '-'}`;
  if (typeof presented !== 'string' || !signer.verify('csrf', text, presented)) {
    throw new ForbiddenError('This form is stale or did not come from this page; open the review link again', { reason: 'csrf' });
  }
}
