import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { ApprovalService } from '../approvals/approval-service.ts';
import { EditRefusedError } from '../approvals/edit.ts';
import { personOf } from '../auth/keyring.ts';
import { requireScope } from '../auth/scopes.ts';
import { AppError, ServiceUnavailableError, UnauthorizedError, ValidationError } from '../errors.ts';
import { errorResponses } from '../http/error-schema.ts';
import { securityHeaders, sendPage } from './html.ts';
import { dashboardPage, errorPage, resultPage, reviewPage, signInPage, type DashboardRow, type LiveState, type PageError } from './review-pages.ts';
import type { OpenedReview, PageDecision, ReviewService } from './review-service.ts';
import { clearedSessionCookieHeader, sessionCookieHeader } from './sessions.ts';
import { decisionForm, decisionVerbParams, mintedLinkSchema, mintLinkBody, reviewParams, reviewQuery, signInForm } from './web-schemas.ts';

const SIGN_IN_PATH = '/web/sign-in';
const DASHBOARD_PATH = '/dashboard/approvals';
const RECENT_SHOWN = 30;

/** A browser asks for HTML; an API client that says it wants JSON gets the one JSON error shape. */
function wantsJson(request: FastifyRequest): boolean {
  const accept = request.headers.accept ?? '';
  return accept.includes('application/json') && !accept.includes('text/html');
}

/** Only paths on this server (never `//host` or `/\host`), so sign-in cannot redirect anywhere else. */
function safeNext(next: string | undefined): string {
  return next && /^\/(?![/\\])/.test(next) ? next : DASHBOARD_PATH;
}

function secure(request: FastifyRequest): boolean {
  return request.protocol === 'https';
}

/**
 * Errors of the web pages: an HTML page with the error's status for browsers (a failed sign-in
 * shows the form again), the usual JSON shape (the parent handler's) for JSON clients.
 */
function webErrorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const status = error instanceof AppError ? error.statusCode : (error.statusCode ?? 500);
  if (wantsJson(request) || status >= 500) {
    securityHeaders(reply, null);
    throw error;
  }
  if (error instanceof UnauthorizedError && request.routeOptions.url === SIGN_IN_PATH) {
    const next = safeNext((request.body as { next?: string } | undefined)?.next);
    return sendPage(reply, 401, 'Sign in', signInPage(next, 'That key is not known here.'));
  }
  if (error instanceof ServiceUnavailableError) void reply.header('retry-after', String(error.retryAfterSeconds));
  const code = error instanceof AppError ? error.code : status === 404 ? 'not_found' : 'bad_request';
  return sendPage(reply, status, 'Error', errorPage(status, code, error.message));
}

/** Form fields as the decision needs them; a bad edit is a 400 shown on the page. */
function decisionOf(verb: 'approve' | 'reject' | 'edit', form: { comment?: string; reason?: string; params?: string }): PageDecision {
  const comment = form.comment?.trim() || undefined;
  if (verb === 'approve') return { kind: 'approve', comment };
  if (verb === 'reject') {
    const reason = form.reason?.trim();
    if (!reason) throw new ValidationError('Say why this is rejected (reason is required)', { field: 'reason' });
    return { kind: 'reject', reason };
  }
  let params: unknown;
  try {
    params = JSON.parse(form.params ?? '');
  } catch (error) {
    throw new ValidationError(`The edited params are not valid JSON (${(error as Error).message})`, { field: 'params' });
  }
  if (typeof params !== 'object' || params === null || Array.isArray(params)) throw new ValidationError('The edited params must be a JSON object', { field: 'params' });
  return { kind: 'edit', params: params as Record<string, unknown>, comment };
}

/** An edit the checks refused (not JSON, the schema, a deny rule, another entity, not editable): the approver can correct it on the page. */
function refusedEdit(error: unknown): AppError | null {
  return error instanceof ValidationError || error instanceof EditRefusedError ? error : null;
}

function problemsOf(error: AppError): PageError['problems'] {
  const problems = (error.details as { problems?: unknown } | undefined)?.problems;
  return Array.isArray(problems) ? (problems as NonNullable<PageError['problems']>) : undefined;
}

/** The review page again, with the refused edit's problems and the params as typed; the link was given back. */
function showRefusedEdit(reply: FastifyReply, review: ReviewService, opened: OpenedReview, token: string, error: AppError, typed: string | undefined) {
  const shown: PageError = { code: error.code, message: error.message, problems: problemsOf(error) };
  const body = reviewPage(opened, { token, csrf: review.csrfFor(opened), error: shown, typedParams: typed ?? null });
  return sendPage(reply, error.statusCode, `Review ${opened.approval.tool}`, body);
}

