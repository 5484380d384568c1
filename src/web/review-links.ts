import { ForbiddenError, GoneError } from '../errors.ts';
import { newNonce, type Signer } from './signing.ts';

/** The approver a link is bound to: the link alone lets them (and only them) decide. */
export interface BoundApprover {
  /** The key the link was minted for; its scopes are checked again when the link is used. */
  keyId: string;
  /** The person deciding (the key's `approver_id`, else the key id). */
  person: string;
}

export interface ReviewLinkClaims {
  approvalId: string;
  expiresAt: Date;
  nonce: string;
  bound: BoundApprover | null;
}

export interface MintedLink {
  review_url: string;
  expires_at: string;
  bound_to: string | null;
}

export class InvalidLinkError extends ForbiddenError {
  constructor() {
    super('This review link is not valid for this approval (altered, cut short, or signed by another server)');
  }
}

/** `/approvals/:id/review?t=…`, absolute when the public URL is known. */
export function reviewUrl(publicUrl: string | undefined, approvalId: string, token: string): string {
  return `${publicUrl ?? ''}/approvals/${encodeURIComponent(approvalId)}/review?t=${token}`;
}

/**
 * Signs a link to one approval. It expires at `expiresAt` (whole seconds, rounded down, so
 * never after the approval itself), and carries a fresh nonce: the nonce is what a decision
 * through the link spends.
 */
export function mintReviewLink(signer: Signer, publicUrl: string | undefined, link: { approvalId: string; expiresAt: Date; bound?: BoundApprover | null }): MintedLink {
  const expires = Math.floor(link.expiresAt.getTime() / 1000);
  const claims: Record<string, unknown> = { a: link.approvalId, e: expires, n: newNonce() };
  if (link.bound) Object.assign(claims, { k: link.bound.keyId, p: link.bound.person });
  const token = signer.seal('review-link', claims);
  return { review_url: reviewUrl(publicUrl, link.approvalId, token), expires_at: new Date(expires * 1000).toISOString(), bound_to: link.bound?.person ?? null };
}

/**
 * The claims of a link presented for `approvalId` at `now`: 403 when it is not ours or not for
 * this approval, 410 once expired. Whether it was used is the caller's question (the store's).
 */
export function readReviewLink(signer: Signer, token: string | undefined, approvalId: string, now: Date): ReviewLinkClaims {
  const claims = token ? signer.open('review-link', token) : null;
  if (!claims || claims.a !== approvalId || typeof claims.e !== 'number' || typeof claims.n !== 'string') throw new InvalidLinkError();
  const bound = typeof claims.k === 'string' && typeof claims.p === 'string' ? { keyId: claims.k, person: claims.p } : null;
  const expiresAt = new Date(claims.e * 1000);
  if (expiresAt.getTime() <= now.getTime()) {
    throw new GoneError('link_expired', `This review link expired at ${expiresAt.toISOString()}`, { expired_at: expiresAt.toISOString() });
  }
  return { approvalId, expiresAt, nonce: claims.n, bound };
}
