import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import type { Agent } from 'undici';
import {
  assertProviderUrlAllowed,
  assertUrlAllowed,
  createGuardedAgent,
  createGuardedLookup,
  forbiddenRangeFor,
  isForbiddenAddress,
  SSRF_BLOCKED_CODE,
} from '../../src/tools/ssrf-guard.ts';

describe('isForbiddenAddress', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['127.1', 'loopback'],
    ['10.0.0.1', 'private'],
    ['10.255.255.255', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'metadata'],
    ['169.254.1.1', 'linkLocal'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['100.64.0.1', 'carrierGradeNat'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['192.0.2.1', 'reserved'],
    ['240.0.0.1', 'reserved'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'linkLocal'],
    ['fe80::1%eth0', 'linkLocal'],
    ['fc00::1', 'uniqueLocal'],
    ['fd12:3456::1', 'uniqueLocal'],
    ['fd00:ec2::254', 'metadata'],
    ['fd20:ce::254', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['168.63.129.16', 'metadata'],
    ['192.0.0.192', 'metadata'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'reserved'],
    ['[::1]', 'loopback'],
  ])('%s is %s', (ip, range) => {
    expect(isForbiddenAddress(ip)).toBe(range);
  });

  it.each([
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:0:7f00:1', 'loopback'], // rfc6145 translated
    ['64:ff9b::7f00:1', 'loopback'], // NAT64
    ['64:ff9b::a9fe:a9fe', 'metadata'],
    ['2002:c0a8:0101::1', 'private'], // 6to4 of 192.168.1.1
    ['2002:7f00:1::', 'loopback'],
    ['::127.0.0.1', 'loopback'], // IPv4-compatible
    ['::8.8.8.8', 'reserved'], // IPv4-compatible (not mapped), deprecated even when public
    ['::1.2.3.400', 'invalid'],
  ])('embedded IPv4 %s is judged by the IPv4 address (%s)', (ip, range) => {
    expect(isForbiddenAddress(ip)).toBe(range);
  });

  it.each(['8.8.8.8', '1.1.1.1', '93.184.216.34', '2606:4700:4700::1111', '2a00:1450::1', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::1'])('%s is public', (ip) => {
    expect(isForbiddenAddress(ip)).toBeNull();
  });

  it('treats unallocated IPv6 space and garbage as forbidden', () => {
    expect(isForbiddenAddress('4000::1')).toBe('reserved');
    expect(isForbiddenAddress('fec0::1')).not.toBeNull();
    expect(isForbiddenAddress('100::1')).not.toBeNull();
    expect(isForbiddenAddress('not-an-ip')).toBe('invalid');
    expect(isForbiddenAddress('')).toBe('invalid');
  });
});

