import type { Scope } from '../config.ts';
import { ForbiddenError } from '../errors.ts';
import type { KeyIdentity } from './keyring.ts';

export function hasScope(identity: KeyIdentity, scope: Scope): boolean {
  return identity.fullAccess || (identity.limits?.scopes.includes(scope) ?? false);
}

export function requireScope(identity: KeyIdentity, scope: Scope): void {
  if (!hasScope(identity, scope)) {
    throw new ForbiddenError(`This API key lacks the scope ${scope}`, { missing_scope: scope });
  }
}

/** `billing.*` matches every tool of the billing provider; `*` matches all. */
export function toolAllowed(patterns: readonly string[] | undefined, key: string): boolean {
  if (!patterns) return true;
  return patterns.some((p) => p === '*' || p === key || (p.endsWith('.*') && key.startsWith(p.slice(0, -1))));
}

export interface CallContext {
  agent_id: string;
  env?: string;
  workflow?: string;
  action?: string;
  resource?: string;
}

/** May this key run this tool in this context? Throws 403 naming what is missing. */
/** What scoping needs to know of a tool (a capability card is one). */
export interface ScopedTool {
  key: string;
  side_effects: boolean;
}

/**
 * Whether the key may use this tool at all: what `authorizeToolUse` checks before the call's
 * context (agent, env, ...), which only a call names. Used to list a key's tools.
 */
export function mayUseTool(identity: KeyIdentity, card: ScopedTool): boolean {
  if (!hasScope(identity, 'tools:call')) return false;
  const limits = identity.limits;
  if (identity.fullAccess || !limits) return true;
  return toolAllowed(limits.allowed_tools, card.key) && !(limits.read_only && card.side_effects);
}

export function authorizeToolUse(identity: KeyIdentity, card: ScopedTool, context: CallContext, purpose = 'call'): void {
  requireScope(identity, 'tools:call');
  const limits = identity.limits;
  if (identity.fullAccess || !limits) return;
  if (!toolAllowed(limits.allowed_tools, card.key)) {
    throw new ForbiddenError(`This API key may not ${purpose} the tool ${card.key}`, { missing_scope: 'allowed_tools', tool: card.key });
  }
  if (limits.read_only && card.side_effects) {
    throw new ForbiddenError(`This API key is read-only and ${card.key} has side effects`, { missing_scope: 'read_only', tool: card.key });
  }
  const checks: [keyof CallContext, readonly string[] | undefined, string][] = [
    ['agent_id', limits.agents ?? (limits.agent_id ? [limits.agent_id] : undefined), 'agents'],
    ['env', limits.envs, 'envs'],
    ['workflow', limits.workflows, 'workflows'],
    ['action', limits.allowed_actions, 'allowed_actions'],
    ['resource', limits.resources, 'resources'],
  ];
  for (const [field, allowed, scopeName] of checks) {
    if (!allowed) continue;
    const value = context[field];
    if (value === undefined || !allowed.includes(value)) {
      throw new ForbiddenError(
        value === undefined ? `This API key is limited by ${scopeName}: the request must name its ${field}` : `This API key may not act with ${field} ${JSON.stringify(value)}`,
        { missing_scope: scopeName, field, value: value ?? null, allowed },
      );
    }
  }
}
