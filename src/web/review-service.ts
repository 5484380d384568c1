import type { ApprovalService, ApprovalView, ApproverActor, DecisionResult } from '../approvals/approval-service.ts';
import { personOf, type KeyIdentity, type Keyring } from '../auth/keyring.ts';
import { hasScope, requireScope } from '../auth/scopes.ts';
import { AppError, ForbiddenError, GoneError, UnauthorizedError } from '../errors.ts';
import type { ReviewLinkUsesRepository } from './review-link-uses-repository.ts';
import { mintReviewLink, readReviewLink, type MintedLink, type ReviewLinkClaims } from './review-links.ts';
import { assertCsrf, csrfToken, readSession, sealSession, type WebSession } from './sessions.ts';
import type { Signer } from './signing.ts';

/** Links minted for one approver (the dashboard, the API) live at most this long. */
export const BOUND_LINK_TTL_MS = 60 * 60_000;

/** A review link opened: the claims, who is looking (null: nobody signed in yet), the approval. */
export interface OpenedReview {
  claims: ReviewLinkClaims;
  session: WebSession | null;
  viewer: KeyIdentity | null;
  /** The person deciding through this page: the bound approver, else the signed-in key's person. */
  person: string | null;
  approval: ApprovalView;
  /** Why `person` may not decide this approval (self-approval, not an approver, no write scope); null when they may. */
  refusal: string | null;
  /** Whether `person` may edit the params before approving (the card and the contract allow it); false when they may not decide. */
  editable: boolean;
}

export type PageDecision = { kind: 'approve'; comment?: string } | { kind: 'reject'; reason: string } | { kind: 'edit'; params: Record<string, unknown>; comment?: string };

/** A page that needs an approver and has none: the link is not bound and nobody signed in. */
class SignInRequiredError extends UnauthorizedError {
  constructor() {
    super('Sign in with an approver key to review this approval');
  }
}

export interface ReviewServiceDeps {
  approvals: ApprovalService;
  uses: ReviewLinkUsesRepository;
  signer: Signer;
  keyring: Keyring;
  publicUrl?: string;
}

/**
 * The web door onto approvals: links, sessions and who is looking; every decision is the
 * approval service's, made with the same actor rules as the API.
 */
