import { describe, expect, it } from 'vitest';
import { assertAmongDeciders, decidersOf, resolveRouting, routingOf, type GroupDirectory } from '../../src/approvals/routing.ts';
import { loadConfig } from '../../src/config.ts';
import type { MatchedRule } from '../../src/policy/policy.ts';
import type { CapabilityCard } from '../../src/tools/types.ts';

const config = loadConfig({
  INVOKE_DATA_DIR: 'memory://',
  INVOKE_APPROVERS: 'api-lead',
  SLACK_BOT_TOKEN: 'xoxb',
  SLACK_SIGNING_SECRET: 's',
  SLACK_APPROVAL_CHANNEL: 'C0DEFAULT',
  SLACK_APPROVER_IDS: 'UALICE,S0LEADS',
});

const card = (extra: Partial<CapabilityCard> = {}): CapabilityCard => ({
  key: 'billing.charge',
  provider: 'billing',
  name: 'charge',
  description: '',
  input_schema: { type: 'object' },
  risk: 'high',
  side_effects: true,
  idempotent: false,
  timeout_ms: 1000,
  transport: 'http',
  ...extra,
});

const rule = (source: 'server' | 'request', extra: Partial<MatchedRule> = {}): MatchedRule => ({ when: 'true', effect: 'require_approval', source, index: 0, ...extra });

const groups = (members: Record<string, string[] | null>): GroupDirectory => ({
  membersOf: async (id) => {
    const known = members[id];
    return known ? new Set(known) : null;
  },
});

describe('resolveRouting', () => {
  it('takes the freezing server rule over the card over the global lists, field by field', () => {
    expect(resolveRouting(config, card(), null)).toEqual({ entries: null, chain: [] });
    const routed = card({ approvers: ['S0FIN'], channel: '#finance', escalate_to: [{ approvers: ['UCFO'], after_seconds: 60 }] });
    expect(resolveRouting(config, routed, null)).toEqual({ entries: ['S0FIN', '#finance'], chain: [{ approvers: ['UCFO'], after_seconds: 60 }] });
    expect(resolveRouting(config, routed, rule('server', { approvers: ['ULEAD'] })).entries).toEqual(['ULEAD', '#finance']);
    const chain = [{ approvers: ['UCEO'], channel: '#exec', after_seconds: 30 }];
    expect(resolveRouting(config, routed, rule('server', { channel: '#treasury', escalate_to: chain }))).toEqual({ entries: ['S0FIN', '#treasury'], chain });
    // A single-step escalate_to is no chain: the card's stays.
    expect(resolveRouting(config, routed, rule('server', { escalate_to: ['UBOSS'] })).chain).toEqual(routed.escalate_to);
  });

  it('lets a request rule narrow to listed approvers and repeat the chosen channel, nothing more', () => {
    expect(resolveRouting(config, card(), rule('request', { approvers: ['UALICE'] })).entries).toEqual(['UALICE']);
    expect(resolveRouting(config, card(), rule('request', { approvers: ['api-lead'], channel: 'C0DEFAULT' })).entries).toEqual(['api-lead']);
    expect(() => resolveRouting(config, card(), rule('request', { approvers: ['UMALLORY'] }))).toThrow(/UMALLORY/);
    expect(() => resolveRouting(config, card(), rule('request', { channel: '#random' }))).toThrow(/channel/);
    const routed = card({ approvers: ['S0FIN', 'fin-bot'], channel: '#finance' });
    expect(resolveRouting(config, routed, rule('request', { approvers: ['fin-bot'] })).entries).toEqual(['fin-bot', '#finance']);
    // Listed globally, but not by the card: a stranger to this tool.
    expect(() => resolveRouting(config, routed, rule('request', { approvers: ['UALICE'] }))).toThrow(/UALICE/);
    expect(() => resolveRouting(config, routed, rule('request', { channel: 'C0DEFAULT' }))).toThrow(/channel/);
  });
});

describe('who decides', () => {
  it('is the routing when it names approvers, else the door’s global list (none for the API: anyone)', () => {
    expect(routingOf(['S0FIN', 'fin-bot', '#finance'])).toEqual({ approvers: ['S0FIN', 'fin-bot'], channel: '#finance' });
    expect(decidersOf(config, ['S0FIN', '#finance'], 'api')).toEqual(['S0FIN']);
    expect(decidersOf(config, ['#finance'], 'slack')).toEqual(['UALICE', 'S0LEADS']);
    expect(decidersOf(config, null, 'api')).toEqual(['api-lead']);
    expect(decidersOf({ ...config, approvers: [] }, null, 'api')).toBeNull();
  });

  it('admits named people and members of named groups; an unknown group admits nobody', async () => {
    const directory = groups({ S0FIN: ['UFIONA'], S0GONE: null });
    await expect(assertAmongDeciders(config, directory, ['S0FIN'], 'UFIONA', 'slack')).resolves.toBeUndefined();
    await expect(assertAmongDeciders(config, directory, ['fin-bot'], 'fin-bot', 'api')).resolves.toBeUndefined();
    await expect(assertAmongDeciders(config, directory, ['S0FIN'], 'UALICE', 'slack')).rejects.toMatchObject({ statusCode: 403, code: 'not_an_approver' });
    await expect(assertAmongDeciders(config, directory, ['S0GONE'], 'UFIONA', 'slack')).rejects.toMatchObject({
      code: 'not_an_approver',
      details: { unresolved_groups: ['S0GONE'] },
    });
  });
});
