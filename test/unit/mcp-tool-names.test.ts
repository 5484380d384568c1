import { describe, expect, it } from 'vitest';
import { cardKeyOf, mcpToolName } from '../../src/mcp/tool-names.ts';

const VALID_MCP_NAME = /^[A-Za-z0-9._-]{1,128}$/;

describe('MCP tool names', () => {
  it('keeps a card key that is already a valid MCP name as it is', () => {
    for (const key of ['billing.charge', 'fetch.url', 'crm.get-contact_v2', 'a.b.c']) {
      expect(mcpToolName(key)).toBe(key);
      expect(cardKeyOf(key)).toBe(key);
    }
  });

  it('encodes any other key into valid characters, and decodes it back to the same key', () => {
    for (const key of ['docs.search files', 'docs.résumé', 'git.push/force', 'x.a,b', '_svc.hidden']) {
      const name = mcpToolName(key);
      expect(name).not.toBeNull();
      expect(name).toMatch(VALID_MCP_NAME);
      expect(name).not.toBe(key);
      expect(cardKeyOf(name!)).toBe(key);
    }
  });

  it('gives distinct keys distinct names', () => {
    const keys = ['a.b', 'a.b c', 'a.b_c', '_a.b', 'a.b-c', 'a.b/c'];
    const names = keys.map(mcpToolName);
    expect(new Set(names).size).toBe(keys.length);
  });

  it('lists no name for a key too long to encode within 128 characters', () => {
    expect(mcpToolName(`p.${'x'.repeat(126)}`)).toHaveLength(128);
    expect(mcpToolName(`p.${'é'.repeat(100)}`)).toBeNull();
  });
});
