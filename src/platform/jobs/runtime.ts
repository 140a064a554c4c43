import { UnrecoverableError, type Job, type JobsOptions, type Queue, type Worker } from 'bullmq';
import client, { type Registry } from 'prom-client';
import { sql } from 'drizzle-orm';
import type { Config } from '../../config.js';
import { withTenant, type Database, type Db } from '../db/index.js';
import { AppError, ErrorCode, notFound } from '../errors.js';
import { settledWithin } from '../deadline.js';
import { describeForLog } from '../http/graphql-errors.js';
import { lastKnown } from '../http/metrics.js';
import type { Logger } from '../logger.js';
import { jobPrincipal, type ScopeFactory } from '../scope/index.js';
import type { JobBackend } from './backend.js';
import { isJobDefinition, type DomainEvent, type JobContext, type JobDefinition, type JobRegistration } from './types.js';

const JOB_NAME = /^[a-z][a-zA-Z0-9]*(\.[a-zA-Z0-9]+)+$/;
const DEFAULT_ATTEMPTS = 5;
const DEFAULT_BACKOFF_MS = 1000;
const DEFAULT_CONCURRENCY = 10;
/** completed jobs are kept a day so a re-published outbox row is deduplicated by job id */
const KEEP_COMPLETED = { age: 24 * 3600, count: 50_000 };
/** failed jobs (the dead-letter queue) are kept 30 days unless retried or discarded */
const KEEP_FAILED = { age: 30 * 24 * 3600 };
/** completed scheduled runs: a few for inspection (their ids are period ids, never re-added) */
const KEEP_COMPLETED_RUNS = { age: 24 * 3600, count: 1000 };
/** failed scheduled runs: 30 days, at most 1000 per schedule (a 5 s schedule failing for a day is 17,280 runs) */
const KEEP_FAILED_RUNS = { age: 30 * 24 * 3600, count: 1000 };
/** shortest interval of a scheduled job */
const MIN_EVERY_MS = 100;

/** What a job carries in BullMQ: ids only. */
export interface JobData {
  tenantId: string | null;
  payload: Record<string, unknown>;
  event?: { id: string; type: string; aggregateId: string; occurredAt: string };
}

export interface RegisteredJob extends JobDefinition {
  name: string;
  module: string;
  /** resolved schedule of a scheduled job (every: ms, or a cron pattern) */
  schedule?: { every: number } | { pattern: string; tz: string };
}

/** A failed job as the admin API shows it (no payload values, no stack). */
export interface DeadLetter {
  id: string;
  queue: string;
  tenantId: string | null;
  /** the job scheduler that made this run (scheduled jobs), null for event-driven jobs */
  schedule: string | null;
  eventType: string | null;
  aggregateId: string | null;
  attemptsMade: number;
  failedReason: string;
  createdAt: Date;
  failedAt: Date | null;
}

export interface JobSystemOptions {
  backend: JobBackend;
  database: Database;
  log: Logger;
  /** schedule intervals (JOB_SCHEDULE_INTERVALS, functions of the config); JobContext.config */
  config: Config;
  /** the app's metrics registry */
  registry: Registry;
  /** job name -> registration, with the module that declared it (enabled modules only) */
  jobs: ReadonlyMap<string, { module: string; registration: JobRegistration }>;
  /** run workers in this process (npm run worker, or npm start in embedded mode) */
  runWorkers: boolean;
  /** graceful close: wait this long for active jobs, then force */
  closeTimeoutMs: number;
  /** BullMQ lock duration (ms); a killed worker's job is redelivered after about this long */
  lockDurationMs?: number;
  /** how often workers look for stalled jobs (ms) */
  stalledIntervalMs?: number;
  /** each run is a request scope (JobContext.scope), committed before the job completes */
  scopes: ScopeFactory;
}

/**
 * Queues, workers and schedulers for the enabled modules' jobs. One queue per
 * job name (the queue name is the job name), so each job has its own
 * concurrency, retries and metrics. Event-driven jobs get the outbox id as
 * job id: enqueuing the same event twice is a no-op while the first job is
 * kept (KEEP_COMPLETED), and JobContext.once() makes the effect exactly-once
 * beyond that.
 */
