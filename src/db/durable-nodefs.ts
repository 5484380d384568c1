import fs from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { NodeFS } from '@electric-sql/pglite/nodefs';

/**
 * The embedded store's file system: PGlite's own (Emscripten's NODEFS on the data directory),
 * made to reach the disk when Postgres asks it to.
 *
 * As shipped, nothing PGlite writes is ever flushed: it starts Postgres with `-F` (fsync off),
 * Emscripten answers `fdatasync` without doing anything, and NODEFS has no `fsync` at all. A
 * commit is then in the operating system's page cache only: it survives the process being killed,
 * but not a power loss or a kernel crash, and a call claimed before its tool ran could be lost
 * with it. So here Postgres runs with fsync on and `wal_sync_method=fsync` (the one method that
 * reaches the file system's `fsync`), and NODEFS's `fsync` is `fs.fsyncSync` on the file (or, for a
 * directory, which NODEFS does not keep open, on the directory opened for the purpose). A commit
 * waits for its WAL to be on disk, as on a Postgres server.
 *
 * A flush that fails stops the process. Postgres cannot go on after one (it PANICs: a failed
 * fsync may have dropped the written pages, and retrying it proves nothing), and PGlite, which has
 * no postmaster to restart it, would spin on the next query. A Postgres server restarts and
 * recovers from its WAL; here the next start does.
 */

/** What this file needs of Emscripten's FS object. */
interface EmscriptenFs {
  filesystems: { NODEFS: NodeFsType };
}
interface NodeFsType {
  stream_ops: Record<string, unknown> & { fsync?: (stream: NodeFsStream) => number };
  realPath(node: unknown): string;
}
interface NodeFsStream {
  node: unknown;
  /** The Node file descriptor of an open file; directories have none. */
  nfd?: number;
}

/** Stops the process: see above. Written to stderr, as the store has no logger. */
function flushFailed(file: string, error: unknown): never {
  process.stderr.write(
    `Invoke: the embedded store could not flush ${file} to disk (${(error as Error).message}). ` +
      'Stopping: Postgres cannot go on after a failed flush; the next start recovers the store from its WAL.\n',
  );
  process.exit(1);
}

/** What Postgres itself ignores when flushing a directory (file systems that cannot). */
const DIRECTORY_FLUSH_UNSUPPORTED = new Set(['EBADF', 'EINVAL']);

/** Opens `file` (a file or a directory) and flushes it. */
function flushPath(file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function flushTo(nodefs: NodeFsType): void {
  nodefs.stream_ops.fsync = (stream) => {
    if (typeof stream.nfd === 'number') {
      try {
        fs.fsyncSync(stream.nfd);
      } catch (error) {
        flushFailed(nodefs.realPath(stream.node), error);
      }
      return 0;
    }
    const file = nodefs.realPath(stream.node);
    try {
      flushPath(file);
    } catch (error) {
      if (!DIRECTORY_FLUSH_UNSUPPORTED.has((error as NodeJS.ErrnoException).code ?? '')) flushFailed(file, error);
    }
    return 0;
  };
}

/** Flushes every file and directory under `dir`, deepest first. */
function flushTree(dir: string): void {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const child = path.join(dir, entry.name);
    if (entry.isDirectory()) flushTree(child);
    else if (entry.isFile()) flushPath(child);
  }
  flushPath(dir);
}

class DurableNodeFS extends NodeFS {
  override async init(pg: PGlite, opts: Parameters<NodeFS['init']>[1]): ReturnType<NodeFS['init']> {
    const { emscriptenOpts } = await super.init(pg, opts);
    const preRun = [(mod: { FS: EmscriptenFs }) => flushTo(mod.FS.filesystems.NODEFS), ...(emscriptenOpts.preRun ?? [])];
    return { emscriptenOpts: { ...emscriptenOpts, preRun } };
  }
}

/** Postgres's start parameters in PGlite, without `-F`, the WAL flushed with fsync. */
const DURABLE_START_PARAMS: readonly string[] = [...PGlite.defaultStartParams.filter((param) => param !== '-F'), '-c', 'wal_sync_method=fsync'];

/**
 * Opens PGlite on `dataDir` (a directory on disk) with its commits flushed to disk. A new
 * directory is flushed whole once created: PGlite builds it from a template it unpacks without
 * any flush, and Postgres does not flush it again on a clean start.
 */
export async function openDurablePglite(dataDir: string): Promise<PGlite> {
  const created = !fs.existsSync(path.join(dataDir, 'PG_VERSION'));
  const pglite = await PGlite.create({ fs: new DurableNodeFS(dataDir), startParams: [...DURABLE_START_PARAMS] });
  if (created) flushTree(dataDir);
  return pglite;
}