export function createReviewService(deps: ReviewServiceDeps) {
  const { approvals, uses, signer, keyring, publicUrl } = deps;

  /** The identity behind a bound link: its key must still be configured and still be that person's. */
  function boundIdentity(claims: ReviewLinkClaims): KeyIdentity | null {
    if (!claims.bound) return null;
    const identity = keyring.findById(claims.bound.keyId);
    if (!identity || personOf(identity) !== claims.bound.person) {
      throw new ForbiddenError('The key this link was made for is no longer configured for its approver', { reason: 'key_revoked' });
    }
    return identity;
  }

  function sessionIdentity(session: WebSession | null): KeyIdentity | null {
    return session ? keyring.findById(session.keyId) : null;
  }

  function actorFor(identity: KeyIdentity, claims: ReviewLinkClaims | null): ApproverActor {
    return { approver: claims?.bound?.person ?? personOf(identity), keyId: identity.id, via: 'api' };
  }

  /**
   * Why this identity may not decide (as the API would refuse it), or null; and whether it may
   * edit the params first (the card and the contract allow it). One service call answers both.
   */
  async function decidingOf(identity: KeyIdentity, claims: ReviewLinkClaims, approval: ApprovalView): Promise<{ refusal: string | null; editable: boolean }> {
    if (approval.status !== 'pending') return { refusal: null, editable: false };
    if (!hasScope(identity, 'approvals:write')) return { refusal: 'This key may view approvals but not decide them (it lacks approvals:write).', editable: false };
    return approvals.editForm(actorFor(identity, claims), approval.id).then(
      (form) => ({ refusal: null, editable: form.editable }),
      (error: unknown) => {
        if (error instanceof AppError && error.statusCode === 403) return { refusal: error.message, editable: false };
        throw error;
      },
    );
  }

  async function open(approvalId: string, token: string | undefined, cookieHeader: string | undefined, now = new Date()): Promise<OpenedReview> {
    const claims = readReviewLink(signer, token, approvalId, now);
    if (await uses.isUsed(claims.nonce)) throw new GoneError('link_used', 'This review link was already used to decide; it cannot decide again', { approval_id: approvalId });
    const approval = await approvals.get(approvalId);
    const session = readSession(signer, cookieHeader, now);
    const viewer = boundIdentity(claims) ?? sessionIdentity(session);
    if (viewer) requireScope(viewer, 'approvals:read');
    const person = viewer ? actorFor(viewer, claims).approver : null;
    const { refusal, editable } = viewer ? await decidingOf(viewer, claims, approval) : { refusal: null, editable: false };
    return { claims, session, viewer, person, approval, refusal, editable };
  }

  /** The viewer of an opened link, who must be there (signed in, or the link bound) and hold approvals:write. */
  function deciderOf(opened: OpenedReview): KeyIdentity {
    if (!opened.viewer) throw new SignInRequiredError();
    requireScope(opened.viewer, 'approvals:write');
    return opened.viewer;
  }

  return {
    open,

    /** The CSRF token of the page `opened` renders. */
    csrfFor: (opened: OpenedReview) => csrfToken(signer, { session: opened.session, linkNonce: opened.claims.nonce }),
    assertCsrf: (opened: OpenedReview, presented: unknown) => assertCsrf(signer, { session: opened.session, linkNonce: opened.claims.nonce }, presented),

    /** A link anyone who can sign in as an approver may use (the card, the agent's answer, the API). */
    linkFor(approval: { id: string; expires_at: Date | string }): string {
      return mintReviewLink(signer, publicUrl, { approvalId: approval.id, expiresAt: new Date(approval.expires_at) }).review_url;
    },

    /** A link bound to `identity`'s person: the link alone lets them (only them) review, for at most `ttlMs`. */
    async mintBound(identity: KeyIdentity, approvalId: string, ttlMs = BOUND_LINK_TTL_MS, now = new Date()): Promise<MintedLink> {
      requireScope(identity, 'approvals:read');
      const approval = await approvals.get(approvalId);
      const approvalExpiry = Date.parse(approval.expires_at);
      if (approvalExpiry <= now.getTime()) throw new GoneError('approval_expired', `Approval ${approvalId} expired at ${approval.expires_at}`, { approval_id: approvalId });
      const expiresAt = new Date(Math.min(now.getTime() + ttlMs, approvalExpiry));
      return mintReviewLink(signer, publicUrl, { approvalId, expiresAt, bound: { keyId: identity.id, person: personOf(identity) } });
    },

    /** Signs a browser in with an API key; the key needs approvals:read. */
    signIn(presentedKey: string | undefined, now = new Date()): { cookieValue: string; identity: KeyIdentity } {
      const identity = keyring.authenticate(presentedKey?.trim() || undefined);
      if (!identity) throw new UnauthorizedError('Unknown API key');
      requireScope(identity, 'approvals:read');
      return { cookieValue: sealSession(signer, identity.id, now).value, identity };
    },

    /** The signed-in identity for pages without a link (the dashboard). */
    signedIn(cookieHeader: string | undefined, now = new Date()): { session: WebSession; identity: KeyIdentity } | null {
      const session = readSession(signer, cookieHeader, now);
      const identity = sessionIdentity(session);
      return session && identity ? { session, identity } : null;
    },

    /**
     * One decision through one link: the link's nonce is claimed first (a second claim loses:
     * two tabs, two replicas), then the approval service decides exactly as for the API; a
     * decision that did not happen (refused, already decided, failed) gives the link back.
     */
    async decide(opened: OpenedReview, decision: PageDecision): Promise<DecisionResult> {
      const identity = deciderOf(opened);
      const actor = actorFor(identity, opened.claims);
      const claimed = await uses.claim({ nonce: opened.claims.nonce, approval_id: opened.approval.id, approver: actor.approver, link_expires_at: opened.claims.expiresAt });
      if (!claimed) throw new GoneError('link_used', 'This review link was already used to decide; it cannot decide again', { approval_id: opened.approval.id });
      try {
        if (decision.kind === 'reject') return await approvals.reject(actor, opened.approval.id, decision.reason);
        // An edit goes through the same `approve` as the API: schema, policy and entity checks on the edited call.
        const params = decision.kind === 'edit' ? decision.params : undefined;
        return await approvals.approve(actor, opened.approval.id, { comment: decision.comment, params });
      } catch (error) {
        await uses.release(opened.claims.nonce);
        throw error;
      }
    },

    /** Live state, read the way the card's Refetch reads it; needs what the API's refetch needs. */
    async refetch(opened: OpenedReview) {
      const identity = deciderOf(opened);
      // Only the approval's deciders read live state, as for the API's and Slack's Refetch.
      await approvals.assertAddressedTo(actorFor(identity, opened.claims), opened.approval.id);
      return approvals.refetch(opened.approval.id);
    },
  };
}
export type ReviewService = ReturnType<typeof createReviewService>;
