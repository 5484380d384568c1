import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { personOf } from '../auth/keyring.ts';
import { ForbiddenError } from '../errors.ts';
import { parseInput } from '../http/validation.ts';
import type { ApprovalService, ApproverActor } from './approval-service.ts';

import { APPROVAL_STATUSES as STATUSES } from '../vocabulary.ts';

const listQuery = z.object({ status: z.enum(STATUSES).optional(), limit: z.coerce.number().int().min(1).max(500).default(100) }).strict();
const getQuery = z.object({ wait: z.coerce.number().min(0).max(3600).default(0) }).strict();
const idParams = z.object({ id: z.string().min(1).max(100) });
const approveBody = z
  .object({
    approver: z.string().min(1).max(200).optional(),
    current_state: z.record(z.string(), z.unknown()).optional(),
    comment: z.string().max(2000).optional(),
  })
  .strict();
const rejectBody = z.object({ approver: z.string().min(1).max(200).optional(), reason: z.string().min(1).max(2000) }).strict();

/** The approver is the identity bound to the key (its `approver_id`, else the key id), never free text. */
function actorOf(request: FastifyRequest, claimed: string | undefined): ApproverActor {
  const identity = request.identity;
  const bound = personOf(identity);
  if (claimed !== undefined && claimed !== bound) {
    throw new ForbiddenError(`This key decides as ${bound}; it cannot decide as ${claimed}`, { missing_scope: 'approver', approver: bound });
  }
  return { approver: bound, keyId: identity.id, via: 'api' };
}

export function registerApprovalRoutes(app: FastifyInstance, approvals: ApprovalService): void {
  for (const prefix of ['', '/v1']) {
    app.get(`${prefix}/approvals`, { config: { scope: 'approvals:read' } }, async (request) => {
      const { status, limit } = parseInput(listQuery, request.query, 'query');
      return { approvals: await approvals.list(status, limit) };
    });
    app.get(`${prefix}/approvals/:id`, { config: { scope: 'approvals:read' } }, async (request) => {
      const { id } = parseInput(idParams, request.params, 'params');
      const { wait } = parseInput(getQuery, request.query, 'query');
      return { approval: await approvals.get(id, wait * 1000) };
    });
    app.get(`${prefix}/approvals/:id/audit`, { config: { scope: 'approvals:read' } }, async (request) => {
      const { id } = parseInput(idParams, request.params, 'params');
      return { audit: await approvals.audit(id) };
    });
    app.post(`${prefix}/approvals/:id/approve`, { config: { scope: 'approvals:write' } }, async (request) => {
      const { id } = parseInput(idParams, request.params, 'params');
      const body = parseInput(approveBody, request.body ?? {});
      return approvals.approve(actorOf(request, body.approver), id, { current_state: body.current_state, comment: body.comment });
    });
    app.post(`${prefix}/approvals/:id/reject`, { config: { scope: 'approvals:write' } }, async (request) => {
      const { id } = parseInput(idParams, request.params, 'params');
      const body = parseInput(rejectBody, request.body);
      return approvals.reject(actorOf(request, body.approver), id, body.reason);
    });
    app.post(`${prefix}/approvals/:id/refetch`, { config: { scope: 'approvals:write' } }, async (request) => {
      const { id } = parseInput(idParams, request.params, 'params');
      return approvals.refetch(id);
    });
  }
}
