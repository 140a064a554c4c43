import type { Config } from '../../config.js';
import type { Database, Db } from '../db/index.js';
import type { Logger } from '../logger.js';
import type { RequestScope } from '../scope/index.js';

/** What a domain event looks like once committed (ids only, never PHI). */
export interface DomainEvent {
  /** outbox row id; also the job id of every job the event triggers (idempotency key) */
  id: string;
  type: string;
  tenantId: string;
  aggregateId: string;
  payload: Record<string, unknown>;
  /** rooms relative to the tenant, e.g. "patient:<id>" */
  rooms: string[];
  /** job names requested explicitly (in addition to subscribers of the type) */
  jobs: string[];
  occurredAt: Date;
}

/** What a job handler receives besides its payload. */
export interface JobContext {
  log: Logger;
  database: Database;
  /** the process's configuration (e.g. key material of a scheduled task) */
  config: Config;
  /** BullMQ job id: the outbox id for event-driven jobs, the period id (`repeat:schedule.<name>:<ms>`) for scheduled runs */
  jobId: string;
  /** queue = job name, e.g. notifications.patientUpdated */
  queue: string;
  /** 1 on the first run, 2 on the first retry, ... */
  attempt: number;
  /** tenant the job belongs to (null for platform-wide scheduled runs) */
  tenantId: string | null;
  /** the event that triggered the job, when it came through the outbox */
  event?: { id: string; type: string; aggregateId: string; occurredAt: string };
  /**
   * Applies an effect exactly once per job, even if the worker dies mid-job
   * and the job is redelivered: `fn` runs in one tenant-scoped transaction that
   * also records (queue, jobId) in processed_jobs. A redelivered job that
   * already committed finds the row and skips `fn` ({ applied: false }).
   * Effects outside the database (e-mail, HTTP) must be idempotent on jobId.
   */
  once<T>(fn: (db: Db) => Promise<T>): Promise<{ applied: true; result: T } | { applied: false }>;
  /**
   * The run's request scope: as the user named by the payload's `onBehalfOf`
   * (a user id), else as the system principal `system:<job name>`; no
   * principal for platform-wide runs. `scope.db()` is a tenant transaction,
   * `scope.recordPhiAccess(...)` audits PHI the job reads; the scope commits
   * (trail durable) before the job completes. A tenant without the module's
   * entitlement fails the job for good (FEATURE_NOT_ENTITLED).
   */
  scope: RequestScope;
}

/** A background job handler; payloads carry ids only, never PHI. */
export type JobHandler = (payload: Record<string, unknown>, ctx: JobContext) => Promise<void>;

/** A job with options; a bare JobHandler gets the defaults. */
export interface JobDefinition {
  handler: JobHandler;
  /** event types that enqueue this job, one job per event (job id = outbox id) */
  on?: readonly string[];
  /** total runs before the job lands in the dead-letter queue (default 5) */
  attempts?: number;
  /** first retry delay in ms; doubles each retry (exponential, default 1000) */
  backoffMs?: number;
  /** jobs processed in parallel per worker process (default 10; 1 for scheduled jobs) */
  concurrency?: number;
  /**
   * Scheduled job, every this many ms (a function of the config for a configurable interval; JOB_SCHEDULE_INTERVALS
   * overrides it by job name). A BullMQ job scheduler makes one job per period: exactly one process runs each
   * period's run, whatever the number of API and worker processes; a failed run is retried (attempts, backoffMs),
   * then lands in the dead-letter queue. Runs are platform-wide (tenantId null).
   */
  every?: number | ((config: Config) => number);
  /** scheduled job on a cron pattern instead (5 or 6 fields, UTC unless tz); same guarantees as `every` */
  cron?: string;
  tz?: string;
  /** payload of each scheduled run (ids only) */
  cronPayload?: Record<string, unknown>;
}

export type JobRegistration = JobHandler | JobDefinition;

/** Where the relay sends an event's socket fan-out (implemented by platform/realtime). */
export interface EventSink {
  publish(event: DomainEvent): void | Promise<void>;
}

export function isJobDefinition(j: JobRegistration): j is JobDefinition {
  return typeof j === 'object' && j !== null && typeof j.handler === 'function';
}
