import { ValidationError } from '../errors.ts';
import { isEscalationChain, type EscalationLevel } from '../policy/routing-fields.ts';

/** `#ops` or a Slack channel id (C…, G…): where an escalated card goes rather than who decides. */
export function isSlackChannel(entry: string): boolean {
  return entry.startsWith('#') || /^[CG][A-Z0-9]{6,}$/.test(entry);
}

/**
 * An agent may ask for escalation, but only to approvers the operator configured: otherwise a
 * request could name its own approver and walk around INVOKE_APPROVERS / SLACK_APPROVER_IDS.
 * With no approver list configured, any approver id stands (any approvals:write key decides).
 */
export function assertEscalationAllowed(escalateTo: string | string[] | EscalationLevel[] | undefined, configured: readonly string[], field: string): void {
  if (escalateTo === undefined || configured.length === 0) return;
  const entries = isEscalationChain(escalateTo) ? escalateTo.flatMap((level) => level.approvers) : Array.isArray(escalateTo) ? escalateTo : [escalateTo];
  const strangers = entries.filter((entry) => !isSlackChannel(entry) && !configured.includes(entry));
  if (strangers.length > 0) {
    throw new ValidationError(`${field} names approvers the server does not list: ${strangers.join(', ')}`, { field, approvers: strangers });
  }
}