/** The page for an opened link; nobody known yet: the sign-in form, coming back to this link. */
function showReview(reply: FastifyReply, review: ReviewService, opened: OpenedReview, token: string, live: LiveState | null = null) {
  if (!opened.viewer) return sendPage(reply, 401, 'Sign in', signInPage(`/approvals/${encodeURIComponent(opened.approval.id)}/review?t=${token}`));
  return sendPage(reply, 200, `Review ${opened.approval.tool}`, reviewPage(opened, { token, csrf: review.csrfFor(opened), live }));
}

/**
 * The web door for approvers without Slack: review pages opened by signed links, sign-in with
 * an approver key, the dashboard. Server-rendered, no script; every decision goes through the
 * approval service with the same actor rules as the API.
 */
export async function registerWebRoutes(app: FastifyInstance, deps: { review: ReviewService; approvals: ApprovalService }): Promise<void> {
  const { review, approvals } = deps;

  // The API side: a link bound to the caller (JSON, keyed, in the document).
  app.withTypeProvider<ZodTypeProvider>().post(
    '/v1/approvals/:id/links',
    {
      config: { scope: 'approvals:read' },
      schema: {
        summary: "A review link bound to the caller's approver: opening it needs no sign-in, and it decides once",
        params: reviewParams,
        body: mintLinkBody,
        response: { 201: mintedLinkSchema, ...errorResponses },
      },
    },
    async (request, reply) => {
      const ttl = request.body.ttl_seconds;
      return reply.status(201).send(await review.mintBound(request.identity, request.params.id, ttl === undefined ? undefined : ttl * 1000));
    },
  );

  await app.register(async (web) => {
    web.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    });
    web.setErrorHandler(webErrorHandler);
    const routes = web.withTypeProvider<ZodTypeProvider>();
    // Public to the API-key hook: a page authenticates by its signed link, its session, or both.
    const page = { public: true } as const;

    routes.get('/approvals/:id/review', { config: page, schema: { hide: true, params: reviewParams, querystring: reviewQuery } }, async (request, reply) => {
      const token = request.query.t ?? '';
      const opened = await review.open(request.params.id, token, request.headers.cookie);
      return showReview(reply, review, opened, token);
    });

    routes.post('/approvals/:id/review/:verb', { config: page, schema: { hide: true, params: decisionVerbParams, body: decisionForm } }, async (request, reply) => {
      const { id, verb } = request.params;
      const token = request.body.t ?? '';
      const opened = await review.open(id, token, request.headers.cookie);
      if (!opened.viewer) return showReview(reply, review, opened, token);
      review.assertCsrf(opened, request.body.csrf);
      if (verb === 'refresh') {
        const live = await review.refetch(opened);
        return showReview(reply, review, { ...opened, approval: live.approval }, token, live);
      }
      try {
        const result = await review.decide(opened, decisionOf(verb, request.body));
        return sendPage(reply, 200, 'Decided', resultPage(opened.approval, result));
      } catch (error) {
        const refused = verb === 'edit' && !wantsJson(request) ? refusedEdit(error) : null;
        if (!refused) throw error;
        return showRefusedEdit(reply, review, opened, token, refused, request.body.params);
      }
    });

    routes.post(SIGN_IN_PATH, { config: { ...page, credentialForm: true }, schema: { hide: true, body: signInForm } }, async (request, reply) => {
      const { cookieValue } = review.signIn(request.body.key);
      securityHeaders(reply, null);
      return reply.header('set-cookie', sessionCookieHeader(cookieValue, secure(request))).redirect(safeNext(request.body.next), 303);
    });

    routes.post('/web/sign-out', { config: page, schema: { hide: true } }, async (request, reply) => {
      securityHeaders(reply, null);
      return reply.header('set-cookie', clearedSessionCookieHeader(secure(request))).redirect(DASHBOARD_PATH, 303);
    });

    routes.get(DASHBOARD_PATH, { config: page, schema: { hide: true } }, async (request, reply) => {
      const signedIn = review.signedIn(request.headers.cookie);
      if (!signedIn) return sendPage(reply, 401, 'Sign in', signInPage(DASHBOARD_PATH));
      requireScope(signedIn.identity, 'approvals:read');
      const [pending, recent] = await Promise.all([approvals.list('pending', 100), approvals.recentlyDecided(RECENT_SHOWN)]);
      const rows: DashboardRow[] = await Promise.all(
        pending.map(async (approval) => ({
          approval,
          // An approval past its expiry but not yet swept gets no link (it can no longer be decided).
          reviewUrl: Date.parse(approval.expires_at) > Date.now() ? (await review.mintBound(signedIn.identity, approval.id)).review_url : null,
        })),
      );
      return sendPage(reply, 200, 'Approvals', dashboardPage(personOf(signedIn.identity), rows, recent));
    });
  });
}
