import { describe, expect, it } from 'vitest';
import { checkRegex, failsCheck, findRegexes } from '../../scripts/check-redos.ts';

const SOURCE = `
const a = /^(a+)+$/;
const b = new RegExp('^\\\\d+$', 'g');
const c = RegExp(\`x*y\`);
// redos-checked: reviewed by hand, inputs are capped at 10 characters
const d = /(?<=a)b/u;
const e = new RegExp(userInput);
// const commented = /not code/;
const f = 'a string /that looks like/ a regex';
const g = width / 2 / 3;
`;

describe('check-redos: finding regular expressions with the TypeScript parser', () => {
  const { found, dynamic } = findRegexes('sample.ts', SOURCE);

  it('finds literals and RegExp calls with literal patterns, with their lines and flags', () => {
    expect(found.map(({ line, source, flags }) => ({ line, source, flags }))).toEqual([
      { line: 2, source: '^(a+)+$', flags: '' },
      { line: 3, source: '^\\d+$', flags: 'g' },
      { line: 4, source: 'x*y', flags: '' },
      { line: 6, source: '(?<=a)b', flags: 'u' },
    ]);
  });

  it('reads the review note on the line above', () => {
    expect(found[3]!.reviewed).toBe('reviewed by hand, inputs are capped at 10 characters');
    expect(found[0]).not.toHaveProperty('reviewed');
  });

  it('lists a RegExp built from a variable as not checkable', () => {
    expect(dynamic).toEqual([{ file: 'sample.ts', line: 7, text: 'new RegExp(userInput)' }]);
  });
});

describe('check-redos: verdicts from recheck', () => {
  it('flags a known-vulnerable pattern', async () => {
    const result = await checkRegex('^(a+)+$', '');
    expect(result.verdict).toBe('vulnerable');
    expect(result.detail).toContain('exponential');
  });

  it('flags the quadratic number pattern issue 9 found', async () => {
    const result = await checkRegex('^\\s*[-+]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][-+]?\\d+)?\\s*$', '');
    expect(result.verdict).toBe('vulnerable');
    expect(result.detail).toContain('polynomial');
  });

  it('passes a safe pattern', async () => {
    expect(await checkRegex('^[a-z]+\\d*$', '')).toEqual({ verdict: 'safe', detail: 'linear' });
  });

  it('fails vulnerable always, unknown only without a review note', () => {
    const base = { file: 'x.ts', line: 1, source: 'a', flags: '', detail: '' };
    expect(failsCheck({ ...base, verdict: 'vulnerable', reviewed: 'looked at it' })).toBe(true);
    expect(failsCheck({ ...base, verdict: 'unknown' })).toBe(true);
    expect(failsCheck({ ...base, verdict: 'unknown', reviewed: 'looked at it' })).toBe(false);
    expect(failsCheck({ ...base, verdict: 'safe' })).toBe(false);
  });
});
