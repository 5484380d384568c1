import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { personOf } from '../auth/keyring.ts';
import { ForbiddenError } from '../errors.ts';
import { errorResponses } from '../http/error-schema.ts';
import {
  approvalAnswerSchema,
  approvalAuditAnswerSchema,
  approvalDecisionAnswerSchema,
  approvalGetQuery,
  approvalIdParams,
  approvalListAnswerSchema,
  approvalListQuery,
  approveBodySchema,
  rejectBodySchema,
} from './approval-schemas.ts';
import type { ApprovalService, ApprovalView, ApproverActor } from './approval-service.ts';

/** The approver is the identity bound to the key (its `approver_id`, else the key id), never free text. */
function actorOf(request: FastifyRequest, claimed: string | undefined): ApproverActor {
  const identity = request.identity;
  const bound = personOf(identity);
  if (claimed !== undefined && claimed !== bound) {
    throw new ForbiddenError(`This key decides as ${bound}; it cannot decide as ${claimed}`, { missing_scope: 'approver', approver: bound });
  }
  return { approver: bound, keyId: identity.id, via: 'api' };
}

/**
 * `reviewUrl`, when review links are on, mints the link a pending approval's answer shows
 * (`approval.review_url`): any approver may open it, sign in, and decide once.
 */
export function registerApprovalRoutes(
  app: FastifyInstance,
  approvals: ApprovalService,
  reviewUrl: ((approval: { id: string; expires_at: string }) => string) | null = null,
): void {
  const withLink = (approval: ApprovalView) =>
    reviewUrl && approval.status === 'pending' && Date.parse(approval.expires_at) > Date.now() ? { ...approval, review_url: reviewUrl(approval) } : approval;
  const routes = app.withTypeProvider<ZodTypeProvider>();
  for (const prefix of ['', '/v1']) {
    // The unversioned aliases still answer, but the document lists the /v1 routes only.
    const hide = prefix !== '/v1';
    const read = { scope: 'approvals:read' } as const;
    const write = { scope: 'approvals:write' } as const;
    routes.get(
      `${prefix}/approvals`,
      { config: read, schema: { hide, summary: 'List approvals', querystring: approvalListQuery, response: { 200: approvalListAnswerSchema, ...errorResponses } } },
      async (request) => ({ approvals: await approvals.list(request.query.status, request.query.limit) }),
    );
    routes.get(
      `${prefix}/approvals/:id`,
      {
        config: read,
        schema: {
          hide,
          summary: 'One approval; `wait` long-polls up to that many seconds for a decision',
          params: approvalIdParams,
          querystring: approvalGetQuery,
          response: { 200: approvalAnswerSchema, ...errorResponses },
        },
      },
      async (request) => ({ approval: withLink(await approvals.get(request.params.id, request.query.wait * 1000)) }),
    );
    routes.get(
      `${prefix}/approvals/:id/audit`,
      { config: read, schema: { hide, summary: "An approval's audit trail", params: approvalIdParams, response: { 200: approvalAuditAnswerSchema, ...errorResponses } } },
      async (request) => ({ audit: await approvals.audit(request.params.id) }),
    );
    routes.post(
      `${prefix}/approvals/:id/approve`,
      {
        config: write,
        schema: {
          hide,
          summary: 'Approve: revalidates live state, then runs the frozen call (or, with `params`, the edited call, checked again)',
          params: approvalIdParams,
          body: approveBodySchema,
          response: { 200: approvalDecisionAnswerSchema, ...errorResponses },
        },
      },
      async (request) => {
        const { body } = request;
        return approvals.approve(actorOf(request, body.approver), request.params.id, {
          current_state: body.current_state,
          comment: body.comment,
          params: body.params,
          reviewed_by: body.reviewed_by,
        });
      },
    );
    routes.post(
      `${prefix}/approvals/:id/reject`,
      {
        config: write,
        schema: {
          hide,
          summary: 'Reject a pending approval',
          params: approvalIdParams,
          body: rejectBodySchema,
          response: { 200: approvalDecisionAnswerSchema, ...errorResponses },
        },
      },
      async (request) => {
        const { body } = request;
        return approvals.reject(actorOf(request, body.approver), request.params.id, body.reason ?? 'no reason given', body.reviewed_by);
      },
    );
    routes.post(
      `${prefix}/approvals/:id/refetch`,
      {
        config: write,
        schema: { hide, summary: 'Read live state again and report drift', params: approvalIdParams, response: { 200: approvalDecisionAnswerSchema, ...errorResponses } },
      },
      async (request) => {
        // Refetch decides nothing (the requester may refetch), but only the approval's deciders may, as in Slack.
        await approvals.assertAddressedTo(actorOf(request, undefined), request.params.id);
        return approvals.refetch(request.params.id);
      },
    );
  }
}