export class JobSystem {
  readonly kind: 'redis' | 'postgres';
  private readonly jobs = new Map<string, RegisteredJob>();
  private readonly queues = new Map<string, Queue>();
  private readonly workers: Worker[] = [];
  private readonly subscribers = new Map<string, string[]>();
  private readonly metrics;
  private started = false;
  private closing?: Promise<void>;

  constructor(private readonly opts: JobSystemOptions) {
    this.kind = opts.backend.kind;
    for (const [name, { module, registration }] of opts.jobs) {
      if (!JOB_NAME.test(name)) throw new Error(`job name "${name}" of module ${module} must look like module.jobName`);
      const def: JobDefinition = isJobDefinition(registration) ? registration : { handler: registration };
      const job: RegisteredJob = { ...def, name, module, schedule: resolveSchedule(name, def, opts.config) };
      this.jobs.set(name, job);
      for (const type of def.on ?? []) {
        const list = this.subscribers.get(type) ?? [];
        list.push(name);
        this.subscribers.set(type, list);
      }
    }
    for (const name of Object.keys(opts.config.jobs.scheduleEveryMs)) {
      if (!this.jobs.get(name)?.schedule) opts.log.warn({ job: name }, 'JOB_SCHEDULE_INTERVALS names no scheduled job of the enabled modules');
    }
    this.metrics = createJobMetrics(opts.registry, () => this.counts());
  }

  get jobNames(): string[] {
    return [...this.jobs.keys()];
  }

  /** job names subscribed to an event type */
  subscribersOf(type: string): readonly string[] {
    return this.subscribers.get(type) ?? [];
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    for (const job of this.jobs.values()) {
      const queue = this.opts.backend.queue(job.name, {
        defaultJobOptions: this.jobOptions(job),
      });
      this.queues.set(job.name, queue);
    }
    await Promise.all([...this.queues.values()].map((q) => q.waitUntilReady()));
    await this.syncSchedulers();
    if (this.opts.runWorkers) {
      for (const job of this.jobs.values()) this.workers.push(this.startWorker(job));
      await Promise.all(this.workers.map((w) => w.waitUntilReady()));
    }
    this.opts.log.info({ backend: this.kind, queues: this.queues.size, workers: this.workers.length }, 'jobs started');
  }

  private jobOptions(job: RegisteredJob): JobsOptions {
    return {
      attempts: Math.max(1, job.attempts ?? DEFAULT_ATTEMPTS),
      backoff: { type: 'exponential', delay: Math.max(1, job.backoffMs ?? DEFAULT_BACKOFF_MS) },
      removeOnComplete: job.schedule ? KEEP_COMPLETED_RUNS : KEEP_COMPLETED,
      removeOnFail: job.schedule ? KEEP_FAILED_RUNS : KEEP_FAILED,
      // stack traces carry error messages, and those may carry PHI: keep none
      stackTraceLimit: 0,
    };
  }

  /**
   * Scheduled jobs become BullMQ job schedulers (one per job, id `schedule.<name>`); schedulers no longer declared
   * are removed. Every process upserts the same schedulers at boot: a scheduler makes one job per period (job id
   * `repeat:<scheduler>:<period ms>`), and an upsert with unchanged options keeps the pending period, so the number
   * of processes changes nothing. Processes must agree on the interval (same configuration), else the last boot wins.
   */
  private async syncSchedulers(): Promise<void> {
    for (const job of this.jobs.values()) {
      const queue = this.queues.get(job.name)!;
      const schedulerId = `schedule.${job.name}`;
      // `cron.<name>`: the id of cron jobs before schedules had their own prefix
      await queue.removeJobScheduler(`cron.${job.name}`).catch(() => false);
      if (job.schedule) {
        const data: JobData = { tenantId: null, payload: job.cronPayload ?? {} };
        try {
          await queue.upsertJobScheduler(schedulerId, job.schedule, { name: job.name, data, opts: this.jobOptions(job) });
        } catch (e) {
          // another process's run of this very period is active (cron: -10, every: -11): the scheduler exists and goes on
          const code = (e as { code?: unknown }).code;
          if (code !== -10 && code !== -11) throw e;
          this.opts.log.info({ queue: job.name }, 'jobs: schedule has a run in progress; kept as is');
        }
      } else {
        await queue.removeJobScheduler(schedulerId).catch(() => false);
      }
    }
  }

