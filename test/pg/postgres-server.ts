import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * Starts a real, throwaway PostgreSQL server for the concurrency and crash suite: initdb on a temp
 * dir, listening on 127.0.0.1 and a free port, run as the `postgres` user when we are root
 * (Postgres refuses to run as root). Fails loudly when it cannot: this suite never skips.
 */

const execFileAsync = promisify(execFile);

function findBinDir(): string {
  const fromEnv = process.env['PG_BINDIR'];
  if (fromEnv && existsSync(path.join(fromEnv, 'initdb'))) return fromEnv;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions[0]) return path.join(root, versions[0], 'bin');
  const pgConfig = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  const bindir = pgConfig.stdout?.trim();
  if (bindir && existsSync(path.join(bindir, 'initdb'))) return bindir;
  throw new Error('PostgreSQL server binaries not found (install the postgresql package: apt-get install -y postgresql)');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export interface RunningPostgres {
  url: string;
  /** Stops the server and removes its data directory (the end of a suite). */
  stop(): void;
  /**
   * An outage: `pg_ctl stop -m <mode>`, keeping the data directory and port for {@link startAgain}.
   * Asynchronous, so the test's own servers (a tool, a load driver) keep running meanwhile.
   */
  halt(mode: 'fast' | 'immediate'): Promise<void>;
  /** Starts the halted server again on the same data directory and port (after `immediate`, with crash recovery). */
  startAgain(): Promise<void>;
  /** CPU seconds used so far by the server's processes alive now (Linux /proc; undefined elsewhere). */
  cpuSeconds(): number | undefined;
}

/**
 * `durable`: keep fsync and synchronous commit on. The suite's server turns them off for speed,
 * which is fine until the server is killed: `pg_ctl stop -m immediate` then loses commits it
 * had acknowledged, which no application can survive, so an outage test needs them on.
 */
export async function startPostgres(options: { durable?: boolean } = {}): Promise<RunningPostgres> {
  const bindir = findBinDir();
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(path.join(tmpdir(), 'invoke-pg-'));
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  chmodSync(dir, 0o700);
  const run = (bin: string, args: string[]) => {
    const command = path.join(bindir, bin);
    const result = asRoot ? spawnSync('runuser', ['-u', 'postgres', '--', command, ...args], { encoding: 'utf8' }) : spawnSync(command, args, { encoding: 'utf8' });
    if (result.status !== 0) {
      throw new Error(`${bin} failed (${result.status}): ${result.stderr || result.stdout || result.error?.message}`);
    }
  };
  run('initdb', ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']);
  const port = await freePort();
  const fast = options.durable ? '' : ' -c fsync=off -c synchronous_commit=off -c full_page_writes=off';
  const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1${fast} -c max_connections=300`;
  const runAsync = async (bin: string, args: string[]) => {
    const command = path.join(bindir, bin);
    try {
      if (asRoot) await execFileAsync('runuser', ['-u', 'postgres', '--', command, ...args], { encoding: 'utf8' });
      else await execFileAsync(command, args, { encoding: 'utf8' });
    } catch (error) {
      const { code, stderr, stdout, message } = error as { code?: number; stderr?: string; stdout?: string; message: string };
      throw new Error(`${bin} failed (${code}): ${stderr || stdout || message}`);
    }
  };
  const startArgs = ['-D', dataDir, '-l', logFile, '-o', serverOptions, '-w', '-t', '60', 'start'];
  run('pg_ctl', startArgs);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    halt: (mode) => runAsync('pg_ctl', ['-D', dataDir, '-m', mode, '-w', '-t', '60', 'stop']),
    startAgain: () => runAsync('pg_ctl', startArgs),
    cpuSeconds: () => serverCpuSeconds(dataDir),
    stop() {
      try {
        // Already stopped (a test that halted it and failed before starting it again): nothing to stop.
        if (existsSync(path.join(dataDir, 'postmaster.pid'))) run('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ: 100 on every Linux this runs on). */
const TICKS_PER_SECOND = 100;

/**
 * CPU of the server, read from /proc: utime + stime of the postmaster and of its children alive
 * now (backends, WAL writer, checkpointer), plus the postmaster's cutime + cstime, which holds
 * the children that exited (a connection the pool closed).
 */
function serverCpuSeconds(dataDir: string): number | undefined {
  try {
    const postmaster = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    let ticks = 0;
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        continue; // exited meanwhile
      }
      // Fields after the command name (which may hold spaces): state, ppid, ..., utime (14th), stime (15th).
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // The postmaster's own, plus its children that exited (cutime, cstime: it waits for them all).
      if (Number(entry) === postmaster) ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
      else if (Number(fields[1]) === postmaster) ticks += Number(fields[11]) + Number(fields[12]);
    }
    return ticks / TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}
