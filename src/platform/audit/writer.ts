import client from 'prom-client';
import type postgres from 'postgres';
import type { Logger } from '../logger.js';
import { appendChained, ensureAuditPartitions, isMissingPartition } from './chain.js';
import type { AuditEventInput } from './types.js';

interface Pending {
  events: readonly AuditEventInput[];
  /** a tenant whose staged events (audit_staged) this batch chains */
  chain?: string;
  resolve: () => void;
  reject: (e: unknown) => void;
}

export interface AuditWriterOptions {
  /** the app pool (carebase_app; RLS applies); the writer is registered under it */
  sql: postgres.Sql;
  /**
   * A small pool of the writer's own (carebase_app) for the batch
   * transactions. Needed whenever requests wait for the writer while holding
   * a connection of `sql` (read requests keep their transaction open until
   * the response): sharing that pool, a full pool of waiting requests would
   * starve the batch that would release them. The writer ends it on close.
   */
  writerSql?: postgres.Sql;
  log?: Logger;
  /** Prometheus registry for the batch metrics (the app's) */
  registry?: client.Registry;
  /**
   * How long a batch waits for company before it is written, in ms. 0 (the
   * default) = commit when idle: a batch is written on the next turn of the
   * event loop, and whatever arrives while it commits forms the next batch,
   * so batches grow with load without adding latency when idle.
   */
  lingerMs?: number;
  /** most events in one batch transaction */
  maxBatchEvents?: number;
}

export interface AuditWriterStats {
  batches: number;
  events: number;
  requests: number;
  failures: number;
  maxBatchEvents: number;
  maxBatchRequests: number;
}

const BATCH_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

/**
 * Group commit for audit events that are not part of a request's own
 * transaction (reads, denials, security events): many concurrent requests
 * share one transaction (one INSERT per tenant, one commit/fsync), and each
 * caller's promise settles only when its batch has committed, so a response
 * that waits for it never runs ahead of its audit trail.
 */
export class AuditWriter {
  private queue: Pending[] = [];
  private scheduled = false;
  private flushing: Promise<void> | undefined;
  private closed = false;
  private readonly lingerMs: number;
  private readonly maxBatchEvents: number;
  private readonly counters: AuditWriterStats = { batches: 0, events: 0, requests: 0, failures: 0, maxBatchEvents: 0, maxBatchRequests: 0 };
  private readonly metrics?: {
    batchEvents: client.Histogram;
    batchRequests: client.Histogram;
    failures: client.Counter;
  };

  constructor(private readonly opts: AuditWriterOptions) {
    this.lingerMs = opts.lingerMs ?? 0;
    this.maxBatchEvents = opts.maxBatchEvents ?? 5000;
    if (opts.registry) {
      this.metrics = {
        batchEvents: new client.Histogram({
          name: 'carebase_audit_batch_events',
          help: 'Audit events per group-commit batch',
          buckets: BATCH_BUCKETS,
          registers: [opts.registry],
        }),
        batchRequests: new client.Histogram({
          name: 'carebase_audit_batch_requests',
          help: 'Requests (appends) sharing one group-commit batch',
          buckets: BATCH_BUCKETS,
          registers: [opts.registry],
        }),
        failures: new client.Counter({
          name: 'carebase_audit_write_failures_total',
          help: 'Group-commit batches that failed (their requests got AUDIT_UNAVAILABLE)',
          registers: [opts.registry],
        }),
      };
    }
  }

