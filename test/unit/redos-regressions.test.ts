import { describe, expect, it } from 'vitest';
import { slackMessageLink } from '../../src/slack/mrkdwn.ts';
import { invokeHttpTool } from '../../src/tools/http-invoker.ts';
import { isForbiddenAddress } from '../../src/tools/ssrf-guard.ts';

/**
 * The inputs recheck found for the regular expressions `npm run check:redos` flagged (issue 9).
 * Each took seconds before (quadratic backtracking); the bound is generous on purpose.
 */
const BOUND_MS = 500;

async function timed<T>(fn: () => T | Promise<T>): Promise<{ result: T; ms: number }> {
  const started = performance.now();
  const result = await fn();
  return { result, ms: performance.now() - started };
}

describe('regular expressions fixed for ReDoS answer at once', () => {
  it('a trailing-slash strip on a Slack team URL of 50,000 slashes', async () => {
    const teamUrl = `https://x.slack.com${'/'.repeat(50_000)}\u0000/`;
    const { result, ms } = await timed(() => slackMessageLink('C1', '1.2', teamUrl));
    expect(result).toBe(`https://x.slack.com${'/'.repeat(50_000)}\u0000/archives/C1/p12`);
    expect(ms).toBeLessThan(BOUND_MS);
    expect(slackMessageLink('C1', '1.2', 'https://x.slack.com///')).toBe('https://x.slack.com/archives/C1/p12');
  });

  it('a trailing-slash strip on a tool base URL of 50,000 slashes', async () => {
    // The host is invalid, so no request leaves: only the URL building is measured.
    const baseUrl = `http://bad host${'/'.repeat(50_000)}x/`;
    const { result, ms } = await timed(() => invokeHttpTool({ method: 'GET', path: '/x' }, baseUrl, {}, 1_000));
    expect(result).toMatchObject({ kind: 'failed', retryable: false, error: expect.stringContaining('invalid tool URL') });
    expect(ms).toBeLessThan(BOUND_MS);
  });

  it('an IPv6 dotted tail on 18,000 repetitions of ":0.0.0.0%"', async () => {
    const { result, ms } = await timed(() => isForbiddenAddress(`${':0.0.0.0%'.repeat(18_258)}\nx`));
    expect(result).toBe('invalid');
    expect(ms).toBeLessThan(BOUND_MS);
    expect(isForbiddenAddress('::ffff:127.0.0.1')).not.toBeNull();
  });
});