  /** The job schedulers of this process's scheduled jobs: id, interval or pattern, next run (operations, tests). */
  async schedules(): Promise<{ queue: string; id: string; every?: number; pattern?: string; next?: number }[]> {
    const out: { queue: string; id: string; every?: number; pattern?: string; next?: number }[] = [];
    for (const job of this.jobs.values()) {
      if (!job.schedule) continue;
      for (const s of await this.queueOrThrow(job.name).getJobSchedulers(0, -1)) {
        out.push({ queue: job.name, id: s.key, every: s.every ?? undefined, pattern: s.pattern ?? undefined, next: s.next });
      }
    }
    return out;
  }

  private startWorker(job: RegisteredJob): Worker {
    const { log, database } = this.opts;
    const worker = this.opts.backend.worker(job.name, (j) => this.process(job, j), {
      // a scheduled run that outlasts its period does not overlap the next one in the same process
      concurrency: job.concurrency ?? (job.schedule ? 1 : DEFAULT_CONCURRENCY),
      lockDuration: this.opts.lockDurationMs ?? 30_000,
      stalledInterval: this.opts.stalledIntervalMs ?? 30_000,
      maxStalledCount: 2,
      autorun: true,
    });
    worker.on('error', (e) => log.warn({ queue: job.name, errorName: e.name }, 'jobs: worker error'));
    worker.on('failed', (j, e) => {
      if (!j) return;
      const final = j.attemptsMade >= (j.opts.attempts ?? 1) || e instanceof UnrecoverableError || e?.name === 'UnrecoverableError';
      if (final) log.warn({ queue: job.name, jobId: j.id, attempts: j.attemptsMade }, 'job moved to the dead-letter queue');
    });
    void database;
    return worker;
  }

  private async process(job: RegisteredJob, j: Job): Promise<void> {
    const data = j.data as JobData;
    const started = Date.now();
    const since = data.event?.occurredAt ? Date.parse(data.event.occurredAt) : j.timestamp;
    this.metrics.latency.observe({ queue: job.name }, Math.max(0, started - since) / 1000);
    let childLog: Logger | undefined;
    // a pino child per job is not free: build it only when the handler (or a failure) logs
    const logOf = () => (childLog ??= this.opts.log.child({ queue: job.name, jobId: j.id, attempt: j.attemptsMade + 1 }));
    const ctx: JobContext = {
      get log() {
        return logOf();
      },
      database: this.opts.database,
      config: this.opts.config,
      jobId: j.id!,
      queue: job.name,
      attempt: j.attemptsMade + 1,
      tenantId: data.tenantId,
      event: data.event,
      once: (fn) => this.once(job.name, j.id!, data.tenantId, fn),
      scope: this.opts.scopes.create({ door: 'job', principal: jobPrincipal(job.name, data.tenantId, data.payload), requestId: j.id!, operationName: job.name }),
    };
    try {
      await ctx.scope.requireEntitled(this.opts.scopes.entitlements.keyOf(job.module));
      await job.handler(data.payload ?? {}, ctx);
      await ctx.scope.finish(true); // committed, PHI access durable: only then is the job complete
      this.metrics.duration.observe({ queue: job.name, outcome: 'completed' }, (Date.now() - started) / 1000);
    } catch (e) {
      await ctx.scope.finish(false).catch(() => undefined);
      this.metrics.duration.observe({ queue: job.name, outcome: 'failed' }, (Date.now() - started) / 1000);
      logOf().warn(describeForLog(e), 'job attempt failed');
      const reason = safeReason(e);
      // a tenant without the module's entitlement: retrying will not help
      if (e instanceof UnrecoverableError || (e instanceof AppError && e.code === ErrorCode.FEATURE_NOT_ENTITLED)) throw new UnrecoverableError(reason);
      const err = new Error(reason);
      err.name = 'JobFailed';
      throw err;
    }
  }

  private async once<T>(queue: string, jobId: string, tenantId: string | null, fn: (db: Db) => Promise<T>): Promise<{ applied: true; result: T } | { applied: false }> {
    if (!tenantId) throw new Error('JobContext.once needs a tenant-scoped job');
    return withTenant(this.opts.database.sql, tenantId, async (db) => {
      const rows = await db.execute<{ ok: number }>(sql`
        insert into processed_jobs (tenant_id, queue, job_id) values (${tenantId}, ${queue}, ${jobId})
        on conflict do nothing returning 1 as ok`);
      if (rows.length === 0) return { applied: false as const };
      return { applied: true as const, result: await fn(db) };
    });
  }

