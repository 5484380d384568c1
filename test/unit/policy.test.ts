import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/errors.ts';
import type { ExpressionContext } from '../../src/policy/expression.ts';
import { evaluatePolicy, loadPolicyFile, policyRuleSchema, type PolicyEvaluationInput, type PolicyRule } from '../../src/policy/policy.ts';

const context: ExpressionContext = {
  action: 'git_push',
  tool: 'github.push',
  agent_id: 'release-bot',
  env: 'production',
  params: { branch: 'main', amount: 500 },
  variables: {},
};

function decide(overrides: Partial<PolicyEvaluationInput>) {
  return evaluatePolicy({ serverRules: [], requestRules: [], context, risk: 'low', requireApprovalAt: 'critical', ...overrides });
}

describe('evaluatePolicy: defaults and risk threshold', () => {
  it('allows when nothing matches and the risk is below the threshold', () => {
    const decision = decide({ risk: 'high' });
    expect(decision).toEqual({
      effect: 'allow',
      reason: 'no policy rule matched; risk high is below the approval threshold (critical)',
      matched: [],
      ignored: [],
      uncomparable: [],
    });
    expect(decision.rule).toBeUndefined();
  });

  it.each([
    ['critical', 'critical', 'require_approval'],
    ['high', 'critical', 'allow'],
    ['high', 'high', 'require_approval'],
    ['critical', 'high', 'require_approval'],
    ['medium', 'high', 'allow'],
    ['low', 'high', 'allow'],
    ['critical', 'never', 'allow'],
  ] as const)('risk %s with threshold %s -> %s', (risk, requireApprovalAt, effect) => {
    expect(decide({ risk, requireApprovalAt }).effect).toBe(effect);
  });

  it('names the risk in the reason', () => {
    expect(decide({ risk: 'critical' }).reason).toBe('risk critical requires approval (threshold: critical)');
    expect(decide({ risk: 'critical', requireApprovalAt: 'never' }).reason).toBe('no policy rule matched; approval by risk is disabled');
  });

  it('a matching server allow exempts the risk threshold', () => {
    const serverRules: PolicyRule[] = [{ when: 'agent_id == "release-bot"', effect: 'allow', reason: 'release bot is trusted' }];
    const decision = decide({ risk: 'critical', serverRules });
    expect(decision.effect).toBe('allow');
    expect(decision.rule).toMatchObject({ source: 'server', index: 0, effect: 'allow', when: 'agent_id == "release-bot"' });
    expect(decision.reason).toBe('risk critical exempted from approval by server policy rules[0]: release bot is trusted');
  });

  it('a server allow that does not match exempts nothing', () => {
    const decision = decide({ risk: 'critical', serverRules: [{ when: 'agent_id == other', effect: 'allow' }] });
    expect(decision.effect).toBe('require_approval');
    expect(decision.rule).toBeUndefined();
  });

  it('a matching server allow below the threshold is the deciding rule', () => {
    const decision = decide({ serverRules: [{ name: 'pushes', when: 'action == git_push', effect: 'allow' }] });
    expect(decision).toMatchObject({ effect: 'allow', reason: 'allowed by server policy rules[0] "pushes"', rule: { name: 'pushes', source: 'server' } });
  });

  it('the context risk defaults to the tool risk, so rules can use it', () => {
    expect(decide({ risk: 'high', serverRules: [{ when: 'risk == high', effect: 'deny' }] }).effect).toBe('deny');
    expect(decide({ risk: 'low', serverRules: [{ when: 'risk == high', effect: 'deny' }] }).effect).toBe('allow');
  });
});

