import fs from 'node:fs';
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
 */

/** What this file needs of Emscripten's FS object. */
interface EmscriptenFs {
  filesystems: { NODEFS: NodeFsType };
}
interface NodeFsType {
  stream_ops: Record<string, unknown> & { fsync?: (stream: NodeFsStream) => number };
  realPath(node: unknown): string;
  tryFSOperation<T>(operation: () => T): T;
}
interface NodeFsStream {
  node: unknown;
  /** The Node file descriptor of an open file; directories have none. */
  nfd?: number;
}

function flushTo(nodefs: NodeFsType): void {
  nodefs.stream_ops.fsync = (stream) =>
    // As NODEFS does for its other operations: a Node error becomes the errno Postgres sees.
    nodefs.tryFSOperation(() => {
      if (typeof stream.nfd === 'number') {
        fs.fsyncSync(stream.nfd);
        return 0;
      }
      const fd = fs.openSync(nodefs.realPath(stream.node), 'r');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      return 0;
    });
}

class DurableNodeFS extends NodeFS {
  override async init(pg: PGlite, opts: Parameters<NodeFS['init']>[1]): ReturnType<NodeFS['init']> {
    const { emscriptenOpts } = await super.init(pg, opts);
    const preRun = [(mod: { FS: EmscriptenFs }) => flushTo(mod.FS.filesystems.NODEFS), ...(emscriptenOpts.preRun ?? [])];
    return { emscriptenOpts: { ...emscriptenOpts, preRun } };
  }
}

/** Postgres's start parameters in PGlite, without `-F`, the WAL flushed with fsync. */
export const DURABLE_START_PARAMS: readonly string[] = [...PGlite.defaultStartParams.filter((param) => param !== '-F'), '-c', 'wal_sync_method=fsync'];

/** Opens PGlite on `dataDir` (a directory on disk) with its commits flushed to disk. */
export function openDurablePglite(dataDir: string): Promise<PGlite> {
  return PGlite.create({ fs: new DurableNodeFS(dataDir), startParams: [...DURABLE_START_PARAMS] });
}
