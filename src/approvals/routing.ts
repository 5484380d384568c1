import type { Config } from '../config.ts';
import { AppError, ValidationError } from '../errors.ts';
import type { MatchedRule } from '../policy/policy.ts';
import { isEscalationChain, type EscalationLevel } from '../policy/routing-fields.ts';
import type { CapabilityCard } from '../tools/types.ts';
import { isSlackChannel } from './escalation.ts';

/**
 * Routing: who may decide an approval and where its card goes. A capability card and a server
 * policy rule may name `approvers` (Slack users U…/W…, Slack user groups S…, API approver ids)
 * and a `channel`; the rule that froze the call wins over the card, the card over the global
 * lists (SLACK_APPROVER_IDS, INVOKE_APPROVERS, SLACK_APPROVAL_CHANNEL). A rule the agent sent
 * may only narrow: approvers the server already lists, the channel the server already chose.
 *
 * The routing is recorded on the approval at freeze (its `approvers` column: the approvers,
 * plus the channel as one more entry), so a later change of card or policy never re-addresses
 * an approval already asked for. Every decision, from any door, checks it here.
 */

export type { EscalationLevel };

export interface Routing {
  /** Empty: the global approver lists decide. */
  approvers: string[];
  /** Null: SLACK_APPROVAL_CHANNEL. */
  channel: string | null;
}

/** What a freeze records: the `approvers` column and the escalation levels still ahead. */
export interface FrozenRouting {
  entries: string[] | null;
  chain: EscalationLevel[];
}

/** Members of Slack user groups, as the Slack side resolves them; null when unknown (fails closed). */
export interface GroupDirectory {
  membersOf(groupId: string): Promise<ReadonlySet<string> | null>;
}

/** Without Slack no group resolves: a group-only routing then admits nobody. */
export const noGroups: GroupDirectory = { membersOf: async () => null };

/** Who decides through which door: a Slack click or an API key. */
export type DecisionDoor = 'api' | 'slack';

/** Someone outside an approval's approvers tried to decide it (or a group could not be resolved). */
export class NotAnApproverError extends AppError {
  constructor(message: string, details: { approver: string; approvers: readonly string[]; unresolved_groups?: string[] }) {
    super(403, 'not_an_approver', message, details);
  }
}

export const isSlackUser = (entry: string) => /^[UW][A-Z0-9]{2,}$/.test(entry);
export const isUserGroup = (entry: string) => /^S[A-Z0-9]{2,}$/.test(entry);

/** The approvers and channel an `approvers` column records. */
export function routingOf(entries: readonly string[] | null): Routing {
  const list = entries ?? [];
  return { approvers: list.filter((entry) => !isSlackChannel(entry)), channel: list.find(isSlackChannel) ?? null };
}

function entriesOf(approvers: readonly string[] | undefined, channel: string | undefined): string[] | null {
  const entries = [...(approvers ?? []), ...(channel ? [channel] : [])];
  return entries.length > 0 ? entries : null;
}

/** The people an escalation level addresses, as an `approvers` column. */
export function entriesOfLevel(level: EscalationLevel): string[] {
  return entriesOf(level.approvers, level.channel) ?? [];
}

/**
 * The routing a new approval records: the freezing rule's fields over the card's over the global
 * lists. A request rule's `approvers` must all be listed by the layer below it (the card's, or the
 * global lists), and its `channel` must be the one already chosen: an agent narrows, never adds.
 */
export function resolveRouting(config: Config, card: CapabilityCard, rule: MatchedRule | null): FrozenRouting {
  const serverRule = rule?.source === 'server' ? rule : null;
  const approvers = serverRule?.approvers ?? card.approvers;
  const channel = serverRule?.channel ?? card.channel;
  const ruleChain = isEscalationChain(serverRule?.escalate_to) ? serverRule.escalate_to : undefined;
  const chain = ruleChain ?? card.escalate_to ?? [];
  if (rule?.source !== 'request') return { entries: entriesOf(approvers, channel), chain };

  const field = `policy.rules[${rule.index}]`;
  const configured = approvers ?? [...config.approvers, ...(config.slack?.approverIds ?? [])];
  const strangers = (rule.approvers ?? []).filter((entry) => configured.length > 0 && !configured.includes(entry));
  if (strangers.length > 0) {
    throw new ValidationError(`${field}.approvers names approvers the server does not list for ${card.key}: ${strangers.join(', ')}`, {
      field: `${field}.approvers`,
      approvers: strangers,
    });
  }
  const chosen = channel ?? config.slack?.approvalChannel;
  if (rule.channel !== undefined && rule.channel !== chosen) {
    throw new ValidationError(`${field}.channel may only repeat the configured channel for ${card.key}${chosen ? ` (${chosen})` : ''}`, {
      field: `${field}.channel`,
      channel: rule.channel,
    });
  }
  return { entries: entriesOf(rule.approvers ?? approvers, channel), chain };
}

/**
 * Who may decide an approval through a door: its own approvers when it names any; otherwise the
 * global list of that door (SLACK_APPROVER_IDS for clicks, INVOKE_APPROVERS for keys). Null:
 * anyone with approvals:write (no API approver list configured).
 */
export function decidersOf(config: Config, entries: readonly string[] | null, door: DecisionDoor): readonly string[] | null {
  const { approvers } = routingOf(entries);
  if (approvers.length > 0) return approvers;
  // No Slack configured, no Slack door: only services called directly (tests, tools) say 'slack'.
  if (door === 'slack') return config.slack ? config.slack.approverIds : null;
  return config.approvers.length > 0 ? config.approvers : null;
}

/**
 * Whether `person` is among `approvers`: named, or a member of a named group. A group whose
 * members are unknown (Slack unreachable, never resolved) admits nobody: it is listed in
 * `unresolved` so a refusal can say why.
 */
export async function findAmong(approvers: readonly string[], person: string, groups: GroupDirectory): Promise<{ found: boolean; unresolved: string[] }> {
  if (approvers.includes(person)) return { found: true, unresolved: [] };
  const unresolved: string[] = [];
  for (const group of approvers.filter(isUserGroup)) {
    const members = await groups.membersOf(group);
    if (members === null) unresolved.push(group);
    else if (members.has(person)) return { found: true, unresolved: [] };
  }
  return { found: false, unresolved };
}

/** Throws `not_an_approver` unless `person` may decide through `door` an approval addressed to `entries`. */
export async function assertAmongDeciders(config: Config, groups: GroupDirectory, entries: readonly string[] | null, person: string, door: DecisionDoor): Promise<void> {
  const deciders = decidersOf(config, entries, door);
  if (deciders === null) return;
  const { found, unresolved } = await findAmong(deciders, person, groups);
  if (found) return;
  const why = unresolved.length > 0 ? ` (the members of ${unresolved.join(', ')} could not be looked up)` : '';
  throw new NotAnApproverError(`${person} is not an approver of this approval; it may be decided by ${deciders.join(', ')}${why}`, {
    approver: person,
    approvers: deciders,
    ...(unresolved.length > 0 ? { unresolved_groups: unresolved } : {}),
  });
}
