import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { parse as parseYaml } from 'yaml';
import { Invoke, InvokeAuthError, InvokeForbiddenError, type CallAnswer, type FetchLike, type TraceExportFormat } from '../sdk/index.ts';
import { resolveConnection, saveCredentials } from './credentials.ts';
import { EXIT, EXIT_CODES_HELP, exitCodeFor, messageFor, UsageError } from './exit-codes.ts';
import { pretty, table } from './render.ts';

/** Where the CLI reads and writes: the process in `main.ts`, captured buffers in tests. */
export interface CliIo {
  out(this: void, text: string): void;
  err(this: void, text: string): void;
  env: Record<string, string | undefined>;
  /** The transport for the SDK; default the global fetch. */
  fetch?: FetchLike;
}

interface GlobalFlags {
  json?: boolean;
  baseUrl?: string;
  apiKey?: string;
}

/** Statuses that mean the work is done (a reconciled outcome found it already took effect). */
const DONE = new Set(['executed', 'outcome_reconciled']);
const EXPORT_FORMATS: TraceExportFormat[] = ['json', 'jsonl', 'langsmith', 'helicone'];

function parseJsonParams(text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`The params are not JSON: ${(error as Error).message}. Quote them: '{"key":"value"}'`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError('The params must be a JSON object');
  return parsed as Record<string, unknown>;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number');
  return n;
}

function exitForAnswer(answer: CallAnswer): number {
  if (DONE.has(answer.status)) return EXIT.ok;
  return answer.status === 'pending_approval' || answer.status === 'escalated' ? EXIT.pending : EXIT.failure;
}

function describeAnswer(answer: CallAnswer): string {
  const lines = [`${answer.status}  ${answer.tool}  call ${answer.call_id}  (${answer.attempts} attempt${answer.attempts === 1 ? '' : 's'})`];
  if (answer.reason) lines.push(`reason: ${answer.reason}`);
  if (answer.error) lines.push(`error: ${answer.error}`);
  if (answer.status === 'pending_approval' || answer.status === 'escalated') {
    lines.push(`approval ${answer.approval.id} waits for a human (expires ${answer.approval.expires_at}).`);
    lines.push(`Wait for it: invoke call ${answer.tool} ... --wait, or invoke approvals approve ${answer.approval.id}`);
  }
  if (answer.result !== undefined) lines.push(pretty(answer.result));
  return lines.join('\n');
}

