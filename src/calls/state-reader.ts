import type { KeyIdentity } from '../auth/keyring.ts';
import { authorizeToolUse, type CallContext } from '../auth/scopes.ts';
import { ValidationError } from '../errors.ts';
import type { StoredTool } from '../tools/tools-repository.ts';
import type { ToolRegistry } from '../tools/tool-registry.ts';
import type { StateRefetch } from '../tools/types.ts';
import type { ReadStateResult } from './failure-policy.ts';
import { bindTemplate } from './templates.ts';

/**
 * Live state comes from a `state_refetch` read tool. Used by reconciliation, `/state/verify`,
 * freezing and thawing. Only tools without side effects that the calling key may use qualify.
 */
export function createStateReader(registry: ToolRegistry) {
  return {
    async resolveReadTool(identity: KeyIdentity, refetch: StateRefetch, context: CallContext, label: string): Promise<StoredTool> {
      const tool = await registry.getTool(refetch.tool);
      if (tool.card.side_effects) {
        throw new ValidationError(`${label} names ${refetch.tool}, which has side effects; state can only be read with a tool without side effects`, {
          field: label,
        });
      }
      authorizeToolUse(identity, tool.card, context, 'read state with');
      return tool;
    },

    /** Reads state; `{{params.x}}` placeholders in the refetch params are filled from `bindings`. */
    async read(tool: StoredTool, refetch: StateRefetch, bindings: Record<string, unknown>): Promise<ReadStateResult> {
      const params = bindTemplate(refetch.params, bindings) as Record<string, unknown>;
      try {
        registry.validateParams(tool.card, params);
      } catch (error) {
        return { ok: false, error: (error as Error).message };
      }
      const outcome = await registry.invoke(tool, params);
      if (outcome.kind !== 'ok') return { ok: false, error: outcome.error };
      const state = outcome.result;
      const isRecord = state !== null && typeof state === 'object' && !Array.isArray(state);
      return { ok: true, state: isRecord ? (state as Record<string, unknown>) : { value: state } };
    },
  };
}
export type StateReader = ReturnType<typeof createStateReader>;
