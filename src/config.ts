import cron from 'node-cron';
import { z } from 'zod';
import { APPROVAL_THRESHOLDS, RISK_LEVELS, SCOPES, isRiskLevel, type ApprovalThreshold, type RiskLevel, type Scope } from './vocabulary.ts';

/**
 * The one place that reads the environment. `loadConfig(env)` parses it with one zod schema and
 * throws a `ConfigError` listing every bad variable; the result is frozen and injected.
 */

const DURATION = /^(\d+)(ms|s|m|h|d)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "24h", "30m", "45s", "7d", "1500ms" or a bare number of seconds. */
export function parseDuration(text: string): number | null {
  const match = DURATION.exec(text.trim());
  if (!match) return null;
  return Number(match[1]) * UNIT_MS[match[2] ?? 's']!;
}

const duration = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((text, ctx) => {
      const ms = parseDuration(text);
      if (ms === null) {
        ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration like 30s, 15m, 24h or 7d` });
        return z.NEVER;
      }
      return ms;
    });

const csv = z
  .string()
  .default('')
  .transform((text) =>
    text
      .split(',')
      .map((part) => part.trim())
      .filter(Boolean),
  );

/** Drops trailing `chars` (a loop rather than a `+$` pattern, which backtracks on long runs). */
export function trimEnd(text: string, chars: string): string {
  let end = text.length;
  while (end > 0 && chars.includes(text[end - 1]!)) end--;
  return text.slice(0, end);
}

const intFrom = (fallback: number, min: number, max: number) => z.coerce.number().int().min(min).max(max).default(fallback);

export type { Scope };

export const scopedKeySchema = z
  .object({
    name: z.string().optional(),
    scopes: z.array(z.enum(SCOPES)).default([]),
    allowed_tools: z.array(z.string()).optional(),
    read_only: z.boolean().default(false),
    agent_id: z.string().optional(),
    agents: z.array(z.string()).optional(),
    envs: z.array(z.string()).optional(),
    workflows: z.array(z.string()).optional(),
    allowed_actions: z.array(z.string()).optional(),
    resources: z.array(z.string()).optional(),
    approver_id: z.string().optional(),
  })
  .strict();
export type ScopedKeyConfig = z.infer<typeof scopedKeySchema>;

const scopedKeys = z
  .string()
  .default('')
  .transform((text, ctx) => {
    if (!text.trim()) return {};
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `not valid JSON (${(error as Error).message})` });
      return z.NEVER;
    }
    const parsed = z.record(z.string().min(1), scopedKeySchema).safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        ctx.addIssue({ code: 'custom', message: `${issue.path.join('.')}: ${issue.message}` });
      }
      return z.NEVER;
    }
    return parsed.data;
  });

/**
 * Which proxies' X-Forwarded-For to believe, so per-address limits see the client and not the
 * proxy: unset or `false` (none), `true` (any), a hop count, or addresses and CIDR ranges.
 */
const trustProxy = z
  .string()
  .default('false')
  .transform((text): boolean | number | string[] => {
    const trimmed = text.trim();
    if (trimmed === 'true' || trimmed === 'false') return trimmed === 'true';
    if (/^\d+$/.test(trimmed)) return Number(trimmed);
    return trimmed
      .split(',')
      .map((part) => part.trim())
      .filter(Boolean);
  });

/** "24h" for every risk, or per risk: "24h,high=4h,critical=30m". */
const approvalTtl = z
  .string()
  .default('24h')
  .transform((text, ctx) => {
    const ttl: Record<RiskLevel, number> = { low: 86_400_000, medium: 86_400_000, high: 86_400_000, critical: 86_400_000 };
    for (const part of text
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean)) {
      const [left, right] = part.includes('=') ? part.split('=', 2) : [undefined, part];
      const ms = parseDuration(right ?? '');
      if (ms === null || (left !== undefined && !isRiskLevel(left))) {
        ctx.addIssue({ code: 'custom', message: `"${part}" should be a duration or risk=duration (risks: ${RISK_LEVELS.join(', ')})` });
        return z.NEVER;
      }
      if (left === undefined) for (const risk of RISK_LEVELS) ttl[risk] = ms;
      else ttl[left] = ms;
    }
    return ttl;
  });

export const envSchema = z.object({
  HOST: z.string().default('0.0.0.0'),
  PORT: intFrom(8000, 0, 65535),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DATABASE_URL: z.string().url().optional(),
  INVOKE_DATA_DIR: z.string().default('./.invoke/data'),
  INVOKE_API_KEYS: csv,
  TRACE_API_KEYS: csv,
  INVOKE_API_KEY_SCOPES: scopedKeys,
  TRACE_API_KEY_SCOPES: scopedKeys,
  INVOKE_POLICY_FILE: z.string().optional(),
  INVOKE_REQUIRE_APPROVAL_AT: z.enum(APPROVAL_THRESHOLDS).default('critical'),
  FAILURE_POLICY_MAX_RETRIES: intFrom(5, 0, 20),
  INVOKE_RETRY_BASE_MS: intFrom(200, 0, 60_000),
  INVOKE_RETRY_MAX_MS: intFrom(5_000, 0, 300_000),
  INVOKE_IDEMPOTENCY_TTL: duration('24h'),
  INVOKE_CALL_LEASE: duration('60s'),
  INVOKE_APPROVAL_TTL: approvalTtl,
  INVOKE_TOOL_TIMEOUT_MS: intFrom(10_000, 100, 600_000),
  INVOKE_FETCH_MAX_BYTES: intFrom(1_048_576, 1, 104_857_600),
  INVOKE_FETCH_TIMEOUT_MS: intFrom(10_000, 100, 600_000),
  INVOKE_FETCH_ALLOW_HOSTS: csv,
  INVOKE_BODY_LIMIT_BYTES: intFrom(1_048_576, 1024, 104_857_600),
  INVOKE_RATE_LIMIT_WINDOW: duration('1m').refine((ms) => ms >= 1000, 'use at least 1s'),
  INVOKE_RATE_LIMIT_PER_KEY: intFrom(12_000, 0, 100_000_000),
  INVOKE_RATE_LIMIT_PER_ADDRESS: intFrom(24_000, 0, 100_000_000),
  INVOKE_AUTH_FAILURE_LIMIT: intFrom(20, 0, 100_000_000),
  INVOKE_TRUST_PROXY: trustProxy,
  INVOKE_APPROVERS: csv,
  INVOKE_EXECUTION_TOOL: z.string().min(1).max(200).optional(),
  INVOKE_CRITICAL_APPROVALS: intFrom(2, 1, 10),
  INVOKE_APPROVAL_WAIT_MAX: duration('60s'),
  INVOKE_MCP_APPROVAL_WAIT_SECONDS: intFrom(60, 0, 3600),
  INVOKE_CALLBACK_SECRET: z.string().min(16, 'use at least 16 characters').optional(),
  INVOKE_CALLBACK_ALLOWLIST: csv,
  INVOKE_LINK_SECRET: z.string().min(32, 'use at least 32 characters').optional(),
  INVOKE_PUBLIC_URL: z
    .string()
    .url()
    .refine((text) => /^https?:\/\//.test(text), 'use an http:// or https:// address')
    // Review links are this address plus `/approvals/...`: a query or fragment would swallow the path.
    .refine((text) => !text.includes('?'), 'use an address without a query (?...): review links are appended to it')
    .refine((text) => !text.includes('#'), 'use an address without a fragment (#...): review links are appended to it')
    .transform((text) => trimEnd(text, '/'))
    .optional(),
  INVOKE_OUTBOX_INTERVAL_MS: intFrom(2_000, 0, 3_600_000),
  INVOKE_SWEEP_CRON: z
    .string()
    .default('* * * * *')
    .refine((text) => text === 'off' || cron.validate(text), 'not a cron expression (five fields, or six with seconds first), or "off"'),
  INVOKE_APPROVAL_REMIND_AT: z
    .string()
    .default('75%')
    .transform((text, ctx) => {
      const match = /^(\d{1,3}(?:\.\d+)?)%?$/.exec(text.trim());
      const value = match ? Number(match[1]) : NaN;
      if (!(value > 0 && value < 100)) {
        ctx.addIssue({ code: 'custom', message: `"${text}" should be a share of the approval's lifetime between 0 and 100, like 75%` });
        return z.NEVER;
      }
      return value / 100;
    }),
  INVOKE_TRACE_RETENTION: duration('30d'),
  INVOKE_SWEEP_BATCH: intFrom(100, 1, 10_000),
  SLACK_BOT_TOKEN: z.string().optional(),
  SLACK_SIGNING_SECRET: z.string().optional(),
  SLACK_APP_TOKEN: z.string().optional(),
  SLACK_APPROVAL_CHANNEL: z.string().optional(),
  SLACK_APPROVER_IDS: csv,
  SLACK_TRACE_VIEWER_IDS: csv,
  SLACK_API_URL: z.string().url().optional(),
  SLACK_USERGROUP_TTL: duration('5m'),
});

