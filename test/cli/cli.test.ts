import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliIo } from '../../src/cli/program.ts';
import { ADMIN_KEY, BOB_KEY, READER_KEY, startSdkServer, type SdkServer } from '../helpers/sdk-server.ts';

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/**
 * The CLI in-process: `runCli` with argv and captured output, against the listening server over
 * real HTTP (the spawned executable is covered in cli-process.test.ts).
 */
describe('the invoke CLI', () => {
  let server: SdkServer;
  const home = mkdtempSync(path.join(tmpdir(), 'invoke-cli-'));

  async function cli(argv: string[], key = ADMIN_KEY, extra: Partial<CliIo> = {}) {
    let stdout = '';
    let stderr = '';
    const code = await runCli(argv, {
      out: (text) => (stdout += text),
      err: (text) => (stderr += text),
      env: { INVOKE_HOME: home, INVOKE_BASE_URL: server.url, INVOKE_API_KEY: key },
      ...extra,
    });
    return { code, stdout, stderr };
  }

  beforeAll(async () => {
    server = await startSdkServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it('lists tools as a table, and as JSON with --json', async () => {
    const human = await cli(['tools']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^TOOL\s+RISK\s+SIDE EFFECTS\s+DESCRIPTION/);
    expect(human.stdout).toMatch(/billing\.refund\s+high\s+yes\s+Refund a payment/);
    const json = await cli(['tools', '--query', 'refund', '--json']);
    expect(JSON.parse(json.stdout).tools.map((t: { key: string }) => t.key)).toContain('billing.refund');
  });

  it('call: 0 when executed, 3 when pending, 2 for params that are not JSON', async () => {
    const ok = await cli(['call', 'billing.lookup', '{"customer_id":"cust_cli"}', '--json']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ status: 'executed', result: { customer_id: 'cust_cli' }, agent_id: 'invoke-cli' });

    const pending = await cli(['call', 'billing.refund', '{"payment_id":"pay_cli"}', '--agent-id', 'cli-agent']);
    expect(pending.code).toBe(3);
    expect(pending.stdout).toMatch(/^pending_approval {2}billing\.refund/);
    const approvalId = /approval (apr_\w+) waits/.exec(pending.stdout)![1]!;

    const list = await cli(['approvals', '--status', 'pending'], BOB_KEY);
    expect(list.stdout).toContain(approvalId);
    const rejected = await cli(['approvals', 'reject', approvalId, '--reason', 'not from the CLI test'], BOB_KEY);
    expect(rejected.code).toBe(0);
    expect(rejected.stdout).toContain(`${approvalId}: rejected`);

    const bad = await cli(['call', 'billing.lookup', '{customer_id: 1}']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not JSON/);
  });

  it('call --wait: returns the final answer once an approver approves', async () => {
    const waiting = cli(['call', 'billing.refund', '{"payment_id":"pay_wait_cli"}', '--wait=10', '--json']);
    let approved = false;
    for (let i = 0; i < 200 && !approved; i++) {
      const list = JSON.parse((await cli(['approvals', 'list', '--status', 'pending', '--json'], BOB_KEY)).stdout) as {
        approvals: Array<{ id: string; checkpoint: { params: { payment_id?: string } } }>;
      };
      const mine = list.approvals.find((a) => a.checkpoint.params.payment_id === 'pay_wait_cli');
      if (mine) {
        expect((await cli(['approvals', 'approve', mine.id, '--comment', 'fine'], BOB_KEY)).code).toBe(0);
        approved = true;
      } else await new Promise((r) => setTimeout(r, 25));
    }
    const done = await waiting;
    expect(done.code).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({ status: 'executed', result: { refunded: true } });
  });

  it('traces --json, trace <id>, export --format jsonl', async () => {
    await cli(['call', 'billing.lookup', '{"customer_id":"cust_trace"}', '--agent-id', 'cli-tracer']);
    const traces = await cli(['traces', '--tool', 'billing.lookup', '--limit', '5', '--json']);
    expect(traces.code).toBe(0);
    const page = JSON.parse(traces.stdout) as { traces: Array<{ call_id: string; tool: string }> };
    expect(page.traces.length).toBeGreaterThan(0);
    expect(page.traces.every((t) => t.tool === 'billing.lookup')).toBe(true);

    const one = await cli(['trace', page.traces[0]!.call_id]);
    expect(one.stdout).toMatch(/request_received\s+completed/);

    const exported = await cli(['export', '--format', 'jsonl', '--tool', 'billing.lookup']);
    const lines = exported.stdout.trim().split('\n');
    expect(lines.length).toBe(page.traces.length);
    expect(JSON.parse(lines[0]!)).toMatchObject({ tool: 'billing.lookup' });
    expect((await cli(['export', '--format', 'xml'])).code).toBe(2);
  });

  it('exit 4 with a clear message for a wrong key or a missing scope; 5 when unreachable', async () => {
    const wrong = await cli(['tools'], 'wrong-key');
    expect(wrong.code).toBe(4);
    expect(wrong.stderr).toMatch(/API key was refused .*401 unauthorized/);
    const scope = await cli(['call', 'billing.lookup', '{}'], READER_KEY);
    expect(scope.code).toBe(4);
    const port = await closedPort();
    const down = await cli(['tools', '--base-url', `http://127.0.0.1:${port}`]);
    expect(down.code).toBe(5);
    expect(down.stderr).toMatch(/Cannot reach Invoke at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
  });

  it('doctor: reachable, key accepted, which scopes this key has', async () => {
    const doctor = await cli(['doctor', '--json'], READER_KEY);
    expect(doctor.code).toBe(0);
    const checks = (JSON.parse(doctor.stdout) as { checks: Array<{ name: string; ok: boolean }> }).checks;
    expect(Object.fromEntries(checks.map((c) => [c.name, c.ok]))).toMatchObject({ reachable: true, key: true, 'tools:read': true, 'approvals:read': false, 'traces:read': false });
    expect((await cli(['status'], 'wrong-key')).code).toBe(4);
  });

  it('wrap openapi: sends {name, openapi, base_url} with a YAML file parsed, or the URL as is', async () => {
    const file = path.join(home, 'petstore.yaml');
    writeFileSync(file, 'openapi: 3.0.3\ninfo:\n  title: Pet Store\n  version: "1"\npaths: {}\n');
    const sent: unknown[] = [];
    const capture: CliIo['fetch'] = async (url, init) => {
      if (url.endsWith('/v1/providers')) sent.push(JSON.parse(String(init.body)));
      return fetch(url, init);
    };
    await cli(['wrap', 'openapi', file, '--base-url', 'https://pets.example.com'], ADMIN_KEY, { fetch: capture });
    await cli(['wrap', 'openapi', 'https://pets.example.com/openapi.json', '--base-url', 'https://pets.example.com', '--name', 'pets'], ADMIN_KEY, { fetch: capture });
    expect(sent).toEqual([
      { name: 'pet-store', openapi: { openapi: '3.0.3', info: { title: 'Pet Store', version: '1' }, paths: {} }, base_url: 'https://pets.example.com' },
      { name: 'pets', openapi: 'https://pets.example.com/openapi.json', base_url: 'https://pets.example.com' },
    ]);
  });

  it('wrap openapi end to end: a YAML file becomes a provider whose tool `tools` lists and `call` runs', async () => {
    const file = path.join(home, 'crm.yaml');
    writeFileSync(
      file,
      [
        'openapi: 3.0.3',
        'info:',
        '  title: CLI CRM',
        '  version: "1"',
        'paths:',
        '  /customers/{customer_id}:',
        '    get:',
        '      operationId: getCustomer',
        '      summary: One customer, from the CRM',
        '      parameters:',
        '        - {name: customer_id, in: path, required: true, schema: {type: string}}',
        '      responses:',
        '        "200": {description: ok}',
        '',
      ].join('\n'),
    );
    const wrapped = await cli(['wrap', 'openapi', file, '--base-url', server.tools.url]);
    expect(wrapped.stderr).toBe('');
    expect(wrapped.code).toBe(0);
    expect(wrapped.stdout).toMatch(/^Registered cli-crm: 1 tools\n {2}cli-crm\.getCustomer$/m);

    const listed = await cli(['tools', '--query', 'cli-crm', '--json']);
    expect(listed.code).toBe(0);
    const tools = (JSON.parse(listed.stdout) as { tools: Array<{ key: string; side_effects: boolean; description: string }> }).tools;
    expect(tools.find((t) => t.key === 'cli-crm.getCustomer')).toMatchObject({ side_effects: false, description: 'One customer, from the CRM' });

    const before = server.tools.requests.length;
    const called = await cli(['call', 'cli-crm.getCustomer', '{"customer_id":"cust_oas"}', '--json']);
    expect(called.code).toBe(0);
    expect(JSON.parse(called.stdout)).toMatchObject({ status: 'executed', tool: 'cli-crm.getCustomer', result: { customer_id: 'cust_oas', plan: 'pro' } });
    expect(server.tools.requests.slice(before).map((r) => `${r.method} ${r.path}`)).toEqual(['GET /customers/cust_oas']);
  });

  it('wrap openapi: a bad document exits 2 with where the server says it is wrong', async () => {
    const file = path.join(home, 'broken.yaml');
    writeFileSync(
      file,
      ['openapi: 3.0.3', 'info: {title: Broken, version: "1"}', 'paths:', '  /a:', '    get:', '      responses:', '        "200": {description: 5}', ''].join('\n'),
    );
    const bad = await cli(['wrap', 'openapi', file, '--base-url', server.tools.url]);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/^invoke: The OpenAPI document is invalid: #\/paths\/~1a\/get\/responses\/200\/description must be string \(400 invalid_openapi\)/);
    expect(JSON.parse((await cli(['tools', '--query', 'broken', '--json'])).stdout).tools).toEqual([]);
  });

  it('--help on every command, exit 0; an unknown command is a usage error', async () => {
    for (const command of ['login', 'status', 'doctor', 'tools', 'call', 'approvals', 'traces', 'trace', 'export', 'wrap']) {
      const help = await cli([command, '--help']);
      expect(help.code, command).toBe(0);
      expect(help.stdout, command).toMatch(new RegExp(`^Usage: invoke ${command}`));
    }
    expect((await cli(['--help'])).stdout).toMatch(/Exit codes:\n {2}0 {2}ok/);
    expect((await cli(['frobnicate'])).code).toBe(2);
  });
});