  /**
   * Enqueues the jobs of a batch of committed events (called by the relay).
   * Job id = event id: adding an event twice is a no-op while the job is kept.
   * Returns how many jobs were added (including deduplicated ones).
   */
  async publish(events: readonly DomainEvent[]): Promise<number> {
    const perQueue = new Map<string, DomainEvent[]>();
    for (const ev of events) {
      const targets = new Set([...this.subscribersOf(ev.type), ...ev.jobs]);
      for (const name of targets) {
        if (!this.queues.has(name)) continue; // job of a disabled module: nothing runs it
        const list = perQueue.get(name) ?? [];
        list.push(ev);
        perQueue.set(name, list);
      }
    }
    let n = 0;
    await Promise.all(
      [...perQueue].map(async ([name, evs]) => {
        const queue = this.queues.get(name)!;
        await queue.addBulk(
          evs.map((ev) => ({
            name,
            data: {
              tenantId: ev.tenantId,
              payload: ev.payload,
              event: { id: ev.id, type: ev.type, aggregateId: ev.aggregateId, occurredAt: ev.occurredAt.toISOString() },
            } satisfies JobData,
            opts: { jobId: ev.id },
          })),
        );
        n += evs.length;
      }),
    );
    return n;
  }

  private queueOrThrow(name: string): Queue {
    const q = this.queues.get(name);
    if (!q) throw notFound('Queue');
    return q;
  }

  /**
   * Failed jobs (the dead-letter queue) of one tenant, newest first; with `platform`, also the failed runs of
   * platform-wide scheduled jobs (tenantId null).
   */
  async deadLetters(tenantId: string, opts: { queue?: string; limit?: number; platform?: boolean } = {}): Promise<DeadLetter[]> {
    const limit = Math.min(Math.max(opts.limit ?? 50, 1), 200);
    const queues = opts.queue ? [this.queueOrThrow(opts.queue)] : [...this.queues.values()];
    const out: DeadLetter[] = [];
    for (const q of queues) {
      // scan a bounded window of each queue's failed set; filter by tenant
      const jobs = await q.getFailed(0, 999);
      for (const j of jobs) {
        if (!j || !visibleTo(j, tenantId, opts.platform)) continue;
        out.push(toDeadLetter(q.name, j));
      }
    }
    out.sort((a, b) => (b.failedAt?.getTime() ?? 0) - (a.failedAt?.getTime() ?? 0));
    return out.slice(0, limit);
  }

  private async failedJob(tenantId: string, queue: string, id: string, platform?: boolean): Promise<Job> {
    const q = this.queueOrThrow(queue);
    const job = await q.getJob(id);
    if (!job || !visibleTo(job, tenantId, platform)) throw notFound('Failed job');
    if (!(await job.isFailed())) throw new AppError(ErrorCode.CONFLICT, 'Job is not in the dead-letter queue');
    return job;
  }

  /** Moves a dead-lettered job back to the queue with a fresh set of attempts. */
  async retryDeadLetter(tenantId: string, queue: string, id: string, opts: { platform?: boolean } = {}): Promise<void> {
    const job = await this.failedJob(tenantId, queue, id, opts.platform);
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
  }

  /** Deletes a dead-lettered job for good. */
  async discardDeadLetter(tenantId: string, queue: string, id: string, opts: { platform?: boolean } = {}): Promise<void> {
    const job = await this.failedJob(tenantId, queue, id, opts.platform);
    await job.remove();
  }

