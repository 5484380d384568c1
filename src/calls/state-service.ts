import type { z } from 'zod';
import type { KeyIdentity } from '../auth/keyring.ts';
import { requireScope } from '../auth/scopes.ts';
import { UnprocessableError, ValidationError } from '../errors.ts';
import { stateRefetchSchema } from '../tools/schemas.ts';
import type { ReconcileRequest, VerifyRequest } from './call-schemas.ts';
import { decideReconciliation } from './reconcile-decision.ts';
import type { StateReader } from './state-reader.ts';
import { verifyState } from './state-verify.ts';

/** `/state/verify` and `/outcomes/reconcile`: the documented contracts, with optional live reads. */
export function createStateService(stateReader: StateReader) {
  async function liveState(
    identity: KeyIdentity,
    given: Record<string, unknown> | undefined,
    refetch: z.infer<typeof stateRefetchSchema> | undefined,
    agentId: string | undefined,
    bindings: Record<string, unknown>,
  ): Promise<{ state: Record<string, unknown>; source: string }> {
    if (given && refetch) throw new ValidationError('Send current_state or state_refetch, not both');
    if (given) return { state: given, source: 'current_state' };
    if (!refetch) throw new ValidationError('current_state or state_refetch is required', { field: 'current_state' });
    const tool = await stateReader.resolveReadTool(identity, refetch, { agent_id: agentId ?? 'state-reader' }, 'state_refetch');
    const read = await stateReader.read(tool, refetch, bindings);
    if (!read.ok) throw new UnprocessableError('state_refetch_failed', `Could not read live state with ${refetch.tool}: ${read.error}`);
    return { state: read.state, source: refetch.tool };
  }

  return {
    async verify(identity: KeyIdentity, request: VerifyRequest) {
      requireScope(identity, 'state:verify');
      const { state, source } = await liveState(identity, request.current_state, request.state_refetch, request.agent_id, {
        assumed_state: request.assumed_state,
      });
      const result = verifyState({ ...request, current_state: state });
      return { ...result, intent: request.intent, state_source: source, current_state: state };
    },

    async reconcile(identity: KeyIdentity, request: ReconcileRequest) {
      requireScope(identity, 'outcomes:reconcile');
      const { state, source } = await liveState(identity, request.current_state, request.state_refetch, request.agent_id, {
        params: request.action.params,
      });
      const decision = decideReconciliation({ action: request.action, current_state: state, conditions: request.conditions });
      return { ...decision, state_source: source };
    },
  };
}
export type StateService = ReturnType<typeof createStateService>;
