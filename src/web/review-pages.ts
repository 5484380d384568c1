import type { ApprovalView, DecisionResult } from '../approvals/approval-service.ts';
import type { ParamChange, ParamEdit } from '../calls/param-edit.ts';
import type { DriftReport } from '../calls/state-verify.ts';
import { html, prettyJson, type Html } from './html.ts';
import type { OpenedReview } from './review-service.ts';

/** The pages, as pure functions of what they show: every user value goes through `html`'s escaping. */

export interface LiveState {
  live_state: Record<string, unknown>;
  state_source: string;
  drift: DriftReport | null;
}

/** The words a card heads with: the contract's intent, else the rule's, else the tool. */
export function intentOf(approval: ApprovalView): string {
  return approval.checkpoint.contract?.intent ?? approval.checkpoint.policy_rule?.intent ?? approval.tool;
}

/** A refused decision shown on the page it came from: the service's code and message, and each problem a schema found. */
export interface PageError {
  code: string;
  message: string;
  problems?: Array<{ path: string; message: string }>;
}

/** One edited field, as the card says it: "amount: 120 → 80", "notify: added true", "note: removed (was x)". */
function editLine(change: ParamChange): Html {
  if (change.change === 'added') return html`<li><code>${change.path}</code>: added ${prettyJson(change.new)}</li>`;
  if (change.change === 'removed') return html`<li><code>${change.path}</code>: removed (was ${prettyJson(change.old)})</li>`;
  return html`<li><code>${change.path}</code>: ${prettyJson(change.old)} → ${prettyJson(change.new)}</li>`;
}

/**
 * The edit an approval carries. What ran after an approved edit was "approved with edits"; an edit
 * that restarted the count, or the approval it created, shows the params only as "edited".
 */
function editSection(approval: ApprovalView): Html | null {
  const edited: ParamEdit | undefined = approval.edited;
  if (!edited) return null;
  const outcome = (approval.decision as { outcome?: string } | null)?.outcome;
  const approvedWithEdits = approval.status !== 'pending' && outcome !== 'edited';
  return html`<div class="card edits">
    <h2>${approvedWithEdits ? 'Approved with edits' : 'Params edited'} by ${edited.by}</h2>
    <ul>
      ${edited.diff.map(editLine)}
    </ul>
  </div>`;
}

function errorNotice(error: PageError): Html {
  return html`<div class="error" role="alert" data-code="${error.code}">
    ${error.message}
    ${
      error.problems?.length
        ? html`<ul class="problems">
            ${error.problems.map((p) => html`<li><code>${p.path}</code> ${p.message}</li>`)}
          </ul>`
        : null
    }
  </div>`;
}

function decisionLine(approval: ApprovalView): Html | null {
  if (approval.status === 'pending') return null;
  const decision = (approval.decision ?? {}) as { approver?: string; outcome?: string; reason?: string; comment?: string };
  return html`<p class="notice">
      This approval is <strong>${approval.status}</strong>${decision.approver ? html` by ${decision.approver}` : null}${
        approval.decided_at ? html` at ${approval.decided_at}` : null
      }${decision.reason ? html`: ${decision.reason}` : null}.
      Nothing more can be decided here.
    </p>
    ${editSection(approval)}`;
}

function facts(approval: ApprovalView): Html {
  const cp = approval.checkpoint;
  const received = approval.approvals.length;
  return html`<div class="card">
      <dl>
        <dt>Status</dt>
        <dd><span class="status" data-status="${approval.status}">${approval.status}</span></dd>
        <dt>Tool</dt>
        <dd><code>${approval.tool}</code></dd>
        <dt>Agent</dt>
        <dd><code>${approval.agent_id}</code></dd>
        <dt>Risk</dt>
        <dd>${approval.risk}</dd>
        <dt>Entity</dt>
        <dd>${cp.entity_resolution?.entity_id ?? 'none'}</dd>
        <dt>Expires</dt>
        <dd><time datetime="${approval.expires_at}">${approval.expires_at}</time></dd>
        <dt>Approvals</dt>
        <dd>${received} of ${approval.approvals_required}</dd>
        <dt>Approval id</dt>
        <dd><code>${approval.id}</code></dd>
      </dl>
    </div>
    <h2>Why it needs approval</h2>
    <p class="reason">${approval.reason}</p>
    <h2>Params</h2>
    <pre class="params-json">${prettyJson(cp.params)}</pre>
    ${
      Object.keys(cp.contract?.conditions ?? {}).length > 0
        ? html`<h2>Conditions</h2>
            <pre>${prettyJson(cp.contract?.conditions)}</pre>`
        : null
    }
    <h2>State at freeze</h2>
    <pre class="frozen-state">${cp.frozen_state === null ? 'not read' : prettyJson(cp.frozen_state)}</pre>`;
}

