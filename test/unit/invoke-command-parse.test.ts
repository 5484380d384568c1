import { describe, expect, it } from 'vitest';
import { TRACES_DEFAULT, TRACES_MAX, USAGE, parseInvokeCommand } from '../../src/slack/invoke-command-parse.ts';

const invalid = (text: string): string => {
  const request = parseInvokeCommand(text);
  if (request.command !== 'invalid') throw new Error(`"${text}" parsed as ${request.command}`);
  return request.message;
};

describe('parseInvokeCommand', () => {
  it('lists approvals [mine] in the help', () => {
    expect(USAGE.find(([usage]) => usage === 'approvals [mine]')?.[1]).toContain('with mine, only those you may decide');
  });

  it('reads an empty text and help as help, and any other word as an unknown command', () => {
    expect(parseInvokeCommand('')).toEqual({ command: 'help' });
    expect(parseInvokeCommand('   ')).toEqual({ command: 'help' });
    expect(parseInvokeCommand('HELP')).toEqual({ command: 'help' });
    expect(parseInvokeCommand('frobnicate now')).toEqual({ command: 'unknown', name: 'frobnicate' });
  });

  it('reads traces filters in any order, with defaults and a cap on last', () => {
    expect(parseInvokeCommand('traces')).toEqual({ command: 'traces', query: { last: TRACES_DEFAULT, capped: false } });
    expect(parseInvokeCommand('  traces  status:blocked Agent:ops<&>  tool:billing.wire last:3 ')).toEqual({
      command: 'traces',
      query: { agent: 'ops<&>', tool: 'billing.wire', status: 'blocked', last: 3, capped: false },
    });
    expect(parseInvokeCommand('traces last:500')).toEqual({ command: 'traces', query: { last: TRACES_MAX, capped: true } });
    expect(parseInvokeCommand('traces status:in_flight')).toMatchObject({ query: { status: 'in_flight' } });
  });

  it('explains what is wrong with a traces filter', () => {
    expect(invalid('traces last:abc')).toContain('last:abc is not a number of calls');
    expect(invalid('traces last:0')).toContain('last:0 is not a number of calls');
    expect(invalid('traces last:')).toBe('The filter last: needs a value, as in last:20.');
    expect(invalid('traces agent:')).toBe('The filter agent: needs a value, as in agent:x.');
    expect(invalid('traces status:bogus')).toContain('Unknown status "bogus": use one of executed, blocked');
    expect(invalid('traces color:red')).toContain('Unknown filter "color:red"');
    expect(invalid('traces :x')).toContain('Unknown filter ":x"');
  });

  it('reads one id for trace and approval, and says when there are none or more', () => {
    expect(parseInvokeCommand('trace call_1')).toEqual({ command: 'trace', callId: 'call_1' });
    expect(parseInvokeCommand('Approval apr_1')).toEqual({ command: 'approval', approvalId: 'apr_1' });
    expect(invalid('trace')).toContain('Which call?');
    expect(invalid('trace a b')).toContain('trace takes one call id');
    expect(invalid('approval')).toContain('Which approval?');
    expect(invalid('approval a b')).toContain('approval takes one approval id');
  });

  it('reads a stats window, 24h by default, and refuses anything else', () => {
    expect(parseInvokeCommand('stats')).toEqual({ command: 'stats', window: '24h' });
    expect(parseInvokeCommand('stats 7D')).toEqual({ command: 'stats', window: '7d' });
    expect(invalid('stats 3y')).toBe('Unknown window "3y": use 24h or 7d.');
    expect(invalid('stats 24h 7d')).toContain('at most one window');
    // Names every object has are not windows (`in` would have found them on the prototype).
    expect(invalid('stats constructor')).toBe('Unknown window "constructor": use 24h or 7d.');
    expect(invalid('stats toString')).toContain('Unknown window');
  });

  it('reads approvals with or without mine, and refuses other arguments to approvals and tools', () => {
    expect(parseInvokeCommand('approvals')).toEqual({ command: 'approvals', mine: false });
    expect(parseInvokeCommand('approvals mine')).toEqual({ command: 'approvals', mine: true });
    expect(parseInvokeCommand('  Approvals   MINE ')).toEqual({ command: 'approvals', mine: true });
    expect(parseInvokeCommand('tools')).toEqual({ command: 'tools' });
    expect(invalid('approvals now')).toBe('approvals takes at most one word, mine (only those you may decide); use /invoke approval <id> for one approval.');
    expect(invalid('approvals mine all')).toContain('at most one word, mine');
    expect(invalid('tools all')).toBe('tools takes no arguments.');
  });
});