describe('assertUrlAllowed', () => {
  const blocked = (url: string, allowHosts: string[] = []) => {
    try {
      assertUrlAllowed(new URL(url), allowHosts);
    } catch (err) {
      expect((err as { code?: string }).code).toBe(SSRF_BLOCKED_CODE);
      return (err as Error).message;
    }
    return null;
  };

  it.each([
    ['http://127.0.0.1/', 'loopback'],
    ['http://127.1/', 'loopback'],
    ['http://2130706433/', 'loopback'], // decimal
    ['http://0x7f.1/', 'loopback'], // hex
    ['http://0x7f000001/', 'loopback'],
    ['http://017700000001/', 'loopback'], // octal
    ['http://10.1.2.3:8080/x', 'private'],
    ['http://172.16.5.4/', 'private'],
    ['http://192.168.0.1/', 'private'],
    ['http://169.254.169.254/latest/meta-data/', 'metadata'],
    ['http://0.0.0.0/', 'unspecified'],
    ['http://[::1]/', 'loopback'],
    ['http://[::ffff:127.0.0.1]/', 'loopback'],
    ['http://[::ffff:7f00:1]/', 'loopback'],
    ['http://[fe80::1]/', 'linkLocal'],
    ['http://[fc00::1]/', 'uniqueLocal'],
    ['http://[::]/', 'unspecified'],
    ['https://[fd00:ec2::254]/', 'metadata'],
  ])('refuses %s (%s)', (url, range) => {
    expect(blocked(url)).toContain(range);
  });

  it.each(['file:///etc/passwd', 'ftp://example.com/', 'gopher://example.com/', 'data:text/plain,hi', 'javascript:alert(1)'])('refuses non-http scheme %s', (url) => {
    expect(blocked(url)).toMatch(/scheme .* not allowed/);
  });

  it('refuses credentials in the URL', () => {
    expect(blocked('http://user:pass@example.com/')).toMatch(/credentials/);
    expect(blocked('https://user@example.com/')).toMatch(/credentials/);
  });

  it('leaves host names to the connect-time check and lets public literals through', () => {
    expect(blocked('http://localhost/')).toBeNull();
    expect(blocked('https://example.com/path')).toBeNull();
    expect(blocked('http://8.8.8.8/')).toBeNull();
    expect(blocked('http://[2606:4700:4700::1111]/')).toBeNull();
  });

  it('exempts allow-listed hosts, honouring the port when one is given', () => {
    expect(blocked('http://127.0.0.1:8080/', ['127.0.0.1:8080'])).toBeNull();
    expect(blocked('http://127.0.0.1:8081/', ['127.0.0.1:8080'])).toContain('loopback');
    expect(blocked('http://127.0.0.1:9999/', ['127.0.0.1'])).toBeNull();
    expect(blocked('http://10.0.0.5/', ['10.0.0.5:80'])).toBeNull(); // default port
    expect(blocked('https://10.0.0.5/', ['10.0.0.5:80'])).toContain('private');
    expect(blocked('http://[::1]:8080/', ['[::1]:8080'])).toBeNull();
    expect(blocked('http://[::1]:8080/', ['::1'])).toBeNull();
    // The allow-list does not open other schemes or credentials.
    expect(blocked('ftp://127.0.0.1:8080/', ['127.0.0.1:8080'])).toMatch(/scheme/);
    expect(blocked('http://u:p@127.0.0.1:8080/', ['127.0.0.1:8080'])).toMatch(/credentials/);
  });
});

describe('createGuardedLookup', () => {
  const lookupWith = (addresses: LookupAddress[], options: LookupOptions) =>
    new Promise<{ err: NodeJS.ErrnoException | null; address: unknown; family?: number }>((resolve) => {
      const lookup = createGuardedLookup(async () => addresses);
      lookup('rebind.example', options, (err, address, family) => resolve({ err, address, family }));
    });

  it('refuses when any resolved address is forbidden', async () => {
    const r = await lookupWith(
      [
        { address: '93.184.216.34', family: 4 },
        { address: '10.0.0.7', family: 4 },
      ],
      { all: true },
    );
    expect(r.err?.code).toBe(SSRF_BLOCKED_CODE);
    expect(r.err?.message).toContain('rebind.example');
    expect(r.err?.message).toContain('10.0.0.7');
    expect(r.err?.message).toContain('private');
  });

  it('returns exactly the checked addresses', async () => {
    const addresses = [
      { address: '93.184.216.34', family: 4 },
      { address: '2606:4700::1', family: 6 },
    ];
    expect((await lookupWith(addresses, { all: true })).address).toEqual(addresses);
    const single = await lookupWith(addresses, { family: 6 });
    expect(single).toMatchObject({ err: null, address: '2606:4700::1', family: 6 });
  });
});

