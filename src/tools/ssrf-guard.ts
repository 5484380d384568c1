/**
 * SSRF guard for outbound HTTP: the `fetch.url` tool and callbacks (profile `public`), and
 * registered HTTP and MCP providers (profile `provider`).
 *
 * - `public`: only public unicast addresses. The URL comes from an agent or a caller.
 * - `provider`: admins register providers for internal services, so loopback and private
 *   ranges are fine; link-local and cloud metadata addresses never are (instance credentials
 *   live there, and no legitimate tool does).
 *
 * Two checks, because either alone is bypassable:
 * - `assertUrlAllowed` before each request (and each redirect hop): scheme, credentials, and
 *   IP-literal hosts, which Node's `net.connect` never passes through a lookup function.
 * - `createGuardedAgent` at connect time: host names are resolved once, every resolved address
 *   is checked, and the socket connects to exactly those addresses. Checking a name and then
 *   letting the socket resolve it again would leave a DNS-rebinding window.
 */
import dns from 'node:dns';
import { isIP } from 'node:net';
import type { LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { Agent, buildConnector } from 'undici';

export const SSRF_BLOCKED_CODE = 'ESSRF_BLOCKED';

export class SsrfBlockedError extends Error {
  readonly code = SSRF_BLOCKED_CODE;
  constructor(
    message: string,
    readonly host: string,
    readonly address?: string,
    readonly range?: string,
  ) {
    super(message);
    this.name = 'SsrfBlockedError';
  }
}

export function isSsrfBlockedError(err: unknown): err is SsrfBlockedError {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === SSRF_BLOCKED_CODE;
}

export type AddressProfile = 'public' | 'provider';

// Cloud metadata endpoints get their own name so logs and errors say what was attempted. Some
// sit outside link-local space (private, CGNAT or even public ranges), so a range check alone
// would let the provider profile reach them.
const METADATA_V4 = [
  '169.254.169.254', // AWS, GCP, Azure, OCI, DigitalOcean, OpenStack
  '100.100.100.200', // Alibaba Cloud
  '168.63.129.16', // Azure WireServer
  '192.0.0.192', // Oracle Cloud (classic)
].map((ip) => ipaddr.IPv4.parse(ip));
const METADATA_V6 = [
  'fd00:ec2::254', // AWS IMDS over IPv6
  'fd20:ce::254', // GCP metadata server over IPv6
].map((ip) => ipaddr.IPv6.parse(ip));
/** Names of metadata endpoints: refused even where they do not resolve (yet). */
const METADATA_HOSTS: ReadonlySet<string> = new Set(['metadata.google.internal', 'metadata.goog', 'instance-data.ec2.internal', 'metadata.tencentyun.com']);
/** What the provider profile refuses: never a legitimate internal service. */
const PROVIDER_FORBIDDEN: ReadonlySet<string> = new Set(['metadata', 'linkLocal', 'invalid']);
const GLOBAL_UNICAST_V6: [ipaddr.IPv6, number] = [ipaddr.IPv6.parse('2000::'), 3];
const NAT64_WELL_KNOWN: [ipaddr.IPv6, number] = [ipaddr.IPv6.parse('64:ff9b::'), 96];
const IPV4_COMPATIBLE: [ipaddr.IPv6, number] = [ipaddr.IPv6.parse('::'), 96];

function v4FromParts(high: number, low: number): ipaddr.IPv4 {
  return new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]);
}

function classifyV4(addr: ipaddr.IPv4): string | null {
  if (METADATA_V4.some((m) => addr.match(m, 32))) return 'metadata';
  const range = addr.range();
  return range === 'unicast' ? null : range;
}

function classifyV6(addr: ipaddr.IPv6): string | null {
  if (METADATA_V6.some((m) => addr.match(m, 128))) return 'metadata';
  const range = addr.range();
  const p = addr.parts;
  // Forms that carry an IPv4 address the packet may end up at: judge by that address.
  if (range === 'ipv4Mapped' || range === 'rfc6145' || addr.match(NAT64_WELL_KNOWN)) {
    return classifyV4(v4FromParts(p[6] ?? 0, p[7] ?? 0));
  }
  if (range === '6to4') {
    return classifyV4(v4FromParts(p[1] ?? 0, p[2] ?? 0));
  }
  if (range === 'unicast' || range === ('global' as string)) {
    // IPv4-compatible (::a.b.c.d, deprecated): never legitimately reachable, but name the
    // embedded range when it is a forbidden one so the error is readable.
    if (addr.match(IPV4_COMPATIBLE)) {
      return classifyV4(v4FromParts(p[6] ?? 0, p[7] ?? 0)) ?? 'reserved';
    }
    // ipaddr.js calls every unlisted address 'unicast'; only 2000::/3 is allocated for it.
    return addr.match(GLOBAL_UNICAST_V6) ? null : 'reserved';
  }
  return range;
}

