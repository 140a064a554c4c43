import { and, asc, eq, gte, lt, sql } from 'drizzle-orm';
import type postgres from 'postgres';
import type { ApiKeyCall } from '../access/index.js';
import { withTenant, type Db } from '../../platform/db/index.js';
import type { Logger } from '../../platform/logger.js';
import { billingUsageHourly } from './tables.js';

/**
 * Metered API usage. Every authenticated API-key call (the access module's
 * API_KEY_CALL hook) is counted once by its request id (a client retrying
 * with the same X-Request-Id is not billed twice) into per-hour, per-key
 * counters in PostgreSQL (billing_usage_hourly). Calls arriving together are
 * written in one statement per tenant (group commit): the request waits for
 * its batch to commit, so a counted call is durable before it is answered.
 * A failed write is logged (counts only, never a key) and does not fail the
 * request.
 */
const MAX_BATCH = 500;

interface Pending {
  call: ApiKeyCall;
  done: () => void;
}

export function hourOf(at: Date): Date {
  const d = new Date(at.getTime());
  d.setUTCMinutes(0, 0, 0);
  return d;
}

export class UsageMeter {
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly pool: postgres.Sql,
    private readonly log: Logger,
  ) {}

  /** Counts one call; resolves once its batch is committed (or failed and logged). */
  record(call: ApiKeyCall): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.queue.push({ call, done: resolve });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.flushing) return;
    this.flushing = (async () => {
      await new Promise((r) => setImmediate(r)); // gather the calls of this turn of the event loop
      while (this.queue.length) {
        const batch = this.queue.splice(0, MAX_BATCH);
        await this.write(batch.map((p) => p.call));
        for (const p of batch) p.done();
      }
    })().finally(() => {
      this.flushing = null;
      if (this.queue.length) this.schedule();
    });
  }

  private async write(calls: ApiKeyCall[]): Promise<void> {
    const byTenant = new Map<string, Map<string, ApiKeyCall>>();
    for (const c of calls) {
      let m = byTenant.get(c.tenantId);
      if (!m) byTenant.set(c.tenantId, (m = new Map()));
      if (!m.has(c.requestId)) m.set(c.requestId, c);
    }
    await Promise.all(
      [...byTenant].map(async ([tenantId, m]) => {
        const list = [...m.values()];
        try {
          await withTenant(this.pool, tenantId, (_db, tx) => countCalls(tx, tenantId, list));
        } catch (e) {
          this.log.error({ tenantId, calls: list.length, pgCode: (e as { code?: string }).code }, 'billing: API usage not counted');
        }
      }),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushing;
  }
}

/** Inserts the request ids (a known one is skipped) and adds the new ones to their hour's counter, in one statement. */
export async function countCalls(tx: postgres.ReservedSql | postgres.Sql, tenantId: string, calls: readonly ApiKeyCall[]): Promise<number> {
  if (!calls.length) return 0;
  const ids = calls.map((c) => c.requestId.slice(0, 128));
  const keys = calls.map((c) => c.apiKeyId);
  const hours = calls.map((c) => hourOf(c.at).toISOString());
  const rows = await tx<{ n: number }[]>`
    with input as (
      select * from unnest(${ids}::text[], ${keys}::uuid[], ${hours}::timestamptz[]) as t(request_id, api_key_id, hour)
    ), fresh as (
      insert into billing_usage_requests (tenant_id, request_id, api_key_id, hour)
      select ${tenantId}::uuid, request_id, api_key_id, hour from input
      on conflict (tenant_id, request_id) do nothing
      returning api_key_id, hour
    ), counted as (
      insert into billing_usage_hourly (tenant_id, hour, api_key_id, calls)
      select ${tenantId}::uuid, hour, api_key_id, count(*) from fresh group by hour, api_key_id
      on conflict (tenant_id, hour, api_key_id) do update set calls = billing_usage_hourly.calls + excluded.calls
      returning calls
    )
    select (select count(*)::int from fresh) as n`;
  return rows[0]?.n ?? 0;
}

/**
 * API-key calls of the tenant in the period [from, to), counted in whole hours: the period covers the hours from
 * the hour of its start to the hour of its end (exclusive), so every hour belongs to exactly one period and the
 * calls of the hour in which a period changes count in the new one.
 */
export async function callsBetween(db: Db, tenantId: string, periodStart: Date, periodEnd: Date): Promise<number> {
  const from = hourOf(periodStart);
  const to = hourOf(periodEnd);
  const [row] = await db
    .select({ n: sql<string>`coalesce(sum(${billingUsageHourly.calls}), 0)::text` })
    .from(billingUsageHourly)
    .where(and(eq(billingUsageHourly.tenantId, tenantId), gte(billingUsageHourly.hour, from), lt(billingUsageHourly.hour, to)));
  return Number(row?.n ?? 0);
}

/** Per-hour totals (all keys) of the period's hours (as callsBetween counts them), oldest first. */
export async function hourlyCalls(db: Db, tenantId: string, periodStart: Date, periodEnd: Date): Promise<{ hour: Date; calls: number }[]> {
  const from = hourOf(periodStart);
  const to = hourOf(periodEnd);
  const rows = await db
    .select({ hour: billingUsageHourly.hour, calls: sql<string>`sum(${billingUsageHourly.calls})::text` })
    .from(billingUsageHourly)
    .where(and(eq(billingUsageHourly.tenantId, tenantId), gte(billingUsageHourly.hour, from), lt(billingUsageHourly.hour, to)))
    .groupBy(billingUsageHourly.hour)
    .orderBy(asc(billingUsageHourly.hour));
  return rows.map((r) => ({ hour: r.hour, calls: Number(r.calls) }));
}

export interface UsageReport {
  periodStart: Date;
  periodEnd: Date;
  planId: string;
  interval: 'month' | 'year';
  calls: number;
  includedCalls: number;
  overageCalls: number;
  overageUnits: number;
  overageUnitAmount: number;
  amount: number;
  currency: string;
  tenantId: string;
}