describe('createGuardedAgent against a loopback server', () => {
  let server: Server;
  let port: number;
  const agents: Agent[] = [];
  const agent = (allowHosts?: string[]) => {
    const a = createGuardedAgent({ connectTimeoutMs: 2_000, ...(allowHosts ? { allowHosts } : {}) });
    agents.push(a);
    return a;
  };
  const get = async (url: string, dispatcher: Agent) => {
    const res = await request(url, { dispatcher });
    return { status: res.statusCode, text: await res.body.text() };
  };

  beforeAll(async () => {
    server = createServer((_req, res) => res.end('hello'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.close()));
    await new Promise((resolve) => server.close(resolve));
  });

  it('refuses an IP-literal loopback host even without assertUrlAllowed', async () => {
    await expect(get(`http://127.0.0.1:${port}/`, agent())).rejects.toMatchObject({ code: SSRF_BLOCKED_CODE });
  });

  it('refuses a name that resolves to loopback at connect time', async () => {
    const err = await get(`http://localhost:${port}/`, agent()).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: SSRF_BLOCKED_CODE, host: 'localhost', range: 'loopback' });
    expect((err as Error).message).toMatch(/localhost resolves to .* forbidden range \(loopback\)/);
  });

  it('connects to an allow-listed host:port', async () => {
    expect(await get(`http://127.0.0.1:${port}/`, agent([`127.0.0.1:${port}`]))).toEqual({ status: 200, text: 'hello' });
    expect(await get(`http://localhost:${port}/`, agent([`localhost:${port}`]))).toEqual({ status: 200, text: 'hello' });
  });

  it('does not extend an allow-listed entry to other ports or hosts', async () => {
    const a = agent([`127.0.0.1:${port + 1}`]);
    await expect(get(`http://127.0.0.1:${port}/`, a)).rejects.toMatchObject({ code: SSRF_BLOCKED_CODE });
    await expect(get(`http://localhost:${port}/`, agent([`127.0.0.1:${port}`]))).rejects.toMatchObject({
      code: SSRF_BLOCKED_CODE,
    });
  });
});

