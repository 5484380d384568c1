import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { ValidationError } from '../errors.ts';
import type { ApprovalThreshold, RiskLevel } from '../vocabulary.ts';
import { describeOrderingProblem } from './conditions.ts';
import { compileExpression, MAX_EXPRESSION_LENGTH, type CompiledExpression, type ExpressionContext, type UncomparableValue } from './expression.ts';
import { approversSchema, channelSchema, escalationChainSchema, isEscalationChain } from './routing-fields.ts';

/**
 * Policy: server rules (from the operator's policy file) and request rules (sent with a call).
 * A request may only tighten policy: its `allow` rules are ignored, so an agent can never grant
 * itself an exemption.
 *
 * A `when` whose outcome hangs on a value that could not be compared (`params.amount > 1000` with
 * `[5000]`) fails closed: a deny or require_approval rule matches, an allow rule does not. The
 * decision lists those values (`uncomparable`) so the trace and the answer can name them.
 */

export const policyRuleSchema = z
  .object({
    name: z.string().min(1).max(200).optional(),
    when: z.string().min(1).max(MAX_EXPRESSION_LENGTH),
    effect: z.enum(['allow', 'deny', 'require_approval']),
    intent: z.string().max(200).optional(),
    allowed_action: z.string().max(200).optional(),
    reason: z.string().max(1000).optional(),
    approvals_required: z.number().int().min(1).max(10).optional(),
    on_expire: z.enum(['cancel', 'escalate']).optional(),
    /** People and channels for a single escalation on expiry, or (server rules only) a chain of levels. */
    escalate_to: z.union([z.array(z.string().min(1)), z.string().min(1), escalationChainSchema]).optional(),
    /** Who may decide the approval this rule asks for (server rules: anyone; request rules: only a narrowing). */
    approvers: approversSchema.optional(),
    /** Where its card goes (server rules; a request rule may only repeat the configured one). */
    channel: channelSchema.optional(),
    /** Checked on live state when the approval thaws: false cancels the run and asks the agent to re-plan. */
    condition: z.string().min(1).max(MAX_EXPRESSION_LENGTH).optional(),
    /** The approval this rule asks for lasts at most until then. */
    expires_at: z.string().datetime({ offset: true }).optional(),
  })
  .strict();
export type PolicyRule = z.infer<typeof policyRuleSchema>;

/**
 * A rule sent with a call: a policy rule, or the original product's "domain policy"
 * `{intent, condition, allowed_action, expires_at}` (no `when`, no `effect`), which freezes the
 * call it comes with; at thaw the condition is checked on live state, the call's action against
 * `allowed_action`, and the approval expires at `expires_at`. One schema (not a union), so a
 * malformed rule's errors name its fields.
 */
export const requestRuleSchema = policyRuleSchema
  .extend({ when: policyRuleSchema.shape.when.optional(), effect: policyRuleSchema.shape.effect.optional() })
  .strict()
  .superRefine((rule, ctx) => {
    // Escalation chains reach people outside the default lists: an admin's to configure, not an agent's.
    if (isEscalationChain(rule.escalate_to)) {
      ctx.addIssue({ code: 'custom', path: ['escalate_to'], message: 'an escalation chain is configured on the tool or in server policy, not sent with a call' });
    }
    if (rule.when !== undefined) {
      if (rule.effect === undefined) ctx.addIssue({ code: 'custom', path: ['effect'], message: 'effect is required with when' });
      return;
    }
    if (rule.condition === undefined) ctx.addIssue({ code: 'custom', path: ['when'], message: 'when is required (or condition, for a domain policy)' });
    if (rule.intent === undefined) ctx.addIssue({ code: 'custom', path: ['intent'], message: 'a domain policy (a rule with a condition and no when) needs an intent' });
    if (rule.effect !== undefined) ctx.addIssue({ code: 'custom', path: ['effect'], message: 'a domain policy requires approval; it takes no effect' });
  });
export type RequestRule = z.infer<typeof requestRuleSchema>;

