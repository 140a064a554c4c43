import { sql } from 'drizzle-orm';
import { bigint, index, jsonb, pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';
import { id, tenantId } from '../db/tables.js';

/**
 * The transactional outbox. A module writes a row with emitEvent() in the same
 * transaction as the change it announces; the relay publishes committed rows to
 * BullMQ queues and socket rooms, then marks them published. Rows carry ids
 * only, never PHI. The app role may insert (and read its own tenant's rows);
 * claiming and acknowledging across tenants goes through the SECURITY DEFINER
 * functions of the jobs migration (carebase_outbox_claim / _ack / _purge).
 */
export const outbox = pgTable(
  'outbox',
  {
    id: id(),
    /** commit-independent ordering for the relay (best effort across concurrent writers) */
    seq: bigint('seq', { mode: 'number' }).generatedAlwaysAsIdentity(),
    tenantId: tenantId(),
    /** domain event type, e.g. patient.updated */
    type: text('type').notNull(),
    /** id of the changed aggregate (patient id, visit id, ...) */
    aggregateId: text('aggregate_id').notNull(),
    /** ids only */
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull().default({}),
    /** socket rooms relative to the tenant, e.g. {"patient:<id>","visit:<id>"} */
    rooms: text('rooms').array().notNull().default(sql`'{}'::text[]`),
    /** job names to run in addition to those subscribed to the type */
    jobs: text('jobs').array().notNull().default(sql`'{}'::text[]`),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    publishedAt: timestamp('published_at', { withTimezone: true }),
  },
  (t) => [
    index('outbox_unpublished_idx').on(t.seq).where(sql`${t.publishedAt} is null`),
    index('outbox_published_at_idx').on(t.publishedAt).where(sql`${t.publishedAt} is not null`),
  ],
);

/**
 * Exactly-once effects: a job handler's effect and the row (queue, job_id)
 * commit in one transaction (JobContext.once), so a job that is redelivered
 * after a crash finds its row and skips the effect.
 */
export const processedJobs = pgTable(
  'processed_jobs',
  {
    tenantId: tenantId(),
    queue: text('queue').notNull(),
    jobId: text('job_id').notNull(),
    processedAt: timestamp('processed_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.queue, t.jobId] }), index('processed_jobs_processed_at_idx').on(t.processedAt)],
);