  /** Resolves once the events are committed; rejects when they could not be (the caller must not disclose). */
  append(events: readonly AuditEventInput[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error('audit writer is closed'));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ events, resolve, reject });
      this.schedule();
    });
  }

  /**
   * Chains a tenant's staged events (a write's events, staged in its own
   * transaction: stageChained) in the next batch; resolves once they are in
   * the chain. Many writes' calls share one batch and one head lock.
   */
  chainStaged(tenantId: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error('audit writer is closed'));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ events: [], chain: tenantId, resolve, reject });
      this.schedule();
    });
  }

  /** Chains every tenant's staged events (what a crash between a write's commit and its chaining left behind). */
  async chainAllStaged(): Promise<number> {
    const tenants = await this.pool<{ t: string }[]>`select t from carebase_audit_staged_tenants() t`;
    await Promise.all(tenants.map(({ t }) => this.chainStaged(t)));
    return tenants.length;
  }

  /** the pool this writer appends through */
  get pool(): postgres.Sql {
    return this.opts.writerSql ?? this.opts.sql;
  }

  stats(): AuditWriterStats {
    return { ...this.counters };
  }

  /** Writes what is queued, then refuses new events. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing || this.queue.length) {
      if (this.flushing) await this.flushing;
      else await this.flush();
    }
    await this.opts.writerSql?.end({ timeout: 5 });
  }

  private schedule() {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      void this.flush();
    };
    if (this.lingerMs > 0) setTimeout(run, this.lingerMs);
    else setImmediate(run);
  }

  private flush(): Promise<void> {
    if (this.flushing || this.queue.length === 0) return this.flushing ?? Promise.resolve();
    const batch: Pending[] = [];
    let n = 0;
    while (this.queue.length && (batch.length === 0 || n + this.queue[0]!.events.length <= this.maxBatchEvents)) {
      const p = this.queue.shift()!;
      batch.push(p);
      n += p.events.length;
    }
    this.flushing = this.write(batch, n).finally(() => {
      this.flushing = undefined;
      if (this.queue.length) this.schedule();
    });
    return this.flushing;
  }

  /**
   * Commits a batch. When PostgreSQL refuses it because of an event's content
   * (SQLSTATE class 22 or 23, e.g. a value a column cannot hold), the batch is
   * split in halves and each half written on its own, recursively: every other
   * request's events still commit, and only the request that brought the bad
   * event fails (AUDIT_UNAVAILABLE). An outage fails the batch whole.
   */
  private async write(batch: Pending[], n: number): Promise<void> {
    try {
      await this.commit(batch);
      this.counters.batches++;
      this.counters.events += n;
      this.counters.requests += batch.length;
      this.counters.maxBatchEvents = Math.max(this.counters.maxBatchEvents, n);
      this.counters.maxBatchRequests = Math.max(this.counters.maxBatchRequests, batch.length);
      this.metrics?.batchEvents.observe(n);
      this.metrics?.batchRequests.observe(batch.length);
      for (const p of batch) p.resolve();
    } catch (e) {
      const err = e as { code?: string; name?: string };
      if (batch.length > 1 && isEventError(e)) {
        this.opts.log?.warn({ pgCode: err?.code, requests: batch.length }, 'audit batch refused: writing its requests apart');
        const half = Math.ceil(batch.length / 2);
        for (const part of [batch.slice(0, half), batch.slice(half)]) {
          await this.write(part, part.reduce((sum, p) => sum + p.events.length, 0));
        }
        return;
      }
      this.counters.failures++;
      this.metrics?.failures.inc();
      this.opts.log?.error({ pgCode: err?.code, errorName: err?.name, events: n, requests: batch.length }, 'audit batch write failed');
      for (const p of batch) p.reject(e);
    }
  }

  /** One transaction for the batch (one append per tenant); a missing partition is created and the batch retried once. */
  private async commit(batch: Pending[]): Promise<void> {
    const byTenant = new Map<string, AuditEventInput[]>();
    const chain = new Set<string>();
    for (const p of batch) {
      if (p.chain) {
        chain.add(p.chain);
        if (!byTenant.has(p.chain)) byTenant.set(p.chain, []);
      }
      for (const e of p.events) {
        const list = byTenant.get(e.tenantId);
        if (list) list.push(e);
        else byTenant.set(e.tenantId, [e]);
      }
    }
    // a fixed lock order across batches and processes: no deadlock between group commits
    const tenants = [...byTenant.keys()].sort();
    // The one place that sets app.tenant_id by hand instead of withTenant (platform/db/tenancy.ts): a group commit
    // appends several tenants' events in ONE transaction, switching the tenant between their appends; withTenant
    // holds one tenant per transaction for its whole life. Every statement (BEGIN, the settings, each tenant's
    // set_config and append, COMMIT) is started at once: postgres-js sends them in one write, PostgreSQL runs them
    // in order, and the batch costs one round trip. A failed statement aborts the transaction, the statements after
    // it fail and COMMIT rolls back; the batch fails with the first error (the one that says what was wrong).
    const attempt = async () => {
      const conn = await this.pool.reserve();
      try {
        const steps: Promise<unknown>[] = [conn`begin`.execute()];
        try {
          for (const [i, tenant] of tenants.entries()) {
            // the batch's deadlines go with the first tenant's setting: one statement fewer per batch
            steps.push(
              i === 0
                ? conn`select set_config('lock_timeout', '5s', true), set_config('statement_timeout', '15s', true), set_config('app.tenant_id', ${tenant}, true)`.execute()
                : conn`select set_config('app.tenant_id', ${tenant}, true)`.execute(),
            );
            const events = byTenant.get(tenant)!;
            if (events.length) steps.push(appendChained(conn, tenant, events));
            if (chain.has(tenant)) steps.push(conn`select carebase_audit_chain_staged(${tenant})`.execute());
          }
        } catch (e) {
          // an event that could not be prepared: end the transaction before the connection goes back
          await Promise.allSettled(steps);
          await conn`rollback`.catch(() => undefined);
          throw e;
        }
        const committed = conn`commit`.execute();
        const settled = await Promise.allSettled([...steps, committed]);
        const failed = settled.find((r) => r.status === 'rejected');
        if (failed) throw (failed as PromiseRejectedResult).reason;
      } finally {
        conn.release();
      }
    };
    try {
      await attempt();
    } catch (e) {
      if (!isMissingPartition(e)) throw e;
      await ensureAuditPartitions(this.pool);
      await attempt();
    }
  }
}

/**
 * An error caused by what the batch holds rather than by the database being
 * unreachable or busy: a data exception or constraint violation (SQLSTATE
 * class 22/23), or an error without a code (thrown while building the rows).
 */
function isEventError(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return typeof code !== 'string' || code.startsWith('22') || code.startsWith('23');
}

const writers = new WeakMap<postgres.Sql, AuditWriter>();

/** Creates the writer of a pool (one per pool; the app creates it at boot). */
export function createAuditWriter(opts: AuditWriterOptions): AuditWriter {
  const w = new AuditWriter(opts);
  writers.set(opts.sql, w);
  return w;
}

/** The writer of a pool, created on first use (e.g. a CLI recording a security event). */
export function auditWriterFor(sql: postgres.Sql): AuditWriter {
  let w = writers.get(sql);
  if (!w) {
    w = new AuditWriter({ sql });
    writers.set(sql, w);
  }
  return w;
}

/** Closes and forgets the writer of a pool. */
export async function closeAuditWriter(sql: postgres.Sql): Promise<void> {
  const w = writers.get(sql);
  if (!w) return;
  writers.delete(sql);
  await w.close();
}