/** A request rule as policy evaluates it: a domain policy matches its call and requires approval. */
export function asPolicyRule(rule: RequestRule): PolicyRule {
  const { when, effect, ...rest } = rule;
  if (when !== undefined && effect !== undefined) return { ...rest, when, effect };
  return { ...rest, when: 'true', effect: 'require_approval', reason: rule.reason ?? `domain policy ${rule.intent ?? ''}: approval required` };
}

export const policyFileSchema = z.object({ rules: z.array(policyRuleSchema) }).strict();
export type PolicyFile = z.infer<typeof policyFileSchema>;

export type PolicyEffect = PolicyRule['effect'];
export type { ApprovalThreshold } from '../vocabulary.ts';

/** A rule that matched, with where it came from (index is 0-based in its list). */
export type MatchedRule = PolicyRule & {
  source: 'server' | 'request';
  index: number;
  /** Set on entries of `ignored`: why the rule had no effect. */
  ignored_reason?: string;
};

export interface PolicyDecision {
  effect: PolicyEffect;
  /** The rule that decided the effect; absent when the risk threshold or the default decided. */
  rule?: MatchedRule;
  reason: string;
  /** Every matching rule that counts, server rules first. */
  matched: MatchedRule[];
  /** Matching rules that were not allowed to count (request `allow` rules). */
  ignored: MatchedRule[];
  /**
   * Values that rules could not compare, for every rule whose `when` came out unknown: a deny or
   * require_approval rule matched on them; an allow rule did not.
   */
  uncomparable: PolicyUncomparable[];
}

/** A value a rule could not compare, and what that did to the rule. */
export type PolicyUncomparable = UncomparableValue & {
  /** `server policy rules[0] "name"` or `request policy.rules[1]`. */
  rule: string;
  effect: PolicyEffect;
  /** `matched` for deny / require_approval (fails closed); `not matched` for allow. */
  outcome: 'matched' | 'not matched';
};

export interface PolicyEvaluationInput {
  serverRules: readonly PolicyRule[];
  requestRules: readonly PolicyRule[];
  context: ExpressionContext;
  risk: RiskLevel;
  requireApprovalAt: ApprovalThreshold;
}

const RISK_RANK: Record<RiskLevel, number> = { low: 0, medium: 1, high: 2, critical: 3 };

const REQUEST_ALLOW_IGNORED = 'request rules can only tighten policy: a request allow rule is ignored';

/**
 * Decides a call: any matching deny wins; then any matching require_approval; then the risk
 * threshold (a matching server allow exempts); otherwise allow.
 */
