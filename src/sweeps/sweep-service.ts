import { sql, type Kysely } from 'kysely';
import type { ApprovalNotifier } from '../approvals/approval-notifier.ts';
import type { ApprovalService } from '../approvals/approval-service.ts';
import type { ApprovalRow } from '../approvals/approvals-repository.ts';
import type { Checkpoint } from '../approvals/checkpoint.ts';
import type { CallService } from '../calls/call-service.ts';
import type { CallsRepository } from '../calls/calls-repository.ts';
import type { Config } from '../config.ts';
import type { Database } from '../db/schema.ts';
import { AppError } from '../errors.ts';
import type { ToolRegistry } from '../tools/tool-registry.ts';

const SWEEP_ACTOR = 'system:sweep';
/** State reads run this many at a time, so a slow tool cannot stall a pass. */
const REVALIDATE_CONCURRENCY = 4;
/** A recovering replica holds a call this long; if it dies too, another one takes over. */
const RECOVERY_LEASE_MS = 5 * 60_000;
/** Approvals expired per statement by the bulk path. */
const EXPIRE_BATCH = 1000;
/** Batches under way at once (SKIP LOCKED keeps them apart): the database works on one while another travels. */
const EXPIRE_WORKERS = 2;

export interface SweepCounts {
  expired: number;
  escalated: number;
  reminded: number;
  revalidated: number;
  requeued: number;
  recovered: number;
  unknown_outcomes: number;
  outbox_delivered: number;
  outbox_failed: number;
  idempotency_keys_removed: number;
  traces_removed: number;
  errors: number;
}

export interface SweepDeps {
  config: Config;
  db: Kysely<Database>;
  approvals: ApprovalService;
  calls: CallsRepository;
  callService: CallService;
  registry: ToolRegistry;
  notifier: ApprovalNotifier;
  deliverOutbox: () => Promise<{ delivered: number; failed: number }>;
  log: { warn(obj: unknown, msg?: string): void };
}

/**
 * One sweep pass: expire (and remind), revalidate, recover, deliver the outbox, trim. Every
 * change is a conditional update or a SKIP LOCKED claim of one row, so any number of replicas
 * can sweep at once and none changes a row another already changed.
 */