/**
 * Rewrites an IPv6 address's dotted IPv4 tail as two hex groups. ipaddr.js reads `::a.b.c.d`
 * as IPv4-mapped (`::ffff:a.b.c.d`), which is not the address the OS would connect to.
 */
function expandDottedTail(v6: string): string | null {
  const m = /^([^%]*:)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(%.*)?$/.exec(v6);
  if (!m) return v6;
  const [, head = '', ...rest] = m;
  const octets = rest.slice(0, 4).map(Number);
  if (octets.some((o) => o > 255)) return null;
  const [a = 0, b = 0, c = 0, d = 0] = octets;
  return `${head}${((a << 8) + b).toString(16)}:${((c << 8) + d).toString(16)}${rest[4] ?? ''}`;
}

/**
 * The name of the forbidden range `ip` falls in, or null when it is a public unicast address.
 * Anything that does not parse as an IP address is forbidden ('invalid'): fail closed.
 */
export function isForbiddenAddress(ip: string): string | null {
  let text: string | null = ip.trim();
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  if (text.includes(':')) text = expandDottedTail(text);
  if (text === null || !ipaddr.isValid(text)) return 'invalid';
  const addr = ipaddr.parse(text);
  return addr.kind() === 'ipv4' ? classifyV4(addr as ipaddr.IPv4) : classifyV6(addr as ipaddr.IPv6);
}

/** The forbidden range `ip` falls in under `profile`, or null when the profile may reach it. */
export function forbiddenRangeFor(profile: AddressProfile, ip: string): string | null {
  const range = isForbiddenAddress(ip);
  if (profile === 'public' || range === null) return range;
  return PROVIDER_FORBIDDEN.has(range) ? range : null;
}

// ---------------------------------------------------------------------------------------------
// Allow-list

interface AllowEntry {
  host: string;
  /** undefined: any port */
  port?: number;
}

function normaliseHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  if (ipaddr.isValid(h)) return ipaddr.parse(h).toString();
  return h;
}

function parseAllowEntry(entry: string): AllowEntry {
  const e = entry.trim();
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(e);
  if (bracketed) {
    const [, host = '', port] = bracketed;
    return port === undefined ? { host: normaliseHost(host) } : { host: normaliseHost(host), port: Number(port) };
  }
  const colons = e.split(':').length - 1;
  if (colons === 1) {
    const [host = '', port = ''] = e.split(':');
    if (!/^\d+$/.test(port)) throw new Error(`invalid allowHosts entry: ${entry}`);
    return { host: normaliseHost(host), port: Number(port) };
  }
  // No colon: a host; several colons without brackets: a bare IPv6 address.
  return { host: normaliseHost(e) };
}

function defaultPort(protocol: string): number {
  return protocol === 'https:' ? 443 : 80;
}

/** Compiles `host` / `host:port` entries into a predicate over (hostname, protocol, port). */
function compileAllowList(allowHosts: readonly string[] | undefined) {
  const entries = (allowHosts ?? []).map(parseAllowEntry);
  return (hostname: string, protocol: string, port: string | number | undefined): boolean => {
    if (entries.length === 0) return false;
    const host = normaliseHost(hostname);
    const effectivePort = port === undefined || port === '' ? defaultPort(protocol) : Number(port);
    return entries.some((e) => e.host === host && (e.port === undefined || e.port === effectivePort));
  };
}

// ---------------------------------------------------------------------------------------------
// URL check (before connecting)

function blockedAddress(host: string, address: string, range: string): SsrfBlockedError {
  const shown = address === host ? `address ${address}` : `${host} resolves to ${address}`;
  return new SsrfBlockedError(`${shown} is in a forbidden range (${range})`, host, address, range);
}

function isMetadataHost(host: string): boolean {
  return METADATA_HOSTS.has(normaliseHost(host));
}

function blockedMetadataHost(host: string): SsrfBlockedError {
  return new SsrfBlockedError(`${host} is a cloud metadata endpoint`, host, undefined, 'metadata');
}

/** The SsrfBlockedError somewhere in an error's cause chain (undici and fetch wrap it). */
export function findSsrfBlocked(err: unknown, depth = 0): SsrfBlockedError | undefined {
  if (isSsrfBlockedError(err)) return err;
  if (typeof err !== 'object' || err === null || depth > 8) return undefined;
  const { cause, errors } = err as { cause?: unknown; errors?: unknown };
  const inCause = findSsrfBlocked(cause, depth + 1);
  if (inCause) return inCause;
  return Array.isArray(errors) ? errors.map((e) => findSsrfBlocked(e, depth + 1)).find(Boolean) : undefined;
}

/**
 * Throws SsrfBlockedError unless `url` is an http(s) URL without credentials whose host, when
 * it is an IP literal, is public (or allow-listed). Host names are checked at connect time.
 */