export function evaluatePolicy(input: PolicyEvaluationInput): PolicyDecision {
  const { serverRules, requestRules, risk, requireApprovalAt } = input;
  const context: ExpressionContext = { ...input.context, risk: input.context.risk ?? risk };

  // Compile everything first: a malformed rule must fail even when an earlier rule would match.
  const compiled = [...serverRules.map((rule, index) => compileRule(rule, 'server', index)), ...requestRules.map((rule, index) => compileRule(rule, 'request', index))];

  const matched: MatchedRule[] = [];
  const ignored: MatchedRule[] = [];
  const uncomparable: PolicyUncomparable[] = [];
  /** Why each rule that matched only by failing closed matched. */
  const failedClosed = new Map<MatchedRule, string>();
  for (const { rule, expression } of compiled) {
    const result = expression.evaluate(context);
    if (result.value === 'unknown') {
      const failsClosed = rule.effect !== 'allow';
      const outcome = failsClosed ? 'matched' : 'not matched';
      uncomparable.push(...result.uncomparable.map((value) => ({ ...value, rule: ruleLabel(rule), effect: rule.effect, outcome }) as const));
      if (!failsClosed) continue;
      failedClosed.set(rule, describeUncomparable(result.uncomparable));
    } else if (!result.value) {
      continue;
    }
    if (rule.source === 'request' && rule.effect === 'allow') ignored.push({ ...rule, ignored_reason: REQUEST_ALLOW_IGNORED });
    else matched.push(rule);
  }
  const decided = { matched, ignored, uncomparable };
  const withFailClosedNote = (rule: MatchedRule, reason: string) => {
    const note = failedClosed.get(rule);
    return note === undefined ? reason : `${reason} (matched because ${note}: fails closed)`;
  };

  const deny = matched.find((rule) => rule.effect === 'deny');
  if (deny) return { effect: 'deny', rule: deny, reason: withFailClosedNote(deny, deny.reason ?? `denied by ${ruleLabel(deny)} (${deny.when})`), ...decided };

  const approval = matched.find((rule) => rule.effect === 'require_approval');
  if (approval) {
    const reason = withFailClosedNote(approval, approval.reason ?? `approval required by ${ruleLabel(approval)} (${approval.when})`);
    return { effect: 'require_approval', rule: approval, reason, ...decided };
  }

  const serverAllow = matched.find((rule) => rule.effect === 'allow');
  if (riskNeedsApproval(risk, requireApprovalAt)) {
    if (serverAllow) {
      const why = serverAllow.reason ? `: ${serverAllow.reason}` : '';
      return { effect: 'allow', rule: serverAllow, reason: `risk ${risk} exempted from approval by ${ruleLabel(serverAllow)}${why}`, ...decided };
    }
    return { effect: 'require_approval', reason: `risk ${risk} requires approval (threshold: ${requireApprovalAt})`, ...decided };
  }

  if (serverAllow) return { effect: 'allow', rule: serverAllow, reason: serverAllow.reason ?? `allowed by ${ruleLabel(serverAllow)}`, ...decided };
  const threshold = requireApprovalAt === 'never' ? 'approval by risk is disabled' : `risk ${risk} is below the approval threshold (${requireApprovalAt})`;
  return { effect: 'allow', reason: `no policy rule matched; ${threshold}`, ...decided };
}

/** Reads `{rules: [...]}` from a JSON or YAML file, validating every rule and its `when`. */
export async function loadPolicyFile(path: string): Promise<PolicyFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new Error(`Cannot read policy file ${path}: ${(error as Error).message}`);
  }

  let data: unknown;
  try {
    data = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : YAML.parse(text);
  } catch (error) {
    throw new Error(`Policy file ${path} is not valid ${extname(path).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${(error as Error).message}`);
  }

  const parsed = policyFileSchema.safeParse(data ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `  - ${issue.path.length ? formatPath(issue.path) : '(file)'}: ${issue.message}`);
    throw new Error(`Policy file ${path} is invalid:\n${problems.join('\n')}`);
  }
  parsed.data.rules.forEach((rule, index) => {
    try {
      compileExpression(rule.when);
    } catch (error) {
      throw new Error(`Policy file ${path} is invalid:\n  - rules[${index}].when: ${(error as Error).message}`);
    }
  });
  return parsed.data;
}

function compileRule(rule: PolicyRule, source: 'server' | 'request', index: number): { rule: MatchedRule; expression: CompiledExpression } {
  try {
    return { rule: { ...rule, source, index }, expression: compileExpression(rule.when) };
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    const field = source === 'request' ? `policy.rules[${index}].when` : `server policy rules[${index}]${rule.name ? ` "${rule.name}"` : ''}.when`;
    throw new ValidationError(`${field}: ${error.message}`, { field, ...(error.details as object) });
  }
}

/** "params.amount could not be compared (an array, not a number)", joined with "and". */
function describeUncomparable(values: readonly UncomparableValue[]): string {
  return values.map((value) => `${value.operand} could not be compared (${describeOrderingProblem(value)})`).join(' and ');
}

/** Whether a tool's risk alone sends its calls to a human under the server threshold. */
export function riskNeedsApproval(risk: RiskLevel, threshold: ApprovalThreshold): boolean {
  if (threshold === 'never') return false;
  return RISK_RANK[risk] >= RISK_RANK[threshold];
}

function ruleLabel(rule: MatchedRule): string {
  const name = rule.name ? ` "${rule.name}"` : '';
  return rule.source === 'server' ? `server policy rules[${rule.index}]${name}` : `request policy.rules[${rule.index}]${name}`;
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((part, i) => (typeof part === 'number' ? `[${part}]` : `${i === 0 ? '' : '.'}${String(part)}`)).join('');
}
