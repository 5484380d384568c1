import { checkEntityResolution, type EntityMismatch } from '../calls/entity-check.ts';
import { computeDrift, type DriftReport } from '../calls/state-verify.ts';
import type { Checkpoint } from './checkpoint.ts';

/**
 * What approving a checkpoint should do, decided from the checkpoint and live state alone.
 * Order matters: expiry, then the rule's allowed action, then the entity, then drift.
 */
export type ThawVerdict =
  | { outcome: 'expired'; reason: string }
  | { outcome: 'cancelled'; reason: string }
  | { outcome: 'blocked'; reason: string; mismatches: EntityMismatch[] }
  | { outcome: 'requeued'; reason: string; drift: DriftReport }
  | { outcome: 'replan_required'; reason: string; drift: DriftReport }
  | { outcome: 'execute'; drift: DriftReport | null };

export interface ThawInput {
  checkpoint: Checkpoint;
  liveState: Record<string, unknown>;
  expired: boolean;
}

export function decideThaw({ checkpoint, liveState, expired }: ThawInput): ThawVerdict {
  if (expired) return { outcome: 'expired', reason: 'the approval expired before it was decided' };

  const allowed = checkpoint.policy_rule?.allowed_action;
  if (allowed !== undefined && allowed !== checkpoint.action) {
    return {
      outcome: 'cancelled',
      reason: `the rule allows the action ${JSON.stringify(allowed)}, but the frozen call's action is ${JSON.stringify(checkpoint.action)}`,
    };
  }

  if (checkpoint.entity_resolution) {
    const entity = checkEntityResolution(checkpoint.entity_resolution, checkpoint.params, checkpoint.variables, liveState);
    if (!entity.ok) return { outcome: 'blocked', reason: entity.reason, mismatches: entity.mismatches };
  }

  const contract = checkpoint.contract;
  if (!contract || Object.keys(contract.conditions).length === 0) return { outcome: 'execute', drift: null };
  const drift = computeDrift(checkpoint.frozen_state ?? {}, liveState, contract.conditions, contract.threshold);
  if (!drift.drifted) return { outcome: 'execute', drift };
  const fields = drift.fields.filter((f) => !f.satisfied || (contract.threshold === 'strict' && f.changed)).map((f) => f.field);
  const reason = `live state drifted since the freeze (${contract.threshold}): ${fields.join(', ')}`;
  return contract.on_mismatch === 'replan' ? { outcome: 'replan_required', reason, drift } : { outcome: 'requeued', reason, drift };
}