export function assertUrlAllowed(url: URL, allowHosts: readonly string[] = []): void {
  const host = url.hostname;
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new SsrfBlockedError(`scheme ${url.protocol} is not allowed (only http: and https:)`, host);
  }
  if (url.username !== '' || url.password !== '') {
    throw new SsrfBlockedError('credentials in the URL are not allowed', host);
  }
  if (host === '') throw new SsrfBlockedError('URL has no host', host);
  if (compileAllowList(allowHosts)(host, url.protocol, url.port)) return;
  const literal = host.startsWith('[') ? host.slice(1, -1) : host;
  if (isIP(literal) !== 0) {
    const range = isForbiddenAddress(literal);
    if (range !== null) throw blockedAddress(host, literal, range);
  }
}

const REGISTRATION_LOOKUP_MS = 5_000;

/**
 * The registration-time check of a provider URL: metadata host names, forbidden literals, and
 * host names that resolve now to a forbidden address. A name that does not resolve (yet) passes:
 * the connect-time guard judges whatever it resolves to when the provider is called.
 */
export async function assertProviderUrlAllowed(url: URL, resolveAll: ResolveAll = resolveWithSystem): Promise<void> {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (isMetadataHost(host)) throw blockedMetadataHost(host);
  if (isIP(host) !== 0) {
    const range = forbiddenRangeFor('provider', host);
    if (range !== null) throw blockedAddress(host, host, range);
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<[]>((resolve) => (timer = setTimeout(() => resolve([]), REGISTRATION_LOOKUP_MS)));
  const addresses = await Promise.race([resolveAll(host, undefined).catch(() => []), gaveUp]).finally(() => clearTimeout(timer));
  for (const a of addresses) {
    const range = forbiddenRangeFor('provider', a.address);
    if (range !== null) throw blockedAddress(host, a.address, range);
  }
}

// ---------------------------------------------------------------------------------------------
// Connect-time check

/** Resolves a host name to all its addresses (system DNS by default; tests steer it). */
export type ResolveAll = (hostname: string, hints: number | undefined) => Promise<dns.LookupAddress[]>;

const resolveWithSystem: ResolveAll = (hostname, hints) => dns.promises.lookup(hostname, { all: true, ...(hints === undefined ? {} : { hints }) });

/**
 * A `net.connect` lookup that resolves once, refuses if any resolved address is forbidden,
 * and hands the socket exactly the addresses it checked.
 */
export function createGuardedLookup(resolveAll: ResolveAll = resolveWithSystem, profile: AddressProfile = 'public'): LookupFunction {
  return (hostname, options, callback) => {
    resolveAll(hostname, options.hints).then(
      (addresses) => {
        for (const a of addresses) {
          const range = forbiddenRangeFor(profile, a.address);
          if (range !== null) {
            callback(blockedAddress(hostname, a.address, range), '', 0);
            return;
          }
        }
        const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : (options.family ?? 0);
        const usable = family === 0 ? addresses : addresses.filter((a) => a.family === family);
        const first = usable[0];
        if (first === undefined) {
          const err: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
          err.code = 'ENOTFOUND';
          callback(err, '', 0);
          return;
        }
        // With autoSelectFamily (Node's default) net asks for all addresses.
        if (options.all === true) callback(null, usable);
        else callback(null, first.address, first.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, '', 0),
    );
  };
}

export interface GuardedAgentOptions {
  /** `host` or `host:port` entries exempt from the guard (internal services the operator trusts). */
  allowHosts?: string[];
  connectTimeoutMs: number;
  /** Which addresses connections may reach; `public` when absent. */
  profile?: AddressProfile;
  resolveAll?: ResolveAll;
  headersTimeout?: number;
  bodyTimeout?: number;
}

/**
 * An undici Agent whose connections refuse forbidden addresses: IP-literal hosts are checked
 * before connecting, host names through the guarded lookup. Allow-listed hosts connect normally.
 */
export function createGuardedAgent(opts: GuardedAgentOptions): Agent {
  const profile = opts.profile ?? 'public';
  const isAllowed = compileAllowList(opts.allowHosts);
  const guarded = buildConnector({ timeout: opts.connectTimeoutMs, lookup: createGuardedLookup(opts.resolveAll, profile) });
  const plain = buildConnector({ timeout: opts.connectTimeoutMs });
  const connect: buildConnector.connector = (options, callback) => {
    if (isAllowed(options.hostname, options.protocol, options.port)) {
      plain(options, callback);
      return;
    }
    if (isMetadataHost(options.hostname)) {
      callback(blockedMetadataHost(options.hostname), null);
      return;
    }
    const range = isIP(options.hostname) !== 0 ? forbiddenRangeFor(profile, options.hostname) : null;
    if (range !== null) {
      callback(blockedAddress(options.hostname, options.hostname, range), null);
      return;
    }
    guarded(options, callback);
  };
  const timeouts = {
    ...(opts.headersTimeout === undefined ? {} : { headersTimeout: opts.headersTimeout }),
    ...(opts.bodyTimeout === undefined ? {} : { bodyTimeout: opts.bodyTimeout }),
  };
  return new Agent({ connect, ...timeouts });
}