/** The OpenAPI document to send: a URL as is (the server fetches it), a file parsed as JSON or YAML. */
async function openapiSource(source: string): Promise<{ document: unknown; defaultName: string }> {
  if (/^https?:\/\//i.test(source)) return { document: source, defaultName: new URL(source).hostname.split('.')[0] ?? 'api' };
  let text: string;
  try {
    text = await readFile(source, 'utf8');
  } catch (error) {
    throw new UsageError(`Cannot read ${source}: ${(error as Error).message}`);
  }
  let document: unknown;
  try {
    document = /\.json$/i.test(source) ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new UsageError(`${source} is not JSON or YAML: ${(error as Error).message}`);
  }
  const title = (document as { info?: { title?: unknown } } | null)?.info?.title;
  const fromTitle = typeof title === 'string' ? title : path.basename(source).replace(/\.(json|ya?ml)$/i, '');
  return {
    document,
    defaultName:
      fromTitle
        .toLowerCase()
        .replace(/[^a-z0-9]+/g, '-')
        .replace(/^-|-$/g, '') || 'api',
  };
}

/**
 * The `invoke` command line: every command is a thin layer over the SDK. Returns the exit code
 * instead of exiting, so it runs in-process in tests.
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let exitCode: number = EXIT.ok;
  let baseUrl = '';
  const program = new Command('invoke');
  program
    .description('Invoke from the terminal: call tools, decide approvals, read traces.')
    .addHelpText('after', EXIT_CODES_HELP)
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err });

  /** Every command takes the connection flags itself, so they may come after its arguments. */
  const withConnection = (command: Command, serverFlag = '--base-url <url>') =>
    command
      .option('--json', 'print JSON for scripts instead of tables')
      .option(serverFlag, 'the Invoke server (else INVOKE_BASE_URL, else the login file)')
      .option('--api-key <key>', 'the API key (else INVOKE_API_KEY, else the login file)');
  const flagsOf = (command: Command): GlobalFlags => {
    const opts = command.opts<GlobalFlags & { server?: string }>();
    // `wrap openapi` names the server --server: its --base-url is the API's.
    return { json: opts.json, apiKey: opts.apiKey, baseUrl: command.name() === 'openapi' ? opts.server : opts.baseUrl };
  };
  const print = (command: Command, json: unknown, human: () => string) => io.out(`${flagsOf(command).json ? pretty(json) : human()}\n`);

  async function client(command: Command): Promise<Invoke> {
    const flags = flagsOf(command);
    const connection = await resolveConnection(io.env, flags);
    baseUrl = connection.baseUrl;
    if (!connection.apiKey) throw new UsageErrorAuth();
    return new Invoke({ apiKey: connection.apiKey, baseUrl: connection.baseUrl, fetch: io.fetch, agentId: io.env.INVOKE_AGENT_ID || 'invoke-cli', maxRetries: 1 });
  }

  /** Runs one command's body; a thrown error becomes a message and an exit code. */
  const run =
    <A extends unknown[]>(body: (...args: A) => Promise<number | void>) =>
    async (...args: A) => {
      exitCode = (await body(...args)) ?? EXIT.ok;
    };

  withConnection(program.command('login'))
    .description('Check a key against the server and save it (mode 0600) for the next commands')
    .option('--no-verify', 'save without asking the server')
    .action(
      run(async (options: { verify: boolean }, command: Command) => {
        const flags = flagsOf(command);
        const connection = await resolveConnection(io.env, flags);
        baseUrl = connection.baseUrl;
        if (!connection.apiKey) throw new UsageError('Give the key: invoke login --api-key KEY [--base-url URL]');
        if (options.verify) await checkKey(new Invoke({ apiKey: connection.apiKey, baseUrl, fetch: io.fetch, maxRetries: 1 }));
        const file = await saveCredentials(io.env, { base_url: baseUrl, api_key: connection.apiKey });
        print(command, { saved: file, base_url: baseUrl }, () => `Logged in to ${baseUrl}; credentials saved to ${file}`);
      }),
    );

  for (const name of ['status', 'doctor'] as const) {
    withConnection(program.command(name))
      .description(name === 'status' ? 'Server reachable? Key accepted? Where the settings come from' : 'status, plus what this key may do (one probe per scope)')
      .action(
        run(async (_options: unknown, command: Command) => {
          const flags = flagsOf(command);
          const connection = await resolveConnection(io.env, flags);
          baseUrl = connection.baseUrl;
          const checks = await diagnose(connection.baseUrl, connection.apiKey, name === 'doctor', io.fetch);
          print(command, { base_url: connection.baseUrl, key_source: connection.keySource, checks }, () =>
            [`Invoke at ${connection.baseUrl} (key from ${connection.keySource})`, ...checks.map((c) => `${c.ok ? '✓' : '✗'} ${c.name}: ${c.detail}`)].join('\n'),
          );
          const failed = checks.find((c) => !c.ok && c.fatal);
          return failed ? failed.exit : EXIT.ok;
        }),
      );
  }

  withConnection(program.command('tools'))
    .description('The tools this key may see, with their risk')
    .option('-q, --query <text>', 'keep the tools that match (ranked as /discover ranks them)')
    .action(
      run(async (options: { query?: string }, command: Command) => {
        const tools = await (await client(command)).tools.list(options.query);
        print(command, { tools }, () =>
          tools.length === 0
            ? 'No tools.'
            : table(
                ['TOOL', 'RISK', 'SIDE EFFECTS', 'DESCRIPTION'],
                tools.map((t) => [t.key, t.risk, t.side_effects ? 'yes' : 'no', t.description]),
              ),
        );
      }),
    );

  withConnection(program.command('call'))
    .description('Run one tool call through Invoke')
    .argument('<tool>', 'the tool key, e.g. billing.refund')
    .argument('[params]', 'the params as a JSON object', undefined)
    .option('--agent-id <id>', 'who is calling (default INVOKE_AGENT_ID, else invoke-cli)')
    .option('--idempotency-key <key>', 'repeat a call safely (default: a fresh key per run)')
    .option('--wait [seconds]', 'wait for a pending approval, up to seconds (default: as long as it lives)')
    .action(
      run(async (tool: string, params: string | undefined, options: { agentId?: string; idempotencyKey?: string; wait?: boolean | string }, command: Command) => {
        const parsed = parseJsonParams(params);
        const wait = options.wait === undefined || options.wait === false ? false : options.wait === true ? true : positiveNumberOrUsage(options.wait) * 1000;
        const answer = await (await client(command)).call(tool, parsed, { agentId: options.agentId, idempotencyKey: options.idempotencyKey, waitForApproval: wait });
        print(command, answer, () => describeAnswer(answer));
        return exitForAnswer(answer);
      }),
    );

  withConnection(program.command('approvals'))
    .description('List approvals, or approve / reject one')
    .argument('[action]', 'list | approve | reject', 'list')
    .argument('[id]', 'the approval id (approve, reject)')
    .option('--status <status>', 'list: only this status (pending, executed, rejected, ...)')
    .option('--limit <n>', 'list: at most n', positiveNumber)
    .option('--comment <text>', 'approve: a note kept with the decision')
    .option('--reason <text>', 'reject: why (required)')
    .action(
      run(async (action: string, id: string | undefined, options: { status?: string; limit?: number; comment?: string; reason?: string }, command: Command) => {
        if (action === 'list') {
          const approvals = await (await client(command)).approvals.list({ status: options.status as never, limit: options.limit });
          print(command, { approvals }, () =>
            approvals.length === 0
              ? 'No approvals.'
              : table(
                  ['ID', 'STATUS', 'TOOL', 'AGENT', 'RISK', 'EXPIRES', 'REASON'],
                  approvals.map((a) => [a.id, a.status, a.tool, a.agent_id, a.risk, a.expires_at, a.reason]),
                ),
          );
          return;
        }
        if (action !== 'approve' && action !== 'reject') throw new UsageError(`Unknown action ${action}: use list, approve or reject`);
        if (!id) throw new UsageError(`invoke approvals ${action} <id>`);
        const invoke = await client(command);
        if (action === 'reject' && !options.reason) throw new UsageError('A rejection needs --reason');
        const decided =
          action === 'approve' ? await invoke.approvals.approve(id, options.comment ? { comment: options.comment } : {}) : await invoke.approvals.reject(id, options.reason!);
        print(command, decided, () =>
          [`${id}: ${decided.outcome ?? decided.approval.status}`, ...(decided.call ? [`call ${decided.call.call_id}: ${decided.call.status}`] : [])].join('\n'),
        );
      }),
    );

  withConnection(program.command('traces'))
    .description('Recent calls, newest first')
    .option('--tool <tool>', 'only this tool')
    .option('--status <status>', 'only this status')
    .option('--agent-id <id>', 'only this agent')
    .option('--limit <n>', 'at most n (default 20)', positiveNumber, 20)
    .action(
      run(async (options: { tool?: string; status?: string; agentId?: string; limit: number }, command: Command) => {
        const page = await (await client(command)).traces.list({ tool: options.tool, status: options.status, agent_id: options.agentId, limit: options.limit });
        print(command, page, () =>
          page.traces.length === 0
            ? 'No calls.'
            : table(
                ['CALL', 'STATUS', 'TOOL', 'AGENT', 'CREATED'],
                page.traces.map((t) => [t.call_id, t.status, t.tool, t.agent_id, (t as { created_at?: string }).created_at]),
              ),
        );
      }),
    );

  withConnection(program.command('trace'))
    .description('One call: request, answer and every trace event')
    .argument('<call_id>')
    .action(
      run(async (callId: string, _options: unknown, command: Command) => {
        const detail = await (await client(command)).traces.get(callId);
        print(command, detail, () =>
          [
            `${detail.call_id}  ${(detail as { status?: string }).status ?? ''}`,
            table(
              ['AT', 'STEP', 'STATUS'],
              detail.events.map((e) => [e.at, e.step, e.status]),
            ),
          ].join('\n'),
        );
      }),
    );

  withConnection(program.command('export'))
    .description('Stream calls with their traces, as JSON, JSON lines, LangSmith runs or Helicone records')
    .option('--format <format>', EXPORT_FORMATS.join(' | '), 'jsonl')
    .option('--tool <tool>', 'only this tool')
    .option('--status <status>', 'only this status')
    .option('--limit <n>', 'at most n calls', positiveNumber)
    .action(
      run(async (options: { format: string; tool?: string; status?: string; limit?: number }, command: Command) => {
        if (!EXPORT_FORMATS.includes(options.format as TraceExportFormat)) throw new UsageError(`--format must be one of ${EXPORT_FORMATS.join(', ')}`);
        const text = await (
          await client(command)
        ).traces.exportText({ format: options.format as TraceExportFormat, tool: options.tool, status: options.status, limit: options.limit });
        io.out(text.endsWith('\n') ? text : `${text}\n`);
      }),
    );

  const wrap = program.command('wrap').description('Turn an existing API into Invoke tools');
  withConnection(wrap.command('openapi'), '--server <url>')
    .description('Register an OpenAPI document (file: JSON or YAML; or a URL) as a provider')
    .argument('<source>', 'a file path or an http(s) URL')
    .requiredOption('--base-url <url>', 'where the API answers (the tools call it there)')
    .option('--name <name>', 'the provider name (default: from the title)')
    .action(
      run(async (source: string, options: { name?: string }, command: Command) => {
        const { document, defaultName } = await openapiSource(source);
        // `--base-url` here is the API's; the server comes from --server, INVOKE_BASE_URL or the login file.
        const apiBase = command.opts<{ baseUrl: string }>().baseUrl;
        const invoke = await client(command);
        const registered = await invoke.tools.register({ name: options.name ?? defaultName, openapi: document, base_url: apiBase });
        print(command, registered, () => `Registered ${registered.provider}: ${registered.tools.length} tools\n${registered.tools.map((t) => `  ${t.key}`).join('\n')}`);
      }),
    );

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    const code = error instanceof UsageErrorAuth ? EXIT.auth : exitCodeFor(error);
    const message = error instanceof UsageErrorAuth ? error.message : messageFor(error, baseUrl);
    io.err(`${argv.includes('--json') ? pretty({ error: { code: (error as { code?: string }).code ?? 'cli_error', message } }) : `invoke: ${message}`}\n`);
    return code;
  }
}

