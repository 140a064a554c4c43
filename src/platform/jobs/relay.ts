import client, { type Registry } from 'prom-client';
import type postgres from 'postgres';
import type { Database } from '../db/index.js';
import { describeForLog } from '../http/graphql-errors.js';
import type { Logger } from '../logger.js';
import { OUTBOX_CHANNEL } from './outbox.js';
import type { DomainEvent, EventSink } from './types.js';

export interface RelayOptions {
  database: Database;
  log: Logger;
  registry: Registry;
  /** enqueues the jobs of a batch (JobSystem.publish); absent in a process without queues */
  jobs?: { publish(events: readonly DomainEvent[]): Promise<number> };
  /** socket fan-out (platform/realtime) */
  sink?: EventSink;
  /** rows claimed per transaction (default 500) */
  batchSize?: number;
  /** polling fallback when no NOTIFY arrives (default 1000 ms) */
  pollIntervalMs?: number;
}

interface ClaimedRow {
  id: string;
  seq: string;
  tenant_id: string;
  type: string;
  aggregate_id: string;
  payload: Record<string, unknown>;
  rooms: string[];
  jobs: string[];
  created_at: Date;
}

/**
 * Publishes committed outbox rows: claims a batch (FOR UPDATE SKIP LOCKED,
 * through carebase_outbox_claim, so several relays split the work), enqueues
 * the jobs, fans out to socket rooms, marks the rows published and commits.
 * A crash before the commit leaves the rows unpublished: they are published
 * again (at least once), and job ids (= event ids) plus processed_jobs make
 * the handlers' effects exactly-once. Wakes on LISTEN carebase_outbox (sent
 * by emitEvent at commit), with a polling fallback.
 */
export class OutboxRelay {
  private running = false;
  private wake?: () => void;
  private pending = false;
  private loop?: Promise<void>;
  private listener?: { unlisten(): Promise<void> };
  private readonly metrics;

  constructor(private readonly opts: RelayOptions) {
    for (const n of ['carebase_outbox_published_total', 'carebase_outbox_relay_lag_seconds', 'carebase_outbox_relay_errors_total']) opts.registry.removeSingleMetric(n);
    this.metrics = {
      published: new client.Counter({ name: 'carebase_outbox_published_total', help: 'Outbox events published by this relay', registers: [opts.registry] }),
      lag: new client.Histogram({
        name: 'carebase_outbox_relay_lag_seconds',
        help: 'Time from event commit to publication',
        buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers: [opts.registry],
      }),
      errors: new client.Counter({ name: 'carebase_outbox_relay_errors_total', help: 'Relay batches that failed and will be retried', registers: [opts.registry] }),
    };
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const sql = this.opts.database.sql;
    this.listener = await sql.listen(OUTBOX_CHANNEL, () => this.poke());
    this.loop = this.run();
  }

  /** Wake the relay now (also called on NOTIFY). */
  poke(): void {
    this.pending = true;
    this.wake?.();
  }

  private async run(): Promise<void> {
    const pollMs = this.opts.pollIntervalMs ?? 1000;
    let backoff = 0;
    while (this.running) {
      this.pending = false;
      let n = 0;
      try {
        n = await this.drainOnce();
        backoff = 0;
      } catch (e) {
        this.metrics.errors.inc();
        this.opts.log.warn(describeForLog(e), 'outbox relay batch failed; will retry');
        backoff = Math.min(backoff ? backoff * 2 : 100, 10_000);
      }
      if (!this.running) break;
      if (n > 0 && !backoff) continue; // more may be waiting
      if (this.pending && !backoff) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, backoff || pollMs);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** Claims, publishes and acknowledges one batch; returns the number of events published. */
  async drainOnce(): Promise<number> {
    const batch = this.opts.batchSize ?? 500;
    const sql = this.opts.database.sql;
    return (await sql.begin(async (tx: postgres.TransactionSql) => {
      const rows = await tx<ClaimedRow[]>`select * from carebase_outbox_claim(${batch})`;
      if (rows.length === 0) return 0;
      const events: DomainEvent[] = rows.map((r) => ({
        id: r.id,
        type: r.type,
        tenantId: r.tenant_id,
        aggregateId: r.aggregate_id,
        payload: r.payload ?? {},
        rooms: r.rooms ?? [],
        jobs: r.jobs ?? [],
        occurredAt: new Date(r.created_at),
      }));
      if (this.opts.jobs) await this.opts.jobs.publish(events);
      if (this.opts.sink) {
        for (const ev of events) {
          if (ev.rooms.length) await this.opts.sink.publish(ev);
        }
      }
      await tx`select carebase_outbox_ack(${events.map((e) => e.id)}::uuid[])`;
      const now = Date.now();
      for (const ev of events) this.metrics.lag.observe(Math.max(0, now - ev.occurredAt.getTime()) / 1000);
      this.metrics.published.inc(events.length);
      return events.length;
    })) as number;
  }

  async close(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.wake?.();
    await this.listener?.unlisten().catch(() => undefined);
    await this.loop?.catch(() => undefined);
  }
}