describe('evaluatePolicy: precedence', () => {
  it('deny beats require_approval and allow, wherever they are', () => {
    const decision = decide({
      serverRules: [
        { when: 'action == git_push', effect: 'allow' },
        { when: 'branch == main', effect: 'require_approval' },
      ],
      requestRules: [{ when: 'env == production', effect: 'deny', reason: 'no prod pushes from this run' }],
    });
    expect(decision.effect).toBe('deny');
    expect(decision.reason).toBe('no prod pushes from this run');
    expect(decision.rule).toMatchObject({ source: 'request', index: 0, effect: 'deny' });
    expect(decision.matched.map((r) => [r.source, r.index, r.effect])).toEqual([
      ['server', 0, 'allow'],
      ['server', 1, 'require_approval'],
      ['request', 0, 'deny'],
    ]);
  });

  it('a server deny wins with a default reason naming the rule', () => {
    const decision = decide({ serverRules: [{ when: 'action == git_push and branch == main', effect: 'deny' }] });
    expect(decision).toMatchObject({ effect: 'deny', reason: 'denied by server policy rules[0] (action == git_push and branch == main)' });
  });

  it('require_approval beats allow and the first match is the rule', () => {
    const decision = decide({
      serverRules: [
        { when: 'action == git_push', effect: 'allow' },
        { when: 'params.amount > 100', effect: 'require_approval', approvals_required: 2, on_expire: 'escalate', escalate_to: ['@lead'], intent: 'push' },
      ],
      requestRules: [{ when: 'branch == main', effect: 'require_approval', reason: 'agent asked' }],
    });
    expect(decision.effect).toBe('require_approval');
    expect(decision.rule).toMatchObject({ source: 'server', index: 1, approvals_required: 2, on_expire: 'escalate', escalate_to: ['@lead'], intent: 'push' });
    expect(decision.reason).toBe('approval required by server policy rules[1] (params.amount > 100)');
  });

  it('a request may require approval even for low risk', () => {
    const decision = decide({ requestRules: [{ when: 'branch == main', effect: 'require_approval' }] });
    expect(decision).toMatchObject({ effect: 'require_approval', rule: { source: 'request', index: 0 }, reason: 'approval required by request policy.rules[0] (branch == main)' });
  });

  it('a request may deny', () => {
    expect(decide({ requestRules: [{ when: 'true', effect: 'deny' }] }).effect).toBe('deny');
  });
});

describe('evaluatePolicy: request rules only tighten', () => {
  it('ignores a matching request allow, listing it with the reason', () => {
    const decision = decide({ risk: 'critical', requestRules: [{ when: 'true', effect: 'allow', reason: 'trust me' }] });
    expect(decision.effect).toBe('require_approval');
    expect(decision.reason).toBe('risk critical requires approval (threshold: critical)');
    expect(decision.matched).toEqual([]);
    expect(decision.ignored).toEqual([
      {
        when: 'true',
        effect: 'allow',
        reason: 'trust me',
        source: 'request',
        index: 0,
        ignored_reason: 'request rules can only tighten policy: a request allow rule is ignored',
      },
    ]);
  });

  it('a request allow never overrides a server deny or require_approval', () => {
    expect(decide({ serverRules: [{ when: 'true', effect: 'deny' }], requestRules: [{ when: 'true', effect: 'allow' }] }).effect).toBe('deny');
    expect(decide({ serverRules: [{ when: 'true', effect: 'require_approval' }], requestRules: [{ when: 'true', effect: 'allow' }] }).effect).toBe('require_approval');
  });

  it('a non-matching request allow is not listed', () => {
    expect(decide({ requestRules: [{ when: 'false', effect: 'allow' }] }).ignored).toEqual([]);
  });

  it('below the threshold the outcome is allow, but not because of the request rule', () => {
    const decision = decide({ requestRules: [{ when: 'true', effect: 'allow' }] });
    expect(decision.effect).toBe('allow');
    expect(decision.rule).toBeUndefined();
    expect(decision.ignored).toHaveLength(1);
  });
});

/** Values a `params.amount > 1000` rule let through before (issue 9); JSON 1e400 parses to Infinity. */
const WRONG_TYPE_AMOUNTS = [
  ['[5000]', [5000], 'array'],
  ['{"value": 5000}', { value: 5000 }, 'object'],
  ['"0x1388"', '0x1388', 'text'],
  ['"5,000"', '5,000', 'text'],
  ['1e400', JSON.parse('1e400') as number, 'non-finite number'],
] as const;