/** No key anywhere: an authentication problem, not a usage one. */
class UsageErrorAuth extends Error {
  constructor() {
    super('No API key: run `invoke login --api-key KEY`, set INVOKE_API_KEY, or pass --api-key.');
  }
}

function positiveNumberOrUsage(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError('--wait takes a number of seconds');
  return n;
}

/** A key is valid when the server does not answer 401; a 403 only means this probe's scope is missing. */
async function checkKey(invoke: Invoke): Promise<void> {
  try {
    await invoke.tools.list();
  } catch (error) {
    if (!(error instanceof InvokeForbiddenError)) throw error;
  }
}

interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** A failed fatal check sets the exit code. */
  fatal: boolean;
  exit: number;
}

/** The probes of status and doctor, each a read that the named scope allows. */
async function diagnose(baseUrl: string, apiKey: string | undefined, deep: boolean, fetchImpl: FetchLike | undefined): Promise<Check[]> {
  const checks: Check[] = [];
  const probe = new Invoke({ apiKey: apiKey ?? 'none', baseUrl, fetch: fetchImpl, maxRetries: 0, timeoutMs: 5_000 });
  try {
    const health = await probe.health();
    checks.push({ name: 'reachable', ok: true, detail: `store ${health.store} ${health.status}`, fatal: true, exit: EXIT.unreachable });
  } catch (error) {
    checks.push({ name: 'reachable', ok: false, detail: messageFor(error, baseUrl), fatal: true, exit: exitCodeFor(error) === EXIT.auth ? EXIT.unreachable : exitCodeFor(error) });
    return checks;
  }
  if (!apiKey) {
    checks.push({ name: 'key', ok: false, detail: 'no API key (invoke login, INVOKE_API_KEY or --api-key)', fatal: true, exit: EXIT.auth });
    return checks;
  }
  const scopes: Array<[string, () => Promise<unknown>]> = [
    ['tools:read', () => probe.tools.list()],
    ['approvals:read', () => probe.approvals.list({ limit: 1 })],
    ['traces:read', async () => await probe.traces.list({ limit: 1 })],
  ];
  for (const [index, [scope, read]] of scopes.entries()) {
    if (!deep && index > 0) break;
    try {
      await read();
      if (index === 0) checks.push({ name: 'key', ok: true, detail: 'accepted', fatal: true, exit: EXIT.auth });
      if (deep) checks.push({ name: scope, ok: true, detail: 'allowed', fatal: false, exit: EXIT.ok });
    } catch (error) {
      if (error instanceof InvokeAuthError) {
        checks.push({ name: 'key', ok: false, detail: messageFor(error, baseUrl), fatal: true, exit: EXIT.auth });
        return checks;
      }
      if (index === 0) checks.push({ name: 'key', ok: true, detail: 'accepted', fatal: true, exit: EXIT.auth });
      checks.push({ name: scope, ok: false, detail: error instanceof InvokeForbiddenError ? 'not allowed for this key' : messageFor(error, baseUrl), fatal: false, exit: EXIT.ok });
    }
  }
  if (deep) {
    checks.push({
      name: 'slack',
      ok: true,
      detail: 'not visible through the API: approval cards reach Slack when the server has SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET set',
      fatal: false,
      exit: EXIT.ok,
    });
  }
  return checks;
}
