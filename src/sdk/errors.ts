/**
 * What the SDK throws. A request the server refused carries the server's
 * `{error: {code, message, details}}` as `.code`, `.message`, `.details` and the HTTP `.status`;
 * the subclass says which kind of refusal it was, so an agent can `instanceof` rather than
 * compare numbers. Domain outcomes (`blocked`, `pending_approval`, ...) are answers, never errors.
 */
export class InvokeError extends Error {
  constructor(
    message: string,
    /** The server's error code (`validation_error`, `forbidden`, ...), or the SDK's own for transport failures. */
    readonly code: string,
    /** The HTTP status; 0 when no answer arrived. */
    readonly status: number,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** 401: no key, or a key the server does not know. */
export class InvokeAuthError extends InvokeError {}
/** 403: the key lacks a scope, a tool, an agent, or may not decide this approval. */
export class InvokeForbiddenError extends InvokeError {}
/** 400 / 422: the request itself is wrong (or an idempotency key was reused with another payload). */
export class InvokeValidationError extends InvokeError {}
/** 404. */
export class InvokeNotFoundError extends InvokeError {}
/** 409: an idempotency key still in flight, an approval already decided. */
export class InvokeConflictError extends InvokeError {}
/** 429 after the SDK's own retries; `retryAfterMs` is the server's last hint. */
export class InvokeRateLimitError extends InvokeError {
  constructor(
    message: string,
    code: string,
    status: number,
    details: unknown,
    readonly retryAfterMs: number | undefined,
  ) {
    super(message, code, status, details);
  }
}
/** 5xx after the SDK's own retries: the server or one of its dependencies is down. */
export class InvokeUnavailableError extends InvokeError {}
/** No answer at all (refused, reset, DNS, timeout) after the SDK's own retries. */
export class InvokeConnectionError extends InvokeError {}
/** `waitForApproval` ran out of time while the approval was still pending. */
export class InvokeApprovalTimeoutError extends InvokeError {}

export interface ServerError {
  code: string;
  message: string;
  details?: unknown;
}

/** The typed error for one refused answer. */
export function errorForAnswer(status: number, error: ServerError, retryAfterMs?: number): InvokeError {
  const { code, message, details } = error;
  if (status === 401) return new InvokeAuthError(message, code, status, details);
  if (status === 403) return new InvokeForbiddenError(message, code, status, details);
  if (status === 400 || status === 422) return new InvokeValidationError(message, code, status, details);
  if (status === 404) return new InvokeNotFoundError(message, code, status, details);
  if (status === 409) return new InvokeConflictError(message, code, status, details);
  if (status === 429) return new InvokeRateLimitError(message, code, status, details, retryAfterMs);
  if (status >= 500) return new InvokeUnavailableError(message, code, status, details);
  return new InvokeError(message, code, status, details);
}
