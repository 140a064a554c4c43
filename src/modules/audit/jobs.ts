import { auditWriterFor, checkpointKeys, ensureAuditPartitions, signCheckpoints } from '../../platform/audit/index.js';
import type { JobDefinition } from '../../platform/jobs/index.js';
import { PATIENT_DIRECTORY, runAnomalyCheck, type PatientDirectory } from './anomalies.js';
import { drainSecurityEvents } from './security-events.js';

/**
 * The audit module's scheduled work: drain identity's security events into
 * the audit log, chain staged write events left by a crash, run the anomaly rules, create partitions ahead, sign each
 * tenant's chain head. BullMQ job schedulers (platform/jobs): one run per
 * period whatever the number of API and worker processes, a failed run is
 * retried and then lands in the dead-letter queue. The tasks stay safe if two
 * runs overlap (a run longer than its period, a redelivered run): SKIP LOCKED
 * claims, per-tenant try-locks, an advisory lock around partition creation.
 * Intervals: JOB_SCHEDULE_INTERVALS overrides any of them by name.
 */
export const AUDIT_SCHEDULES: Readonly<Record<string, JobDefinition>> = {
  'audit.drainSecurityEvents': {
    every: 5_000,
    attempts: 3,
    backoffMs: 1_000,
    handler: async (_payload, ctx) => {
      await drainSecurityEvents(ctx.database.sql);
    },
  },
  // a write's audit events are chained right after its commit; this chains what a crash in between left staged
  'audit.chainStaged': {
    every: 5_000,
    attempts: 3,
    backoffMs: 1_000,
    handler: async (_payload, ctx) => {
      await auditWriterFor(ctx.database.sql).chainAllStaged();
    },
  },
  'audit.anomalies': {
    every: 60_000,
    attempts: 3,
    backoffMs: 5_000,
    handler: async (_payload, ctx) => {
      await runAnomalyCheck(ctx.database.sql, ctx.log, { directories: ctx.scope.provided<PatientDirectory>(PATIENT_DIRECTORY) });
    },
  },
  'audit.partitions': {
    every: 6 * 3_600_000,
    attempts: 5,
    backoffMs: 60_000,
    handler: async (_payload, ctx) => {
      await ensureAuditPartitions(ctx.database.sql);
    },
  },
  'audit.checkpoints': {
    every: (config) => config.auditCheckpoints.intervalS * 1000,
    attempts: 5,
    backoffMs: 5_000,
    handler: async (_payload, ctx) => {
      await signCheckpoints(ctx.database.sql, checkpointKeys(ctx.config), ctx.log);
    },
  },
};