export interface SlackConfig {
  botToken: string;
  /** HTTP mode verifies requests with it; Socket Mode does not need it. */
  signingSecret?: string;
  /** Set: Socket Mode (no public URL needed). */
  appToken?: string;
  approvalChannel: string;
  /** User ids (U…, W…) and user-group ids (S…) allowed to decide. */
  approverIds: readonly string[];
  /** Extra ids allowed to query with /invoke. */
  traceViewerIds: readonly string[];
  /** Web API base URL (an on-premise proxy or a local emulator); Slack's own when unset. */
  apiUrl?: string;
  /** How long members of a user group read from Slack are trusted before they are read again. */
  userGroupTtlMs: number;
}

export type Config = Readonly<{
  host: string;
  port: number;
  logLevel: z.infer<typeof envSchema>['LOG_LEVEL'];
  databaseUrl?: string;
  /** Embedded store directory; `memory://` keeps it in memory (tests). */
  dataDir: string;
  apiKeys: readonly string[];
  scopedKeys: Readonly<Record<string, ScopedKeyConfig>>;
  policyFile?: string;
  requireApprovalAt: ApprovalThreshold;
  maxRetries: number;
  retryBaseMs: number;
  retryMaxMs: number;
  idempotencyTtlMs: number;
  /** Grace beyond a call's own worst-case duration before recovery treats it as interrupted. */
  callLeaseMs: number;
  approvalTtlMs: Readonly<Record<RiskLevel, number>>;
  toolTimeoutMs: number;
  fetchMaxBytes: number;
  fetchTimeoutMs: number;
  fetchAllowHosts: readonly string[];
  bodyLimitBytes: number;
  /** Requests per window; 0 turns a limit off. Counted in memory, per replica. */
  rateLimits: Readonly<{
    windowMs: number;
    perKey: number;
    perAddress: number;
    /** Failed authentications (401) per address before the address is refused until its window ends. */
    authFailuresPerAddress: number;
  }>;
  trustProxy: boolean | number | readonly string[];
  /** Ids allowed to decide approvals through the API; empty: any holder of approvals:write. */
  approvers: readonly string[];
  /** The tool `safe-tool-execution` runs when its input names none (the original's bodies name none). */
  executionTool?: string;
  criticalApprovals: number;
  approvalWaitMaxMs: number;
  /** How long an MCP `tools/call` waits for a pending approval's decision before answering that it waits. */
  mcpApprovalWaitMs: number;
  callbackSecret?: string;
  callbackAllowHosts: readonly string[];
  /**
   * Signs review links and web sessions. Unset: the embedded store keeps a generated one beside
   * its data directory; with DATABASE_URL, review links and the dashboard are off.
   */
  linkSecret?: string;
  /** Where browsers reach this server (no trailing slash): review links are absolute with it, relative without. */
  publicUrl?: string;
  /** How often this process delivers due outbox rows; 0 leaves it to the sweeps. */
  outboxIntervalMs: number;
  /** Unset: Invoke runs without Slack. */
  slack?: SlackConfig;
  /** node-cron expression for the sweeps (seconds allowed); `off` disables the schedule. */
  sweepCron: string;
  /** Share of an approval's lifetime after which one reminder is posted. */
  approvalRemindAt: number;
  traceRetentionMs: number;
  /** Rows one sweep step handles per pass. */
  sweepBatch: number;
}>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Treat empty strings as unset, as shells and .env files produce them.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.') || 'environment'}: ${issue.message}`));
  }
  const e = parsed.data;
  const slack = slackConfigFrom(e);
  return Object.freeze({
    host: e.HOST,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    databaseUrl: e.DATABASE_URL,
    dataDir: e.INVOKE_DATA_DIR,
    apiKeys: [...e.INVOKE_API_KEYS, ...e.TRACE_API_KEYS],
    scopedKeys: { ...e.TRACE_API_KEY_SCOPES, ...e.INVOKE_API_KEY_SCOPES },
    policyFile: e.INVOKE_POLICY_FILE,
    requireApprovalAt: e.INVOKE_REQUIRE_APPROVAL_AT,
    maxRetries: e.FAILURE_POLICY_MAX_RETRIES,
    retryBaseMs: e.INVOKE_RETRY_BASE_MS,
    retryMaxMs: e.INVOKE_RETRY_MAX_MS,
    idempotencyTtlMs: e.INVOKE_IDEMPOTENCY_TTL,
    callLeaseMs: e.INVOKE_CALL_LEASE,
    approvalTtlMs: e.INVOKE_APPROVAL_TTL,
    toolTimeoutMs: e.INVOKE_TOOL_TIMEOUT_MS,
    fetchMaxBytes: e.INVOKE_FETCH_MAX_BYTES,
    fetchTimeoutMs: e.INVOKE_FETCH_TIMEOUT_MS,
    fetchAllowHosts: e.INVOKE_FETCH_ALLOW_HOSTS,
    bodyLimitBytes: e.INVOKE_BODY_LIMIT_BYTES,
    rateLimits: Object.freeze({
      windowMs: e.INVOKE_RATE_LIMIT_WINDOW,
      perKey: e.INVOKE_RATE_LIMIT_PER_KEY,
      perAddress: e.INVOKE_RATE_LIMIT_PER_ADDRESS,
      authFailuresPerAddress: e.INVOKE_AUTH_FAILURE_LIMIT,
    }),
    trustProxy: e.INVOKE_TRUST_PROXY,
    approvers: e.INVOKE_APPROVERS,
    executionTool: e.INVOKE_EXECUTION_TOOL,
    criticalApprovals: e.INVOKE_CRITICAL_APPROVALS,
    approvalWaitMaxMs: e.INVOKE_APPROVAL_WAIT_MAX,
    mcpApprovalWaitMs: e.INVOKE_MCP_APPROVAL_WAIT_SECONDS * 1000,
    callbackSecret: e.INVOKE_CALLBACK_SECRET,
    callbackAllowHosts: e.INVOKE_CALLBACK_ALLOWLIST,
    linkSecret: e.INVOKE_LINK_SECRET,
    publicUrl: e.INVOKE_PUBLIC_URL,
    outboxIntervalMs: e.INVOKE_OUTBOX_INTERVAL_MS,
    slack,
    sweepCron: e.INVOKE_SWEEP_CRON,
    approvalRemindAt: e.INVOKE_APPROVAL_REMIND_AT,
    traceRetentionMs: e.INVOKE_TRACE_RETENTION,
    sweepBatch: e.INVOKE_SWEEP_BATCH,
  });
}

