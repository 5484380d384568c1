import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { ValidationError } from '../errors.ts';
import { compileExpression, type CompiledExpression, type ExpressionContext } from './expression.ts';

/**
 * Policy: server rules (from the operator's policy file) and request rules (sent with a call).
 * A request may only tighten policy: its `allow` rules are ignored, so an agent can never grant
 * itself an exemption.
 */

export const policyRuleSchema = z
  .object({
    name: z.string().min(1).max(200).optional(),
    when: z.string().min(1).max(2000),
    effect: z.enum(['allow', 'deny', 'require_approval']),
    intent: z.string().max(200).optional(),
    allowed_action: z.string().max(200).optional(),
    reason: z.string().max(1000).optional(),
    approvals_required: z.number().int().min(1).max(10).optional(),
    on_expire: z.enum(['cancel', 'escalate']).optional(),
    escalate_to: z.union([z.array(z.string().min(1)), z.string().min(1)]).optional(),
  })
  .strict();
export type PolicyRule = z.infer<typeof policyRuleSchema>;

export const policyFileSchema = z.object({ rules: z.array(policyRuleSchema) }).strict();
export type PolicyFile = z.infer<typeof policyFileSchema>;

export type PolicyEffect = PolicyRule['effect'];
type RiskLevel = 'low' | 'medium' | 'high' | 'critical';
export type ApprovalThreshold = 'critical' | 'high' | 'never';

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
}

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
  const compiled = [
    ...serverRules.map((rule, index) => compileRule(rule, 'server', index)),
    ...requestRules.map((rule, index) => compileRule(rule, 'request', index)),
  ];

  const matched: MatchedRule[] = [];
  const ignored: MatchedRule[] = [];
  for (const { rule, expression } of compiled) {
    if (!expression.evaluate(context)) continue;
    if (rule.source === 'request' && rule.effect === 'allow') ignored.push({ ...rule, ignored_reason: REQUEST_ALLOW_IGNORED });
    else matched.push(rule);
  }

  const deny = matched.find((rule) => rule.effect === 'deny');
  if (deny) return { effect: 'deny', rule: deny, reason: deny.reason ?? `denied by ${ruleLabel(deny)} (${deny.when})`, matched, ignored };

  const approval = matched.find((rule) => rule.effect === 'require_approval');
  if (approval) {
    const reason = approval.reason ?? `approval required by ${ruleLabel(approval)} (${approval.when})`;
    return { effect: 'require_approval', rule: approval, reason, matched, ignored };
  }

  const serverAllow = matched.find((rule) => rule.effect === 'allow');
  if (riskNeedsApproval(risk, requireApprovalAt)) {
    if (serverAllow) {
      const why = serverAllow.reason ? `: ${serverAllow.reason}` : '';
      return { effect: 'allow', rule: serverAllow, reason: `risk ${risk} exempted from approval by ${ruleLabel(serverAllow)}${why}`, matched, ignored };
    }
    return { effect: 'require_approval', reason: `risk ${risk} requires approval (threshold: ${requireApprovalAt})`, matched, ignored };
  }

  if (serverAllow) return { effect: 'allow', rule: serverAllow, reason: serverAllow.reason ?? `allowed by ${ruleLabel(serverAllow)}`, matched, ignored };
  const threshold = requireApprovalAt === 'never' ? 'approval by risk is disabled' : `risk ${risk} is below the approval threshold (${requireApprovalAt})`;
  return { effect: 'allow', reason: `no policy rule matched; ${threshold}`, matched, ignored };
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

function riskNeedsApproval(risk: RiskLevel, threshold: ApprovalThreshold): boolean {
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
