import type { Kysely, Transaction } from 'kysely';
import type { Database } from './schema.ts';

/** An open transaction: services only hand it to repository functions, which run their queries in it. */
export type Trx = Transaction<Database>;

/**
 * Runs `work` in one transaction (commit when it resolves, rollback when it throws). Services
 * receive this instead of the database: they decide what commits together, repositories say how.
 */
export type Transact = <T>(work: (trx: Trx) => Promise<T>) => Promise<T>;

export function transactorFor(db: Kysely<Database>): Transact {
  return (work) => db.transaction().execute(work);
}