export function createSweepService(deps: SweepDeps) {
  const { config, db, approvals, calls, callService, registry, notifier, log } = deps;

  /** Runs `step` for each item; one failure is logged and counted, not fatal to the pass. */
  async function each<T>(items: T[], counts: SweepCounts, step: (item: T) => Promise<void>, concurrency = 1): Promise<void> {
    const queue = [...items];
    const worker = async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
        try {
          await step(item);
        } catch (error) {
          // Losing a race to another replica is a 409: expected, not an error.
          if (error instanceof AppError && error.statusCode === 409) continue;
          counts.errors++;
          log.warn({ err: error }, 'sweep step failed');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  }

  /**
   * Approvals that cancel on expiry go in set-based batches until none is left (each batch its
   * own commit, so a long backlog makes durable progress and calls keep their turn between
   * batches); those that escalate go one by one, `sweepBatch` a pass.
   */
  async function expireStaleApprovals(counts: SweepCounts): Promise<void> {
    const drain = async () => {
      for (;;) {
        const expired = await approvals.expireDue(EXPIRE_BATCH, SWEEP_ACTOR);
        counts.expired += expired;
        if (expired < EXPIRE_BATCH) return;
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    await Promise.all(Array.from({ length: EXPIRE_WORKERS }, drain));
    const stale = await db
      .selectFrom('approvals')
      .selectAll()
      .where('status', '=', 'pending')
      .where('expires_at', '<=', sql<Date>`now()`)
      .orderBy('expires_at')
      .limit(config.sweepBatch)
      .execute();
    await each(stale, counts, async (row) => {
      const result = await approvals.expire(row, SWEEP_ACTOR);
      if (result.outcome === 'escalated') counts.escalated++;
      else counts.expired++;
    });
  }

  /** One reminder per approval, once the configured share of its lifetime has passed: claimed and queued in one commit. */
  async function remindApprovers(counts: SweepCounts): Promise<void> {
    const share = config.approvalRemindAt;
    counts.reminded += await db.transaction().execute(async (trx) => {
      const due = await trx
        .updateTable('approvals')
        .set({ reminded_at: sql`now()` })
        .where(
          'id',
          'in',
          trx
            .selectFrom('approvals')
            .select('id')
            .where('status', '=', 'pending')
            .where('reminded_at', 'is', null)
            .where('expires_at', '>', sql<Date>`now()`)
            .where(sql<boolean>`created_at + (expires_at - created_at) * ${share}::float8 <= now()`)
            .limit(config.sweepBatch)
            .forUpdate()
            .skipLocked(),
        )
        .where('reminded_at', 'is', null)
        .returning(['id', 'expires_at', 'approvers'])
        .execute();
      for (const row of due) await notifier.reminded(trx, { approvalId: row.id, expiresAt: row.expires_at, approvers: row.approvers as string[] | null });
      return due.length;
    });
  }

  /** Pending approvals whose contract can read live state: drift requeues them, as a click would. */
  async function revalidatePending(counts: SweepCounts): Promise<void> {
    const rows = await db
      .selectFrom('approvals')
      .selectAll()
      .where('status', '=', 'pending')
      .where('expires_at', '>', sql<Date>`now()`)
      .where(sql<boolean>`coalesce(checkpoint->'contract'->'conditions', '{}'::jsonb) <> '{}'::jsonb`)
      .orderBy(sql`revalidated_at nulls first`)
      .orderBy('created_at')
      .limit(config.sweepBatch)
      .execute();
    const readable = [];
    for (const row of rows) if (await hasStateRefetch(row)) readable.push(row);
    await each(
      readable,
      counts,
      async (row) => {
        await db.updateTable('approvals').set({ revalidated_at: sql`now()` }).where('id', '=', row.id).execute();
        counts.revalidated++;
        const result = await approvals.revalidate(row, SWEEP_ACTOR);
        if (result?.outcome === 'requeued') counts.requeued++;
      },
      REVALIDATE_CONCURRENCY,
    );
  }

  async function hasStateRefetch(row: ApprovalRow): Promise<boolean> {
    const cp = row.checkpoint as Checkpoint;
    if (cp.contract?.state_refetch) return true;
    const tool = await registry.getTool(cp.tool).catch(() => null);
    return Boolean(tool?.card.state_refetch);
  }

  /** Calls whose process died mid-call: reconciled from live state, never blindly retried. */
  async function recoverInterrupted(counts: SweepCounts): Promise<void> {
    const interrupted = await calls.claimInterrupted(config.sweepBatch, RECOVERY_LEASE_MS);
    await each(interrupted, counts, async (call) => {
      // A call that was running after its approval: the approval records how it ended, with the answer.
      const approval = await db.selectFrom('approvals').selectAll().where('call_id', '=', call.id).where('status', '=', 'approved').executeTakeFirst();
      const { needsAttention } = await callService.recoverInterrupted(call, (trx, answer) =>
        approval ? approvals.writeApprovedOutcome(trx, approval, answer, SWEEP_ACTOR, { recovered: true }) : Promise.resolve(),
      );
      counts.recovered++;
      if (needsAttention) counts.unknown_outcomes++;
    });
  }

  /** Bounded batches, so a large backlog never holds long locks. */
  async function trimRetention(counts: SweepCounts): Promise<void> {
    const keys = await db
      .deleteFrom('idempotency_keys')
      .where(({ eb, selectFrom }) =>
        eb(
          sql`(api_key_id, key)`,
          'in',
          selectFrom('idempotency_keys').select(['api_key_id', 'key']).where('state', '=', 'completed').where('expires_at', '<', sql<Date>`now()`).limit(1000),
        ),
      )
      .executeTakeFirst();
    counts.idempotency_keys_removed += Number(keys.numDeletedRows ?? 0);
    const cutoff = sql<Date>`now() - ${`${config.traceRetentionMs} milliseconds`}::interval`;
    const events = await db
      .deleteFrom('trace_events')
      .where(
        'id',
        'in',
        db
          .selectFrom('trace_events')
          .select('id')
          .where('at', '<', cutoff)
          // A call still waiting on a human keeps its history.
          .where('call_id', 'not in', db.selectFrom('calls').select('id').where('status', 'in', ['in_flight', 'pending_approval', 'escalated']))
          .limit(5000),
      )
      .executeTakeFirst();
    const oldCalls = await db
      .deleteFrom('calls')
      .where('id', 'in', db.selectFrom('calls').select('id').where('created_at', '<', cutoff).where('status', 'not in', ['in_flight', 'pending_approval', 'escalated']).limit(1000))
      .executeTakeFirst();
    await db.deleteFrom('cron_claims').where('claimed_at', '<', sql<Date>`now() - interval '1 day'`).execute();
    counts.traces_removed += Number(events.numDeletedRows ?? 0) + Number(oldCalls.numDeletedRows ?? 0);
  }

  return {
    async runPass(): Promise<SweepCounts> {
      const counts: SweepCounts = {
        expired: 0,
        escalated: 0,
        reminded: 0,
        revalidated: 0,
        requeued: 0,
        recovered: 0,
        unknown_outcomes: 0,
        outbox_delivered: 0,
        outbox_failed: 0,
        idempotency_keys_removed: 0,
        traces_removed: 0,
        errors: 0,
      };
      const steps: Array<[string, (c: SweepCounts) => Promise<void>]> = [
        ['expire', expireStaleApprovals],
        ['remind', remindApprovers],
        ['revalidate', revalidatePending],
        ['recover', recoverInterrupted],
        [
          'outbox',
          async (c) => {
            const delivered = await deps.deliverOutbox();
            c.outbox_delivered += delivered.delivered;
            c.outbox_failed += delivered.failed;
          },
        ],
        ['retention', trimRetention],
      ];
      for (const [name, step] of steps) {
        try {
          await step(counts);
        } catch (error) {
          counts.errors++;
          log.warn({ err: error, step: name }, 'sweep step failed');
        }
      }
      return counts;
    },
  };
}
export type SweepService = ReturnType<typeof createSweepService>;
