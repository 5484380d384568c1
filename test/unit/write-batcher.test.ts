import { describe, expect, it } from 'vitest';
import { createWriteBatcher } from '../../src/db/write-batcher.ts';

describe('write batcher (group commit)', () => {
  it('writes items that arrive together in one statement and answers each its own result', async () => {
    const statements: number[][] = [];
    const write = createWriteBatcher<number, number>({
      write: async (items) => {
        statements.push(items);
        return items.map((n) => n * 10);
      },
      maxBatch: 100,
      maxInFlight: 1,
    });
    const results = await Promise.all([1, 2, 3, 4].map((n) => write(n)));
    expect(results).toEqual([10, 20, 30, 40]);
    expect(statements).toEqual([[1, 2, 3, 4]]);
  });

  it('queues what arrives while a statement is under way into the next one, within maxBatch', async () => {
    const statements: number[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const write = createWriteBatcher<number, number>({
      write: async (items) => {
        statements.push(items);
        if (statements.length === 1) await gate;
        return items;
      },
      maxBatch: 2,
      maxInFlight: 1,
    });
    const first = write(0);
    await new Promise((resolve) => setImmediate(resolve));
    const later = [1, 2, 3].map((n) => write(n));
    release();
    expect(await Promise.all([first, ...later])).toEqual([0, 1, 2, 3]);
    expect(statements).toEqual([[0], [1, 2], [3]]);
  });

  it('fails the whole batch, without writing it again, when the failure is not about its data', async () => {
    let statements = 0;
    const write = createWriteBatcher<string, string>({
      write: async () => {
        statements += 1;
        throw Object.assign(new Error('Connection terminated unexpectedly'), { code: 'ECONNRESET' });
      },
      maxBatch: 10,
      maxInFlight: 1,
    });
    const settled = await Promise.allSettled(['a', 'b', 'c'].map((s) => write(s)));
    expect(settled.every((r) => r.status === 'rejected' && (r.reason as Error).message === 'Connection terminated unexpectedly')).toBe(true);
    expect(statements).toBe(1);
  });

  it('retries a batch refused for its data item by item, so one bad write fails only its own caller', async () => {
    const statements: string[][] = [];
    const write = createWriteBatcher<string, string>({
      write: async (items) => {
        statements.push(items);
        if (items.includes('bad')) throw Object.assign(new Error('invalid input'), { code: '22P02' });
        return items.map((s) => s.toUpperCase());
      },
      maxBatch: 10,
      maxInFlight: 1,
    });
    const settled = await Promise.allSettled(['a', 'bad', 'c'].map((s) => write(s)));
    expect(settled.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual(['A', 'invalid input', 'C']);
    expect(statements[0]).toEqual(['a', 'bad', 'c']);
    expect(statements.slice(1).sort()).toEqual([['a'], ['bad'], ['c']]);
  });
});
