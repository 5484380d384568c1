import { describe, expect, it } from 'vitest';
import { STATUS_EMOJI, UNKNOWN_STATUS_EMOJI, compactCodeBlock, escapeMrkdwn, inlineCode, riskEmoji, slackDate, statusEmoji } from '../../src/slack/mrkdwn.ts';
import { APPROVAL_STATUSES, CALL_STATUSES, FINAL_APPROVAL_STATUSES, RISK_LEVELS } from '../../src/vocabulary.ts';

describe('status and risk emoji', () => {
  it('has one emoji for every call status and every approval status', () => {
    for (const status of [...CALL_STATUSES, ...APPROVAL_STATUSES, 'in_flight', 'requeued']) {
      expect(statusEmoji(status), status).toMatch(/^:[a-z_]+:$/);
      expect(statusEmoji(status), status).not.toBe(UNKNOWN_STATUS_EMOJI);
    }
  });

  it('shows a word it does not know with the neutral emoji, never a prototype key', () => {
    expect(statusEmoji('partially_approved')).toBe(UNKNOWN_STATUS_EMOJI);
    expect(statusEmoji('constructor')).toBe(UNKNOWN_STATUS_EMOJI);
    expect(riskEmoji('toString')).toBe(':white_circle:');
  });

  it('gives every risk level its own emoji', () => {
    const emoji = RISK_LEVELS.map(riskEmoji);
    expect(new Set(emoji).size).toBe(RISK_LEVELS.length);
    expect(emoji).not.toContain(':white_circle:');
  });

  it('keeps the pending and approved emoji apart from every final status', () => {
    const finals = new Set(FINAL_APPROVAL_STATUSES.map((s) => STATUS_EMOJI[s]));
    expect(finals.has(STATUS_EMOJI.pending)).toBe(false);
    expect(finals.has(STATUS_EMOJI.approved)).toBe(false);
  });
});

describe('text', () => {
  it('escapes and cuts user text without leaving half an entity', () => {
    expect(escapeMrkdwn('<!channel> & co')).toBe('&lt;!channel&gt; &amp; co');
    const cut = escapeMrkdwn('&&&&&&', 12);
    expect(cut).toBe('&amp;&amp;…');
    expect(cut.length).toBeLessThanOrEqual(12);
  });

  it('writes inline code within its budget, ticks included, with backticks as look-alikes', () => {
    expect(inlineCode('a`b')).toBe('`aˋb`');
    expect(inlineCode('x'.repeat(100), 20)).toHaveLength(20);
  });

  it('writes a one-line code block that user backticks cannot close, within its budget', () => {
    expect(compactCodeBlock('{"a":1}', 100)).toBe('```{"a":1}```');
    const hostile = compactCodeBlock('```<!here>``', 100);
    expect(hostile.slice(3, -3)).not.toContain('``');
    expect(hostile).toContain('&lt;!here&gt;');
    const long = compactCodeBlock('y'.repeat(5000), 600);
    expect(long.length).toBeLessThanOrEqual(600);
    expect(long.endsWith('…```')).toBe(true);
  });

  it('formats a date from a Date or an ISO string the same way', () => {
    const iso = '2026-03-02T14:05:00.000Z';
    expect(slackDate(iso)).toBe(slackDate(new Date(iso)));
    expect(slackDate(iso)).toBe(`<!date^${Date.parse(iso) / 1000}^{date_short_pretty} {time}|${iso}>`);
    expect(slackDate('not a date')).toBe('an unknown time');
  });
});