describe('the provider profile', () => {
  it.each([
    ['169.254.169.254', 'metadata'],
    ['169.254.170.2', 'linkLocal'], // ECS task credentials
    ['169.254.0.1', 'linkLocal'],
    ['fe80::1', 'linkLocal'],
    ['febf::1', 'linkLocal'],
    ['fd00:ec2::254', 'metadata'],
    ['fd20:ce::254', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['168.63.129.16', 'metadata'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:a9fe:a9fe', 'metadata'],
    ['::ffff:169.254.1.1', 'linkLocal'],
    ['64:ff9b::a9fe:a9fe', 'metadata'],
    ['2002:a9fe:a9fe::1', 'metadata'], // 6to4
    ['::169.254.169.254', 'metadata'], // IPv4-compatible
    ['not-an-ip', 'invalid'],
  ])('refuses %s (%s)', (ip, range) => {
    expect(forbiddenRangeFor('provider', ip)).toBe(range);
  });

  it.each(['127.0.0.1', '::1', '10.0.0.1', '172.16.0.1', '192.168.1.1', 'fd12:3456::1', '100.64.0.1', '8.8.8.8', '::ffff:10.0.0.1', '0.0.0.0'])(
    'allows %s (internal services and public addresses)',
    (ip) => {
      expect(forbiddenRangeFor('provider', ip)).toBeNull();
    },
  );

  it('leaves the public profile as strict as before', () => {
    expect(forbiddenRangeFor('public', '127.0.0.1')).toBe('loopback');
    expect(forbiddenRangeFor('public', '10.0.0.1')).toBe('private');
  });

  const providerUrlError = async (url: string, addresses: Record<string, string[]> = {}) => {
    const resolveAll = async (hostname: string) => {
      const found = addresses[hostname];
      if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
      return found.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    };
    try {
      await assertProviderUrlAllowed(new URL(url), resolveAll);
    } catch (err) {
      expect((err as { code?: string }).code).toBe(SSRF_BLOCKED_CODE);
      return (err as Error).message;
    }
    return null;
  };

  it('refuses forbidden literals and metadata names at registration', async () => {
    expect(await providerUrlError('http://169.254.169.254/latest')).toMatch(/169\.254\.169\.254 is in a forbidden range \(metadata\)/);
    expect(await providerUrlError('http://[fe80::1]:8080/')).toMatch(/linkLocal/);
    expect(await providerUrlError('http://[::ffff:a9fe:a9fe]/')).toMatch(/metadata/);
    expect(await providerUrlError('http://metadata.google.internal/')).toBe('metadata.google.internal is a cloud metadata endpoint');
    expect(await providerUrlError('http://Metadata.Google.Internal./')).toMatch(/cloud metadata endpoint/);
  });

  it('refuses a name that resolves to a forbidden address, any of them', async () => {
    expect(await providerUrlError('http://imds.corp/', { 'imds.corp': ['10.0.0.2', '169.254.169.254'] })).toBe(
      'imds.corp resolves to 169.254.169.254 is in a forbidden range (metadata)',
    );
    expect(await providerUrlError('http://v6.corp/', { 'v6.corp': ['fd00:ec2::254'] })).toMatch(/metadata/);
  });

  it('accepts internal names and literals, and names that do not resolve yet', async () => {
    expect(await providerUrlError('http://127.0.0.1:8080/')).toBeNull();
    expect(await providerUrlError('http://[::1]/')).toBeNull();
    expect(await providerUrlError('http://svc.corp/', { 'svc.corp': ['10.1.2.3'] })).toBeNull();
    expect(await providerUrlError('http://later.corp/')).toBeNull();
  });

  it('checks the lookup with the provider profile', async () => {
    const lookup = (addresses: string[]) =>
      new Promise<NodeJS.ErrnoException | null>((resolve) => {
        const guarded = createGuardedLookup(async () => addresses.map((address) => ({ address, family: 4 })), 'provider');
        guarded('svc.corp', { all: true }, (err) => resolve(err));
      });
    expect(await lookup(['10.0.0.7', '127.0.0.1'])).toBeNull();
    expect(await lookup(['169.254.169.254'])).toMatchObject({ code: SSRF_BLOCKED_CODE, message: expect.stringMatching(/metadata/) });
  });
});

describe('createGuardedAgent with the provider profile against a loopback server', () => {
  let server: Server;
  let port: number;
  let hits = 0;
  const addresses = new Map<string, string>();
  const agent = createGuardedAgent({
    profile: 'provider',
    connectTimeoutMs: 2_000,
    resolveAll: async (hostname) => [{ address: addresses.get(hostname) ?? '127.0.0.1', family: 4 }],
  });
  const get = async (url: string) => {
    const res = await request(url, { dispatcher: agent, reset: true });
    return { status: res.statusCode, text: await res.body.text() };
  };

  beforeAll(async () => {
    server = createServer((_req, res) => {
      hits++;
      res.end('hello');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await agent.close();
    await new Promise((resolve) => server.close(resolve));
  });

  it('connects to loopback, by literal and by name', async () => {
    expect(await get(`http://127.0.0.1:${port}/`)).toEqual({ status: 200, text: 'hello' });
    expect(await get(`http://svc.corp:${port}/`)).toEqual({ status: 200, text: 'hello' });
  });

  it('refuses a name once it resolves to the metadata address, without connecting', async () => {
    const before = hits;
    addresses.set('flip.corp', '169.254.169.254');
    const err = await get(`http://flip.corp:${port}/`).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: SSRF_BLOCKED_CODE, host: 'flip.corp', range: 'metadata' });
    expect(hits).toBe(before);
  });

  it('refuses metadata names and link-local literals before any lookup', async () => {
    await expect(get(`http://metadata.google.internal:${port}/`)).rejects.toMatchObject({ code: SSRF_BLOCKED_CODE, range: 'metadata' });
    await expect(get(`http://[fe80::1]:${port}/`)).rejects.toMatchObject({ code: SSRF_BLOCKED_CODE, range: 'linkLocal' });
  });
});