function liveSection(live: LiveState | null): Html | null {
  if (!live) return null;
  const drifted = (live.drift?.fields ?? []).filter((f) => f.changed || !f.satisfied);
  return html`<h2>Live state <span class="muted">from ${live.state_source}, read just now</span></h2>
    <pre class="live-state">${prettyJson(live.live_state)}</pre>
    ${
      drifted.length === 0
        ? html`<p class="muted drift">No drift since the freeze.</p>`
        : html`<div class="notice drift">
            <strong>Live state differs from the freeze:</strong>
            <ul>
              ${drifted.map(
                (f) =>
                  html`<li>
                    <code>${f.field}</code>: frozen ${prettyJson(f.frozen)} → live
                    ${prettyJson(f.live)}${f.satisfied ? null : html` (no longer satisfies ${prettyJson(f.condition)})`}
                  </li>`,
              )}
            </ul>
          </div>`
    }`;
}

/** Hidden fields every decision form carries: the link's token and the CSRF token. */
function formTokens(token: string, csrf: string): Html {
  return html`<input type="hidden" name="t" value="${token}" /><input type="hidden" name="csrf" value="${csrf}" />`;
}

/** The Edit form, only where the card and the contract allow edits; after a refused edit it holds what was typed. */
function editForm(opened: OpenedReview, action: (verb: string) => string, token: string, csrf: string, typed: string | null): Html | null {
  if (!opened.editable) return null;
  return html`<details${typed === null ? null : html` open`}>
    <summary>Edit params, then approve</summary>
    <form method="post" action="${action('edit')}">
      ${formTokens(token, csrf)}
      <label>Params (JSON object)<textarea class="params" name="params">${typed ?? prettyJson(opened.approval.checkpoint.params)}</textarea></label>
      <label>Comment (optional)<textarea name="comment" maxlength="2000"></textarea></label>
      <button type="submit">Approve with these params</button>
    </form>
  </details>`;
}

function decisionForms(opened: OpenedReview, action: (verb: string) => string, token: string, csrf: string, typed: string | null): Html {
  return html`<div class="card">
    <p>Deciding as <strong class="decider">${opened.person}</strong>.</p>
    <form method="post" action="${action('approve')}">
      ${formTokens(token, csrf)}
      <label>Comment (optional)<textarea name="comment" maxlength="2000"></textarea></label>
      <button class="approve" type="submit">Approve</button>
    </form>
    <form method="post" action="${action('reject')}">
      ${formTokens(token, csrf)}
      <label>Reason<textarea name="reason" maxlength="2000" required></textarea></label>
      <button class="reject" type="submit">Reject</button>
    </form>
    ${editForm(opened, action, token, csrf, typed)}
    <form method="post" action="${action('refresh')}">${formTokens(token, csrf)}<button type="submit">Refresh live state</button></form>
  </div>`;
}

export interface ReviewPageOptions {
  token: string;
  csrf: string;
  live?: LiveState | null;
  /** A decision this page refused (a bad edit), shown above the facts. */
  error?: PageError | null;
  /** The params text of a refused edit, given back in the Edit form to be corrected. */
  typedParams?: string | null;
}

export function reviewPage(opened: OpenedReview, options: ReviewPageOptions): Html {
  const { approval } = opened;
  const action = (verb: string) => `/approvals/${encodeURIComponent(approval.id)}/review/${verb}`;
  const canDecide = approval.status === 'pending' && opened.refusal === null;
  return html`<h1>${intentOf(approval)}</h1>
    ${options.error ? errorNotice(options.error) : null} ${decisionLine(approval)} ${approval.status === 'pending' ? editSection(approval) : null} ${facts(approval)}
    ${liveSection(options.live ?? null)}
    ${opened.refusal && approval.status === 'pending' ? html`<p class="error refusal" role="alert">You cannot decide this approval: ${opened.refusal}</p>` : null}
    ${canDecide ? decisionForms(opened, action, options.token, options.csrf, options.typedParams ?? null) : null}
    <p class="muted">Link valid until ${opened.claims.expiresAt.toISOString()}; it can make one decision.</p>`;
}

