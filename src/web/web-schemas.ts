import { z } from 'zod';

const token = z.string().max(4000).optional();

export const reviewParams = z.object({ id: z.string().min(1).max(100) });
export const reviewQuery = z.object({ t: token });
export const decisionVerbParams = reviewParams.extend({ verb: z.enum(['approve', 'reject', 'edit', 'refresh']) });
/** A decision form: the link's token and the CSRF token ride in hidden fields beside what the approver typed. */
export const decisionForm = z.object({
  t: token,
  csrf: z.string().max(200).optional(),
  comment: z.string().max(2000).optional(),
  reason: z.string().max(2000).optional(),
  params: z.string().max(1_000_000).optional(),
});
export const signInForm = z.object({ key: z.string().max(500).optional(), next: z.string().max(5000).optional() });

/** POST /v1/approvals/:id/links: a link bound to the caller, for at most `ttl_seconds` (and never past the approval's expiry). */
export const mintLinkBody = z.object({ ttl_seconds: z.number().int().min(60).max(86_400).optional() }).strict();
export const mintedLinkSchema = z.object({
  review_url: z.string(),
  expires_at: z.string(),
  bound_to: z.string().nullable(),
});