/** Slack is on when a bot token is set; then the rest it needs must be there too. */
function slackConfigFrom(e: z.infer<typeof envSchema>): SlackConfig | undefined {
  if (!e.SLACK_BOT_TOKEN) {
    const stray = (['SLACK_SIGNING_SECRET', 'SLACK_APP_TOKEN', 'SLACK_APPROVAL_CHANNEL'] as const).filter((k) => e[k]);
    if (stray.length > 0) throw new ConfigError([`SLACK_BOT_TOKEN: required when ${stray.join(', ')} is set`]);
    return undefined;
  }
  const problems: string[] = [];
  if (!e.SLACK_APPROVAL_CHANNEL) problems.push('SLACK_APPROVAL_CHANNEL: required with SLACK_BOT_TOKEN (the channel approval cards go to)');
  if (!e.SLACK_SIGNING_SECRET && !e.SLACK_APP_TOKEN) {
    problems.push('SLACK_SIGNING_SECRET: required with SLACK_BOT_TOKEN (or set SLACK_APP_TOKEN for Socket Mode)');
  }
  if (e.SLACK_APPROVER_IDS.length === 0) problems.push('SLACK_APPROVER_IDS: required with SLACK_BOT_TOKEN (who may decide in Slack)');
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    botToken: e.SLACK_BOT_TOKEN,
    signingSecret: e.SLACK_SIGNING_SECRET,
    appToken: e.SLACK_APP_TOKEN,
    approvalChannel: e.SLACK_APPROVAL_CHANNEL!,
    approverIds: e.SLACK_APPROVER_IDS,
    traceViewerIds: e.SLACK_TRACE_VIEWER_IDS,
    apiUrl: e.SLACK_API_URL,
    userGroupTtlMs: e.SLACK_USERGROUP_TTL,
  };
}