/** The sign-in form: the key is posted once and exchanged for a short-lived session cookie. */
export function signInPage(next: string, message: string | null = null): Html {
  return html`<h1>Sign in to review</h1>
    ${message ? html`<p class="error" role="alert">${message}</p>` : null}
    <form method="post" action="/web/sign-in">
      <input type="hidden" name="next" value="${next}" />
      <label>Approver API key<input type="password" name="key" autocomplete="off" required /></label>
      <button type="submit">Sign in</button>
    </form>
    <p class="muted">Your key is not stored in the browser: a session cookie of 30 minutes stands for it.</p>`;
}

export function resultPage(approval: ApprovalView, result: DecisionResult): Html {
  const received = result.approvals_received;
  const line =
    result.outcome === 'awaiting_approvals'
      ? html`Your approval is recorded (${received} of ${approval.approvals_required}); it runs once enough approvers agree.`
      : html`Outcome: <strong class="outcome">${result.outcome}</strong>. Approval status: <span class="status">${result.approval.status}</span>.`;
  // An edit under a quorum replaced this approval: the edited call waits on a fresh one, with this vote as its first.
  const fresh = result.new_approval
    ? html`<p class="notice">
        The edited call waits as approval <code>${result.new_approval.id}</code>: ${received ?? 0} of ${result.new_approval.approvals_required} approvals so far.
      </p>`
    : null;
  return html`<h1>${intentOf(approval)}</h1>
    <p class="notice result">${line}</p>
    ${fresh} ${editSection(result.approval)}
    ${
      result.call?.result !== undefined
        ? html`<h2>Result</h2>
            <pre>${prettyJson(result.call.result)}</pre>`
        : null
    }
    <p class="muted">This link is now used. <a href="/dashboard/approvals">Your approvals</a></p>`;
}

export interface DashboardRow {
  approval: ApprovalView;
  /** A link bound to the signed-in approver, for pending approvals. */
  reviewUrl: string | null;
}

export function dashboardPage(person: string, pending: DashboardRow[], recent: ApprovalView[]): Html {
  return html`<h1>Approvals</h1>
    <div class="muted">
      Signed in as <strong class="person">${person}</strong>.
      <form method="post" action="/web/sign-out"><button type="submit">Sign out</button></form>
    </div>
    <h2>Pending (${pending.length})</h2>
    ${
      pending.length === 0
        ? html`<p class="muted">Nothing is waiting.</p>`
        : html`<table class="pending">
            <tr>
              <th>What</th>
              <th>Tool</th>
              <th>Agent</th>
              <th>Expires</th>
              <th></th>
            </tr>
            ${pending.map(
              (row) =>
                html`<tr data-approval="${row.approval.id}">
                  <td>
                    ${intentOf(row.approval)}
                    <div class="muted">${row.approval.reason}</div>
                  </td>
                  <td><code>${row.approval.tool}</code></td>
                  <td>${row.approval.agent_id}</td>
                  <td>${row.approval.expires_at}</td>
                  <td>${row.reviewUrl ? html`<a href="${row.reviewUrl}">Review</a>` : null}</td>
                </tr>`,
            )}
          </table>`
    }
    <h2>Recent</h2>
    ${
      recent.length === 0
        ? html`<p class="muted">No decisions yet.</p>`
        : html`<table class="recent">
            <tr>
              <th>What</th>
              <th>Tool</th>
              <th>Status</th>
              <th>Decided</th>
            </tr>
            ${recent.map(
              (a) =>
                html`<tr data-approval="${a.id}">
                  <td>${intentOf(a)}</td>
                  <td><code>${a.tool}</code></td>
                  <td><span class="status">${a.status}</span></td>
                  <td>${a.decided_at ?? ''}</td>
                </tr>`,
            )}
          </table>`
    }`;
}

export function errorPage(status: number, code: string, message: string): Html {
  return html`<h1>${status === 410 ? 'This link no longer works' : 'Something is wrong with this request'}</h1>
    <p class="error" role="alert" data-code="${code}">${message}</p>
    <p class="muted">Error ${status} (${code}). <a href="/dashboard/approvals">Your approvals</a></p>`;
}
