import type { Migration } from 'kysely';
import * as core from './20261123_0001_core.ts';
import * as approvals from './20261123_0002_approvals.ts';
import * as slack from './20261123_0003_slack.ts';
import * as sweeps from './20261123_0004_sweeps.ts';
import * as approvalRequester from './20261124_0005_approval_requester.ts';
import * as traceIndexes from './20261129_0001_trace_indexes.ts';
import * as reviewLinkUses from './20261201_0001_review_link_uses.ts';
import * as traceOnCall from './20261202_0001_trace_on_call.ts';

/**
 * Every migration, by its timestamped name. Listed statically (rather than read from the folder
 * at run time) so the same list works under tsx, vitest and a bundler. Add new files here.
 */
export const migrations: Record<string, Migration> = {
  '20261123_0001_core': core,
  '20261123_0002_approvals': approvals,
  '20261123_0003_slack': slack,
  '20261123_0004_sweeps': sweeps,
  '20261124_0005_approval_requester': approvalRequester,
  '20261129_0001_trace_indexes': traceIndexes,
  '20261201_0001_review_link_uses': reviewLinkUses,
  '20261202_0001_trace_on_call': traceOnCall,
};
