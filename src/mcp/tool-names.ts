/**
 * MCP tool names and capability card keys, both ways.
 *
 * The MCP spec (SEP-986, checked by the SDK's `validateToolName`) allows 1 to 128 characters of
 * `A-Z a-z 0-9 _ - .`, so a card key `provider.tool` is a valid name as it is: agents, traces
 * and Slack cards all say `billing.charge`. A key outside that set (an upstream MCP server's
 * tool name may hold any character) is sent as `_` plus its UTF-8 bytes in base64url, which
 * uses only allowed characters. No card key starts with `_` (provider names start with a letter
 * or digit), so the two forms never collide and every listed name maps back to one key.
 */

const VALID_NAME = /^[A-Za-z0-9._-]{1,128}$/;
const ENCODED_PREFIX = '_';

/** The gateway's own tool: a pending approval's status, and the call's answer once decided. */
export const APPROVAL_STATUS_TOOL = 'invoke.approval_status';

/** The MCP name of a card key; null when even its encoded form would be longer than 128. */
export function mcpToolName(cardKey: string): string | null {
  if (VALID_NAME.test(cardKey) && !cardKey.startsWith(ENCODED_PREFIX)) return cardKey;
  const encoded = ENCODED_PREFIX + Buffer.from(cardKey, 'utf8').toString('base64url');
  return encoded.length <= 128 ? encoded : null;
}

/** The card key an MCP name stands for (the inverse of `mcpToolName`). */
export function cardKeyOf(name: string): string {
  if (!name.startsWith(ENCODED_PREFIX)) return name;
  return Buffer.from(name.slice(ENCODED_PREFIX.length), 'base64url').toString('utf8');
}
