import type { SlackMessage } from './card-types.ts';
import { ELLIPSIS, SLACK_LIMITS, escapeMrkdwn } from './mrkdwn.ts';

type Block = Record<string, unknown>;

/**
 * Text budget of a whole message. The blocks' JSON adds keys and quoting around the text, so the
 * text stays this far under the total limit (`SLACK_LIMITS.totalChars`).
 */
const TEXT_BUDGET = SLACK_LIMITS.totalChars - 1_000;

function section(text: string): Block {
  return { type: 'section', text: { type: 'mrkdwn', text } };
}

/**
 * A message from parts: every list of lines is packed into as few sections as fit (3000 characters
 * each), within 50 blocks and a total text budget; lines that do not fit are counted in a final
 * "… N more" line instead of being dropped silently. Parts are mrkdwn the caller escaped.
 */
export class MessageBuilder {
  private readonly blocks: Block[] = [];
  private used = 0;
  private readonly fallback: string;

  /** `fallback` is plain text (Slack parses the top-level text as mrkdwn too, so it is escaped). */
  constructor(fallback: string) {
    this.fallback = escapeMrkdwn(fallback, 1000);
  }

  section(text: string): this {
    return this.lines([text]);
  }

  context(text: string): this {
    if (this.blocks.length < SLACK_LIMITS.blocks && this.used + text.length <= TEXT_BUDGET + 500) {
      this.blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: text.slice(0, SLACK_LIMITS.sectionText) }] });
      this.used += text.length;
    }
    return this;
  }

  divider(): this {
    if (this.blocks.length < SLACK_LIMITS.blocks - 1) this.blocks.push({ type: 'divider' });
    return this;
  }

  lines(lines: string[]): this {
    const more = (n: number) => `${ELLIPSIS} and ${n} more not shown`;
    const reserve = more(lines.length).length + 1;
    let current: string[] = [];
    let length = 0;
    const flush = () => {
      if (current.length === 0) return;
      const text = current.join('\n');
      this.blocks.push(section(text));
      this.used += text.length;
      current = [];
      length = 0;
    };
    for (let i = 0; i < lines.length; i++) {
      // Builders keep each line short; this only guards a pathological one.
      const line = (lines[i] ?? '').slice(0, SLACK_LIMITS.sectionText - reserve - 1);
      const need = line.length + 1 + (i < lines.length - 1 ? reserve : 0);
      // One block is kept free for a closing context.
      const blocksAfter = this.blocks.length + (current.length > 0 ? 2 : 1);
      if (length + need > SLACK_LIMITS.sectionText && current.length > 0 && blocksAfter <= SLACK_LIMITS.blocks - 1) flush();
      if (length + need <= SLACK_LIMITS.sectionText && this.used + length + need <= TEXT_BUDGET && this.blocks.length < SLACK_LIMITS.blocks - 1) {
        current.push(line);
        length += line.length + 1;
        continue;
      }
      current.push(more(lines.length - i));
      break;
    }
    if (this.blocks.length < SLACK_LIMITS.blocks) flush();
    return this;
  }

  build(): SlackMessage {
    return { text: this.fallback, blocks: this.blocks.slice(0, SLACK_LIMITS.blocks) };
  }
}