describe('evaluatePolicy: values that cannot be compared fail closed', () => {
  const withAmount = (amount: unknown): ExpressionContext => ({ ...context, params: { ...context.params, amount } });

  describe.each(['deny', 'require_approval'] as const)('a server %s rule on params.amount > 1000', (effect) => {
    const serverRules: PolicyRule[] = [{ when: 'params.amount > 1000', effect, reason: 'large amounts' }];

    it.each(WRONG_TYPE_AMOUNTS)('matches %s, naming the value it could not compare', (_name, amount, kind) => {
      const decision = decide({ serverRules, context: withAmount(amount) });
      expect(decision.effect).toBe(effect);
      expect(decision.rule).toMatchObject({ source: 'server', index: 0, effect });
      expect(decision.reason).toMatch(/^large amounts \(matched because params\.amount could not be compared \(.+, not a number\): fails closed\)$/);
      expect(decision.uncomparable).toEqual([
        { rule: 'server policy rules[0]', effect, outcome: 'matched', expression: 'params.amount > 1000', operand: 'params.amount', kind, expected: 'number' },
      ]);
    });

    it.each([5000, '5000', '5e3'])('still matches %j plainly', (amount) => {
      const decision = decide({ serverRules, context: withAmount(amount) });
      expect(decision).toMatchObject({ effect, reason: 'large amounts', uncomparable: [] });
    });

    it.each([500, '500', undefined])('does not match %j', (amount) => {
      expect(decide({ serverRules, context: withAmount(amount) }).effect).toBe('allow');
    });
  });

  it('the same holds for a request rule', () => {
    const decision = decide({ requestRules: [{ when: 'params.amount > 1000', effect: 'deny' }], context: withAmount('5,000') });
    expect(decision.effect).toBe('deny');
    expect(decision.reason).toBe(
      'denied by request policy.rules[0] (params.amount > 1000) (matched because params.amount could not be compared (text, not a number): fails closed)',
    );
  });

  it('an allow rule never grants on a value it could not compare', () => {
    const serverRules: PolicyRule[] = [{ when: 'params.amount <= 1000', effect: 'allow', reason: 'small amounts are fine' }];
    const decision = decide({ risk: 'critical', serverRules, context: withAmount([5]) });
    expect(decision.effect).toBe('require_approval');
    expect(decision.reason).toBe('risk critical requires approval (threshold: critical)');
    expect(decision.uncomparable).toEqual([
      { rule: 'server policy rules[0]', effect: 'allow', outcome: 'not matched', expression: 'params.amount <= 1000', operand: 'params.amount', kind: 'array', expected: 'number' },
    ]);
    expect(decide({ risk: 'critical', serverRules, context: withAmount(5) }).effect).toBe('allow');
  });

  it('and / or / not: unknown only where it decides the outcome', () => {
    const deny = (when: string) => decide({ serverRules: [{ when, effect: 'deny' }], context: withAmount([5000]) });
    expect(deny('tool == other.tool and params.amount > 1000')).toMatchObject({ effect: 'allow', uncomparable: [] });
    expect(deny('params.amount > 1000 or env == production')).toMatchObject({ effect: 'deny', uncomparable: [] });
    expect(deny('not (params.amount <= 1000)').effect).toBe('deny');
    expect(deny('params.amount > 1000 and env == production').effect).toBe('deny');
  });
});

describe('evaluatePolicy: malformed rules', () => {
  it('names a malformed request rule by its path, even when an earlier rule matched', () => {
    const run = () =>
      decide({
        serverRules: [{ when: 'true', effect: 'deny' }],
        requestRules: [
          { when: 'true', effect: 'deny' },
          { when: 'amount +', effect: 'require_approval' },
        ],
      });
    expect(run).toThrow(ValidationError);
    expect(run).toThrow(/^policy\.rules\[1\]\.when: invalid expression "amount \+": Unexpected "\+" \(arithmetic is not supported\) at character 7$/);
    try {
      run();
    } catch (error) {
      expect((error as ValidationError).details).toMatchObject({ field: 'policy.rules[1].when', position: 7 });
    }
  });

  it('names a malformed server rule', () => {
    const run = () =>
      decide({
        serverRules: [
          { when: 'true', effect: 'allow' },
          { name: 'no calls', when: 'len(x) > 1', effect: 'deny' },
        ],
      });
    expect(run).toThrow('server policy rules[1] "no calls".when: invalid expression "len(x) > 1": function calls are not allowed (len) at character 0');
  });
});

