/**
 * Group commit: writes that arrive while others are being written go together in the next
 * statement, so concurrent calls share one round trip and one commit instead of paying one
 * each. Each caller is answered only after the statement carrying its write has committed.
 * A statement that fails on the data it was given (a Postgres data or integrity error) is
 * retried item by item, so one bad write fails only its own caller. Any other failure (the
 * connection lost, the server stopping) fails the whole batch: the statement may have
 * committed, and writing it again would not be the same.
 */
export interface WriteBatcherOptions<I, O> {
  /** Writes the items in one statement; answers one result per item, in order. */
  write: (items: I[]) => Promise<O[]>;
  /** At most this many items per statement. */
  maxBatch: number;
  /** Statements under way at once (the embedded store runs one at a time anyway). */
  maxInFlight: number;
}

interface Waiting<I, O> {
  item: I;
  resolve: (result: O) => void;
  reject: (error: unknown) => void;
}

/** SQLSTATE classes 22 (data exception) and 23 (integrity constraint violation): the input, not the server. */
function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
}

export function createWriteBatcher<I, O>(options: WriteBatcherOptions<I, O>): (item: I) => Promise<O> {
  const queue: Array<Waiting<I, O>> = [];
  let inFlight = 0;
  let scheduled = false;

  async function writeBatch(batch: Array<Waiting<I, O>>): Promise<void> {
    try {
      const results = await options.write(batch.map((w) => w.item));
      batch.forEach((w, i) => w.resolve(results[i]!));
    } catch (error) {
      if (batch.length === 1 || !isDataError(error)) {
        batch.forEach((w) => w.reject(error));
        return;
      }
      await Promise.all(
        batch.map(async (w) => {
          try {
            const [result] = await options.write([w.item]);
            w.resolve(result!);
          } catch (own) {
            w.reject(own);
          }
        }),
      );
    }
  }

  function flush(): void {
    scheduled = false;
    while (queue.length > 0 && inFlight < options.maxInFlight) {
      const batch = queue.splice(0, options.maxBatch);
      inFlight += 1;
      void writeBatch(batch).finally(() => {
        inFlight -= 1;
        if (queue.length > 0) schedule();
      });
    }
  }

  function schedule(): void {
    if (scheduled) return;
    scheduled = true;
    // After the current I/O callbacks: the requests that arrived together join one statement.
    setImmediate(flush);
  }

  return (item: I) =>
    new Promise<O>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      schedule();
    });
}
