import {
  InvokeApprovalTimeoutError,
  InvokeAuthError,
  InvokeConnectionError,
  InvokeError,
  InvokeForbiddenError,
  InvokeUnavailableError,
  InvokeValidationError,
} from '../sdk/index.ts';

/** What `invoke` exits with; scripts may rely on these. */
export const EXIT = {
  ok: 0,
  /** The call was not executed (blocked, failed, rejected, replan...), or the server refused the request. */
  failure: 1,
  /** Bad arguments, or a request the server refused as invalid (400/422). */
  usage: 2,
  /** A call is waiting for a human (without `--wait`, or `--wait` ran out). */
  pending: 3,
  /** No key, a wrong key (401), or a key without the scope (403). */
  auth: 4,
  /** The server cannot be reached or is unavailable (connection refused, timeout, 5xx). */
  unreachable: 5,
} as const;

export const EXIT_CODES_HELP = `
Exit codes:
  0  ok (a call: executed or reconciled as done)
  1  failure: the call was not executed (blocked, failed, rejected, replan_required...), or the server refused the request
  2  usage error: bad arguments or JSON, or the server answered 400/422
  3  pending approval: the call waits for a human (run with --wait, or decide it and call again)
  4  authentication: no key, a wrong key (401), or a key without the scope (403)
  5  unreachable: Invoke did not answer (connection refused, timeout) or is unavailable (5xx)

Connection: --base-url / --api-key, else INVOKE_BASE_URL / INVOKE_API_KEY, else the file written by
\`invoke login\` ($INVOKE_HOME/credentials.json, default ~/.invoke/credentials.json).`;

/** A usage error found before anything is sent. */
export class UsageError extends Error {}

export function exitCodeFor(error: unknown): number {
  if (error instanceof UsageError || error instanceof InvokeValidationError) return EXIT.usage;
  if (error instanceof InvokeApprovalTimeoutError) return EXIT.pending;
  if (error instanceof InvokeAuthError || error instanceof InvokeForbiddenError) return EXIT.auth;
  if (error instanceof InvokeConnectionError || error instanceof InvokeUnavailableError) return EXIT.unreachable;
  if (error instanceof InvokeError && error.code === 'missing_api_key') return EXIT.auth;
  return EXIT.failure;
}

/** One line a person can act on. */
export function messageFor(error: unknown, baseUrl: string): string {
  if (error instanceof InvokeConnectionError) {
    return `Cannot reach Invoke at ${baseUrl} (${error.code === 'timeout' ? 'no answer in time' : error.message.replace(/^.*: /, '')}). Is the server running? Set --base-url or INVOKE_BASE_URL, or run \`invoke login\`.`;
  }
  if (error instanceof InvokeAuthError) return `The API key was refused by ${baseUrl} (401 ${error.code}). Check INVOKE_API_KEY or run \`invoke login\` again.`;
  if (error instanceof InvokeForbiddenError) return `This key may not do that (403 ${error.code}): ${error.message}`;
  if (error instanceof InvokeError && error.code === 'missing_api_key') return 'No API key: run `invoke login --api-key KEY`, set INVOKE_API_KEY, or pass --api-key.';
  if (error instanceof InvokeError) {
    const details = error.details === undefined ? '' : ` ${JSON.stringify(error.details)}`;
    return `${error.message} (${error.status ? `${error.status} ` : ''}${error.code})${details}`;
  }
  return error instanceof Error ? error.message : String(error);
}
