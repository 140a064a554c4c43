import type postgres from 'postgres';
import { toSafeText } from '../text.js';
import { canonicalParts } from './canonical.js';
import type { AuditEventInput } from './types.js';

/** Anything postgres-js can run a tagged query on (pool, reserved connection, transaction). */
export type SqlRunner = postgres.Sql | postgres.TransactionSql | postgres.ReservedSql;

/**
 * Appends one tenant's events to its hash chain; resolves to the tenant's
 * new head seq. Must run inside a transaction whose app.tenant_id is
 * `tenantId` (RLS). The tenant's chain head row is locked until that
 * transaction ends, which serialises appends of one tenant across
 * connections and processes; callers appending for several tenants in one
 * transaction lock them in sorted order.
 *
 * One statement, sent at once (not awaited here), so that a caller can send
 * COMMIT in the same write (RequestTransaction.beforeCommit):
 * carebase_audit_append (migration audit_append_fn) locks the chain head,
 * assigns seq, prev_hash and hash = SHA-256(prev_hash || canonical form) and
 * inserts the rows inside the server, so the lock is held for that statement
 * and the commit, never across a round trip or a turn of this event loop.
 * The canonical form is built here (canonicalParts, shared with the
 * verifier); only the seq is filled in by the database. The promise must be
 * awaited (or handled) by the caller.
 */
export function appendChained(sql: SqlRunner, tenantId: string, events: readonly AuditEventInput[]): Promise<number | null> {
  if (events.length === 0) return Promise.resolve(null);
  const { rows, before, after } = chainInput(tenantId, events);
  const write = sql<{ seq: string }[]>`select carebase_audit_append(${tenantId}, ${sql.json(rows as never)}, ${before}::text[], ${after}::text[]) as seq`
    .execute()
    .then(([r]) => (r ? Number(r.seq) : null));
  // handled here so that a failure before the caller awaits is not an unhandled rejection; the caller still sees it
  write.catch(() => undefined);
  return write;
}

/**
 * Stages one tenant's events in `audit_staged` (one statement, started at
 * once like appendChained): the write's transaction commits them with its
 * change without locking the tenant's chain head; the group writer chains
 * them afterwards (AuditWriter.chainStaged, carebase_audit_chain_staged).
 * The canonical parts are built here, as for an append.
 */
export function stageChained(sql: SqlRunner, tenantId: string, events: readonly AuditEventInput[]): Promise<number> {
  if (events.length === 0) return Promise.resolve(0);
  const { rows, before, after } = chainInput(tenantId, events);
  const write = sql`insert into audit_staged (tenant_id, event, before, after)
      select ${tenantId}, e.value, p.b, p.a
        from jsonb_array_elements(${sql.json(rows as never)}) with ordinality as e(value, i)
        join unnest(${before}::text[], ${after}::text[]) with ordinality as p(b, a, i) on p.i = e.i
       order by e.i`
    .execute()
    .then((r) => r.count);
  write.catch(() => undefined);
  return write;
}

/** The rows (audit_events columns but seq and hashes) and canonical parts of one tenant's events. */
function chainInput(tenantId: string, events: readonly AuditEventInput[]) {
  const before: string[] = [];
  const after: string[] = [];
  const rows = events.map(safeEvent).map((e) => {
    if (e.tenantId !== tenantId) throw new Error('audit event of another tenant in a tenant append');
    const [b, a] = canonicalParts(e);
    before.push(b);
    after.push(a);
    return {
      id: e.id,
      tenant_id: e.tenantId,
      at: e.at.toISOString(),
      event_type: e.eventType,
      actor_type: e.actorType,
      actor_id: e.actorId,
      actor_roles: e.actorRoles,
      session_id: e.sessionId,
      patient_id: e.patientId,
      patient_ids: e.patientIds ?? [],
      resource_type: e.resourceType,
      resource_id: e.resourceId,
      fields: e.fields,
      categories: e.categories,
      action: e.action,
      outcome: e.outcome,
      purpose_of_use: e.purposeOfUse,
      request_id: e.requestId,
      ip: e.ip,
      user_agent: e.userAgent,
      operation_name: e.operationName,
      detail: e.detail,
    };
  });
  return { rows, before, after };
}

/**
 * The event as it is stored and hashed: every string (columns, arrays, detail
 * keys and values) with NUL and unpaired surrogates replaced by U+FFFD, since
 * PostgreSQL refuses them (22P05, 22P02) and some are copied from a request
 * (e.g. a report filter in `detail`). One such value must not fail the append.
 */
function safeEvent(e: AuditEventInput): AuditEventInput {
  return safeValue(e) as AuditEventInput;
}

function safeValue(v: unknown): unknown {
  if (typeof v === 'string') return toSafeText(v);
  if (Array.isArray(v)) return v.map(safeValue);
  if (v !== null && typeof v === 'object' && !(v instanceof Date)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [toSafeText(k), safeValue(x)]));
  }
  return v;
}

/** Creates the monthly partitions from last month to `monthsAhead` months ahead; returns how many were created. */
export async function ensureAuditPartitions(sql: SqlRunner, monthsAhead = 3): Promise<number> {
  const [row] = await sql<{ n: number }[]>`select carebase_audit_ensure_partitions(${monthsAhead})::int as n`;
  return row?.n ?? 0;
}

/** SQLSTATE of "no partition of relation found for row". */
export function isMissingPartition(e: unknown): boolean {
  const err = e as { code?: string; message?: string };
  return err?.code === '23514' && /no partition/i.test(err.message ?? '');
}