describe('policyRuleSchema', () => {
  it('accepts a full rule', () => {
    const rule = {
      name: 'big refunds',
      when: 'params.amount > 1000',
      effect: 'require_approval',
      intent: 'refund',
      allowed_action: 'refund',
      reason: 'big refund',
      approvals_required: 2,
      on_expire: 'escalate',
      escalate_to: '@finance',
    };
    expect(policyRuleSchema.parse(rule)).toEqual(rule);
  });

  it.each([
    [{ when: 'true' }, 'effect'],
    [{ when: '', effect: 'allow' }, 'when'],
    [{ when: 'true', effect: 'permit' }, 'effect'],
    [{ when: 'true', effect: 'allow', approvals_required: 0 }, 'approvals_required'],
    [{ when: 'true', effect: 'allow', on_expire: 'ignore' }, 'on_expire'],
    [{ when: 'true', effect: 'allow', efect: 'deny' }, ''],
  ])('rejects %j', (rule, field) => {
    const result = policyRuleSchema.safeParse(rule);
    expect(result.success).toBe(false);
    expect(result.error!.issues[0]!.path.join('.')).toBe(field);
  });
});

describe('loadPolicyFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'invoke-policy-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function file(name: string, text: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  }

  it('reads YAML', async () => {
    const path = await file(
      'policy.yaml',
      ['rules:', '  - name: main pushes', '    when: action == git_push and branch == main', '    effect: require_approval', '    escalate_to: [a, b]'].join('\n'),
    );
    expect(await loadPolicyFile(path)).toEqual({
      rules: [{ name: 'main pushes', when: 'action == git_push and branch == main', effect: 'require_approval', escalate_to: ['a', 'b'] }],
    });
  });

  it('reads JSON', async () => {
    const path = await file('policy.json', JSON.stringify({ rules: [{ when: 'env == prod', effect: 'deny' }] }));
    expect((await loadPolicyFile(path)).rules).toEqual([{ when: 'env == prod', effect: 'deny' }]);
  });

  it('reports a when nested too deeply, before parsing it', async () => {
    const when = `${'('.repeat(40)}a == 1${')'.repeat(40)}`;
    const path = await file('deep.yaml', `rules:\n  - when: "${when}"\n    effect: deny\n`);
    await expect(loadPolicyFile(path)).rejects.toThrow(`Policy file ${path} is invalid:\n  - rules[0].when: invalid expression "`);
    await expect(loadPolicyFile(path)).rejects.toThrow('nested deeper than 32 levels of ( and [ at character 32');
  });

  it('reads an empty rule list', async () => {
    expect(await loadPolicyFile(await file('empty.yml', 'rules: []\n'))).toEqual({ rules: [] });
  });

  it('reports schema problems with their path', async () => {
    const path = await file('bad.yaml', 'rules:\n  - when: "true"\n    effect: maybe\n');
    await expect(loadPolicyFile(path)).rejects.toThrow(`Policy file ${path} is invalid:\n  - rules[0].effect:`);
  });

  it('reports a missing rules list', async () => {
    const path = await file('norules.yaml', '# nothing here\n');
    await expect(loadPolicyFile(path)).rejects.toThrow(`Policy file ${path} is invalid:\n  - rules:`);
  });

  it('reports a malformed when expression', async () => {
    const path = await file('badwhen.yaml', 'rules:\n  - when: "ok == 1"\n    effect: allow\n  - when: "a == b && c"\n    effect: deny\n');
    await expect(loadPolicyFile(path)).rejects.toThrow(`Policy file ${path} is invalid:\n  - rules[1].when: invalid expression "a == b && c"`);
  });

  it('reports unparsable JSON and YAML', async () => {
    const json = await file('broken.json', '{"rules": [');
    await expect(loadPolicyFile(json)).rejects.toThrow(`Policy file ${json} is not valid JSON`);
    const yaml = await file('broken.yaml', 'rules: [a, b\n');
    await expect(loadPolicyFile(yaml)).rejects.toThrow(`Policy file ${yaml} is not valid YAML`);
  });

  it('reports a missing file', async () => {
    await expect(loadPolicyFile(join(dir, 'nope.yaml'))).rejects.toThrow(/^Cannot read policy file .*nope\.yaml: ENOENT/);
  });
});