  /** waiting/active/delayed/failed counts per queue (metrics). */
  async counts(): Promise<Map<string, Record<string, number>>> {
    const out = new Map<string, Record<string, number>>();
    await Promise.all(
      [...this.queues].map(async ([name, q]) => {
        out.set(name, await q.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed'));
      }),
    );
    return out;
  }

  /** Stops taking jobs, waits up to closeTimeoutMs for active ones, then forces. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const { log, closeTimeoutMs } = this.opts;
      const graceful = await settledWithin(Promise.allSettled(this.workers.map((w) => w.close())), closeTimeoutMs);
      if (!graceful) {
        log.warn({ workers: this.workers.length }, 'jobs: close timeout, forcing workers to stop (their jobs will be redelivered)');
        await Promise.allSettled(this.workers.map((w) => w.close(true)));
      }
      await this.opts.backend.close();
      this.metrics.unregister();
    })();
    return this.closing;
  }
}

/** A tenant's jobs; platform-wide jobs (scheduled runs, tenantId null) only to callers allowed to see them. */
function visibleTo(j: Job, tenantId: string, platform = false): boolean {
  const owner = (j.data as JobData | undefined)?.tenantId;
  return owner === tenantId || (platform && owner === null);
}

/** A scheduled job's schedule: `every` (JOB_SCHEDULE_INTERVALS wins) or `cron`; undefined for other jobs. */
function resolveSchedule(name: string, def: JobDefinition, config: Config): RegisteredJob['schedule'] {
  if (def.every !== undefined && def.cron !== undefined) throw new Error(`job "${name}" declares both every and cron`);
  if (def.cron !== undefined) return { pattern: def.cron, tz: def.tz ?? 'UTC' };
  if (def.every === undefined) return undefined;
  const every = config.jobs.scheduleEveryMs[name] ?? (typeof def.every === 'function' ? def.every(config) : def.every);
  if (!Number.isInteger(every) || every < MIN_EVERY_MS) throw new Error(`job "${name}": every must be an integer of at least ${MIN_EVERY_MS} ms`);
  return { every };
}

function toDeadLetter(queue: string, j: Job): DeadLetter {
  const data = (j.data ?? {}) as JobData;
  return {
    id: j.id!,
    queue,
    tenantId: data.tenantId ?? null,
    schedule: j.repeatJobKey ?? null,
    eventType: data.event?.type ?? null,
    aggregateId: data.event?.aggregateId ?? null,
    attemptsMade: j.attemptsMade,
    failedReason: j.failedReason ?? '',
    createdAt: new Date(j.timestamp),
    failedAt: j.finishedOn ? new Date(j.finishedOn) : null,
  };
}

/** The only failure text stored with a job: an AppError's code and client-safe message, else the error's class name. */
export function safeReason(e: unknown): string {
  if (e instanceof AppError) return `${e.code}: ${e.message}`.slice(0, 300);
  const err = e as { name?: unknown; code?: unknown };
  const name = typeof err?.name === 'string' && /^[A-Za-z]{1,64}$/.test(err.name) ? err.name : 'Error';
  const code = typeof err?.code === 'string' && /^[A-Z0-9_]{1,32}$/.test(err.code) ? ` (${err.code})` : '';
  return `${name}${code}`;
}

function createJobMetrics(registry: Registry, counts: () => Promise<Map<string, Record<string, number>>>) {
  const names = ['carebase_jobs', 'carebase_jobs_counts_stale', 'carebase_job_latency_seconds', 'carebase_job_duration_seconds'];
  for (const n of names) registry.removeSingleMetric(n);
  // bounded: a scrape must answer while the queue datastore (Redis) does not
  const read = lastKnown(counts);
  let scrape: ReturnType<typeof read> | undefined;
  const gauge = new client.Gauge({
    name: 'carebase_jobs',
    help: 'Jobs per queue and state (waiting, active, delayed, failed = dead-letter queue, completed = kept for deduplication)',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    async collect() {
      scrape = read();
      const { value } = await scrape;
      this.reset();
      for (const [queue, c] of value ?? []) for (const [state, n] of Object.entries(c)) this.set({ queue, state }, n);
    },
  });
  // registered after carebase_jobs: the registry collects in order, so this reads the same scrape's answer
  const stale = new client.Gauge({
    name: 'carebase_jobs_counts_stale',
    help: '1 when carebase_jobs shows the last counts read because the queue datastore did not answer the scrape in time',
    registers: [registry],
    async collect() {
      this.set((await (scrape ?? read())).stale ? 1 : 0);
    },
  });
  const latency = new client.Histogram({
    name: 'carebase_job_latency_seconds',
    help: 'Time from the event commit (or enqueue) to the start of processing',
    labelNames: ['queue'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  });
  const duration = new client.Histogram({
    name: 'carebase_job_duration_seconds',
    help: 'Handler run time per attempt, by outcome',
    labelNames: ['queue', 'outcome'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  return {
    latency,
    duration,
    unregister() {
      void gauge;
      void stale;
      for (const n of names) registry.removeSingleMetric(n);
    },
  };
}
