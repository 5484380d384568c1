import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_KEY, startSdkServer, type SdkServer } from '../helpers/sdk-server.ts';

const BIN = path.resolve(import.meta.dirname, '../../bin/invoke.js');

/** The `invoke` executable as a user runs it (no build: bin/invoke.js loads the source through tsx). */
function invoke(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // Only what the CLI reads, so the developer's own INVOKE_* settings cannot leak in.
    execFile(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('the invoke executable', () => {
  let server: SdkServer;
  const home = mkdtempSync(path.join(tmpdir(), 'invoke-home-'));

  beforeAll(async () => {
    server = await startSdkServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it('login saves the key (0600) and later commands use it; a wrong key exits 4', async () => {
    const login = await invoke(['login', '--base-url', server.url, '--api-key', ADMIN_KEY], { INVOKE_HOME: home });
    expect(login.stderr).toBe('');
    expect(login.code).toBe(0);
    const file = path.join(home, 'credentials.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ base_url: server.url, api_key: ADMIN_KEY });

    const tools = await invoke(['tools', '--json'], { INVOKE_HOME: home });
    expect(tools.code).toBe(0);
    expect(JSON.parse(tools.stdout).tools.map((t: { key: string }) => t.key)).toContain('billing.lookup');

    // The environment wins over the file.
    const wrong = await invoke(['tools'], { INVOKE_HOME: home, INVOKE_API_KEY: 'wrong-key' });
    expect(wrong.code).toBe(4);
    expect(wrong.stderr).toMatch(/API key was refused/);
  });

  it('exits 5 with a clear message when the server is unreachable, 0 for --help', async () => {
    const down = await invoke(['tools'], { INVOKE_HOME: home, INVOKE_BASE_URL: 'http://127.0.0.1:1', INVOKE_API_KEY: ADMIN_KEY });
    expect(down.code).toBe(5);
    expect(down.stderr).toMatch(/Cannot reach Invoke at http:\/\/127\.0\.0\.1:1/);
    const help = await invoke(['--help'], {});
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Exit codes:/);
  });
});
