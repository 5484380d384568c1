import type { ApprovalNotifier } from '../approvals/approval-notifier.ts';
import type { ApprovalService } from '../approvals/approval-service.ts';
import type { Approval, ApprovalsRepository } from '../approvals/approvals-repository.ts';
import type { CallsRepository } from '../calls/calls-repository.ts';
import type { Config } from '../config.ts';
import type { Transact } from '../db/transact.ts';
import { AppError } from '../errors.ts';
import type { ToolRegistry } from '../tools/tool-registry.ts';
import type { CallRecovery } from './call-recovery.ts';

export const SWEEP_ACTOR = 'system:sweep';
/** State reads run this many at a time, so a slow tool cannot stall a pass. */
const REVALIDATE_CONCURRENCY = 4;
/** A recovering replica holds a call this long; if it dies too, another one takes over. */
const RECOVERY_LEASE_MS = 5 * 60_000;
/**
 * Approvals expired per transaction by the bulk path. Small, so a batch's burst of work (about 6 MB
 * of WAL per 1,000 calls rewritten, every index entry new) is short beside live calls: over a pass
 * through 100,000 on Postgres, calls at concurrency 16 from another process had p99 2.3-4.4x their
 * own alone with batches of 1,000 and 1.2-2.0x with 200, for a pass about 15% longer.
 */
const EXPIRE_BATCH = 200;

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
  transact: Transact;
  approvals: ApprovalService;
  approvalsRepository: ApprovalsRepository;
  calls: CallsRepository;
  recovery: CallRecovery;
  registry: ToolRegistry;
  notifier: ApprovalNotifier;
  deliverOutbox: () => Promise<{ delivered: number; failed: number }>;
  /** Removes the schedule's claims older than a day (sweep-scheduler.ts owns that table). */
  trimCronClaims: () => Promise<void>;
  /** Vacuums and analyzes the tables that need it where nothing else does (the embedded store); returns their names. */
  vacuumDue: () => Promise<string[]>;
  log: { warn(obj: unknown, msg?: string): void; info(obj: unknown, msg?: string): void };
}

/**
 * One sweep pass: expire (and remind), revalidate, recover, deliver the outbox, trim. Every
 * change is a conditional update or a SKIP LOCKED claim of one row, so any number of replicas
 * can sweep at once and none changes a row another already changed.
 */
export function createSweepService(deps: SweepDeps) {
  const { config, transact, approvals, approvalsRepository, calls, recovery, registry, notifier, log } = deps;

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
    // One batch at a time. Two under way at once drained 100,000 approvals in 10.0 s instead of
    // 12.4 s on Postgres, but took both of a 2-core machine's cores from live calls (their p99
    // 3.5x of alone during the pass, against 1.3-1.6x with one; both measured over the pass's
    // first 3 s, as the bench then did).
    for (;;) {
      const expired = await approvals.expireDue(EXPIRE_BATCH, SWEEP_ACTOR);
      counts.expired += expired;
      if (expired < EXPIRE_BATCH) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const stale = await approvalsRepository.listExpired(config.sweepBatch);
    await each(stale, counts, async (row) => {
      const result = await approvals.expire(row, SWEEP_ACTOR);
      if (result.outcome === 'escalated') counts.escalated++;
      else counts.expired++;
    });
  }

  /** One reminder per approval, once the configured share of its lifetime has passed: claimed and queued in one commit. */
  async function remindApprovers(counts: SweepCounts): Promise<void> {
    const share = config.approvalRemindAt;
    counts.reminded += await transact(async (trx) => {
      const due = await approvalsRepository.claimReminders(trx, share, config.sweepBatch);
      for (const row of due) await notifier.reminded(trx, { approvalId: row.id, expiresAt: row.expires_at, approvers: row.approvers });
      return due.length;
    });
  }

  /** Pending approvals whose contract can read live state: drift requeues them, as a click would. */
  async function revalidatePending(counts: SweepCounts): Promise<void> {
    const rows = await approvalsRepository.listRevalidatable(config.sweepBatch);
    const readable = [];
    for (const row of rows) if (await hasStateRefetch(row)) readable.push(row);
    await each(
      readable,
      counts,
      async (row) => {
        await approvalsRepository.markRevalidated(row.id);
        counts.revalidated++;
        const result = await approvals.revalidate(row, SWEEP_ACTOR);
        if (result?.outcome === 'requeued') counts.requeued++;
      },
      REVALIDATE_CONCURRENCY,
    );
  }

  async function hasStateRefetch(row: Approval): Promise<boolean> {
    const cp = row.checkpoint;
    if (cp.contract?.state_refetch) return true;
    const tool = await registry.getTool(cp.tool).catch(() => null);
    return Boolean(tool?.card.state_refetch);
  }

  /** Calls whose process died mid-call: reconciled from live state, never blindly retried. */
  async function recoverInterrupted(counts: SweepCounts): Promise<void> {
    const interrupted = await calls.claimInterrupted(config.sweepBatch, RECOVERY_LEASE_MS);
    await each(interrupted, counts, async (call) => {
      const { needsAttention } = await recovery.recoverInterrupted(call);
      counts.recovered++;
      if (needsAttention) counts.unknown_outcomes++;
    });
  }

  /** Bounded batches, so a large backlog never holds long locks. */
  async function trimRetention(counts: SweepCounts): Promise<void> {
    counts.idempotency_keys_removed += await calls.trimExpiredKeys(1000);
    // A call's trace is on its row: it goes with the call.
    counts.traces_removed += await calls.trimFinishedBefore(config.traceRetentionMs, 1000);
    await deps.trimCronClaims();
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
        [
          'vacuum',
          async () => {
            const tables = await deps.vacuumDue();
            if (tables.length > 0) log.info({ tables }, 'sweep vacuumed the embedded store');
          },
        ],
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
