/**
 * The TypeScript SDK: `import { Invoke } from 'invoke'`. A plain client of the HTTP API; its
 * types come from the server's schemas.
 */
export { Invoke, InvokeNotExecutedError, DEFAULT_BASE_URL, type InvokeOptions, type CallOptions, type CallObject, type GuardOptions } from './invoke.ts';
export {
  InvokeError,
  InvokeAuthError,
  InvokeForbiddenError,
  InvokeValidationError,
  InvokeNotFoundError,
  InvokeConflictError,
  InvokeRateLimitError,
  InvokeUnavailableError,
  InvokeConnectionError,
  InvokeApprovalTimeoutError,
} from './errors.ts';
export type { FetchLike } from './transport.ts';
export type * from './types.ts';
