import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * HMAC-SHA256 signing of small JSON claims, with one key per purpose derived from the link
 * secret (a review link cannot pass for a session cookie, nor a cookie for a CSRF token).
 */
export type Purpose = 'review-link' | 'session' | 'csrf';

export interface Signer {
  /** `<claims as base64url JSON>.<signature>`. */
  seal(purpose: Purpose, claims: object): string;
  /** The claims when the signature is this server's for this purpose; null for anything else. */
  open(purpose: Purpose, sealed: string): Record<string, unknown> | null;
  /** A bare signature over `text` (CSRF tokens). */
  sign(purpose: Purpose, text: string): string;
  verify(purpose: Purpose, text: string, signature: string): boolean;
}

export function newNonce(): string {
  return randomBytes(16).toString('base64url');
}

function equalText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export function createSigner(secret: string): Signer {
  const keys = new Map<Purpose, Buffer>();
  const keyFor = (purpose: Purpose) => {
    let key = keys.get(purpose);
    if (!key) keys.set(purpose, (key = createHmac('sha256', secret).update(`invoke:${purpose}`).digest()));
    return key;
  };
  const sign = (purpose: Purpose, text: string) => createHmac('sha256', keyFor(purpose)).update(text).digest('base64url');
  const verify = (purpose: Purpose, text: string, signature: string) => equalText(sign(purpose, text), signature);
  return {
    sign,
    verify,
    seal(purpose, claims) {
      const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
      return `${body}.${sign(purpose, body)}`;
    },
    open(purpose, sealed) {
      const [body, signature, extra] = sealed.split('.');
      if (!body || !signature || extra !== undefined || !verify(purpose, body, signature)) return null;
      try {
        const claims: unknown = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
        return typeof claims === 'object' && claims !== null && !Array.isArray(claims) ? (claims as Record<string, unknown>) : null;
      } catch {
        return null;
      }
    },
  };
}
