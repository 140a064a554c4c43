import type { JobDefinition } from './types.js';

/** Published outbox rows and processed-job markers are kept this long (redelivery deduplication). */
export const OUTBOX_RETENTION_S = 7 * 24 * 3600;

/**
 * The platform's own periodic cleanups, scheduled like a module's scheduled
 * jobs (BullMQ job schedulers: one run per period whatever the number of
 * processes, retried, then in the dead-letter queue). Intervals can be
 * changed with JOB_SCHEDULE_INTERVALS.
 */
export const PLATFORM_SCHEDULES: Readonly<Record<string, JobDefinition>> = {
  // expired Idempotency-Key outcomes of every tenant (SECURITY DEFINER function)
  'platform.purgeIdempotencyKeys': {
    every: 3_600_000,
    attempts: 3,
    backoffMs: 10_000,
    handler: async (_payload, ctx) => {
      await ctx.database.sql`select carebase_purge_idempotency_keys()`;
    },
  },
  // published outbox rows and processed_jobs markers older than the retention, 10,000 a run (SECURITY DEFINER function)
  'platform.purgeOutbox': {
    every: 10 * 60_000,
    attempts: 3,
    backoffMs: 10_000,
    handler: async (_payload, ctx) => {
      await ctx.database.sql`select carebase_outbox_purge(${`${OUTBOX_RETENTION_S} seconds`}::interval, 10000)`;
    },
  },
};
