import { checkpointKeys, ensureAuditPartitions, signCheckpoints } from '../../platform/audit/index.js';
import type { Logger } from '../../platform/logger.js';
import type { ModuleDeps } from '../../schema/index.js';
import { runAnomalyCheck } from './anomalies.js';
import { drainSecurityEvents } from './security-events.js';

export interface AuditScheduleOptions {
  /** how often identity's security events are moved into the audit log (default 5 s) */
  drainMs?: number;
  /** how often the anomaly rules run (default 60 s) */
  anomalyMs?: number;
  /** how often partitions ahead are (re)ensured (default 6 h) */
  partitionsMs?: number;
  /** how often each tenant's chain head is signed (default AUDIT_CHECKPOINT_INTERVAL_S) */
  checkpointMs?: number;
}

/**
 * The audit module's scheduled work in the API process: drain security
 * events, run the anomaly check, create partitions ahead, sign checkpoints. Safe to run in
 * several processes at once (SKIP LOCKED claims, per-tenant try-locks,
 * an advisory lock around partition creation). Timers are unref'd;
 * stop() waits for a run in progress.
 */
export class AuditScheduler {
  private timers: NodeJS.Timeout[] = [];
  private running = new Set<Promise<unknown>>();
  private busy = new Set<string>();
  private stopped = false;

  constructor(
    private readonly deps: ModuleDeps,
    private readonly opts: AuditScheduleOptions = {},
  ) {}

  start() {
    const { database } = this.deps;
    this.every('drain', this.opts.drainMs ?? 5_000, () => drainSecurityEvents(database.sql));
    this.every('anomalies', this.opts.anomalyMs ?? 60_000, () => runAnomalyCheck(database.sql, this.deps.log));
    this.every('partitions', this.opts.partitionsMs ?? 6 * 3_600_000, () => ensureAuditPartitions(database.sql));
    const keys = checkpointKeys(this.deps.config); // at start: a bad key file stops the boot, not a timer
    this.every('checkpoints', this.opts.checkpointMs ?? this.deps.config.auditCheckpoints.intervalS * 1000, () => signCheckpoints(database.sql, keys, this.deps.log));
  }

  private every(name: string, ms: number, fn: () => Promise<unknown>) {
    const log: Logger = this.deps.log;
    const t = setInterval(() => {
      if (this.stopped || this.busy.has(name)) return;
      this.busy.add(name);
      const p = fn()
        .catch((e: { code?: string; name?: string }) => log.error({ task: `audit.${name}`, pgCode: e?.code, errorName: e?.name }, 'audit scheduled task failed'))
        .finally(() => {
          this.busy.delete(name);
          this.running.delete(p);
        });
      this.running.add(p);
    }, ms);
    t.unref();
    this.timers.push(t);
  }

  async stop() {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await Promise.allSettled([...this.running]);
  }
}
