import type postgres from 'postgres';
import { chainHash, GENESIS_HASH } from './canonical.js';
import type { AuditEventInput, ChainedAuditEvent } from './types.js';

/** Anything postgres-js can run a tagged query on (pool, reserved connection, transaction). */
export type SqlRunner = postgres.Sql | postgres.TransactionSql | postgres.ReservedSql;

/** Rows per INSERT statement (24 columns: stays well under the 65k parameter limit). */
const ROWS_PER_STATEMENT = 1000;

const COLUMNS = [
  'id', 'tenant_id', 'at', 'seq', 'prev_hash', 'hash', 'event_type', 'actor_type', 'actor_id', 'actor_roles', 'session_id',
  'patient_id', 'resource_type', 'resource_id', 'fields', 'categories', 'action', 'outcome', 'purpose_of_use', 'request_id',
  'ip', 'user_agent', 'operation_name', 'detail',
] as const;

/**
 * Appends one tenant's events to its hash chain. Must run inside a
 * transaction whose app.tenant_id is `tenantId` (RLS). The tenant's chain
 * head row is locked until that transaction ends, which serialises appends
 * of one tenant across connections and processes; callers appending for
 * several tenants in one transaction lock them in sorted order.
 */
export async function appendChained(sql: SqlRunner, tenantId: string, events: readonly AuditEventInput[]): Promise<ChainedAuditEvent[]> {
  const { chained, writes } = await startChainedAppend(sql, tenantId, events);
  await Promise.all(writes);
  return chained;
}

/**
 * appendChained up to the point where the rows are computed: takes the
 * chain-head lock (awaited), then *starts* the INSERTs and the head update
 * and returns their promises unawaited, so that a caller can send COMMIT in
 * the same write (RequestTransaction.beforeCommit). Every promise must be
 * awaited (or handled) by the caller.
 */
export async function startChainedAppend(
  sql: SqlRunner,
  tenantId: string,
  events: readonly AuditEventInput[],
): Promise<{ chained: ChainedAuditEvent[]; writes: Promise<unknown>[] }> {
  if (events.length === 0) return { chained: [], writes: [] };
  const [head] = await sql<{ seq: string; hash: Buffer }[]>`
    insert into audit_chain_heads (tenant_id, seq, hash, anchor_seq, anchor_hash)
    values (${tenantId}, 0, ${GENESIS_HASH}, 0, ${GENESIS_HASH})
    on conflict (tenant_id) do update set updated_at = now()
    returning seq, hash`;
  if (!head) throw new Error('audit chain head not returned');
  let seq = Number(head.seq);
  let prev = head.hash;
  const chained: ChainedAuditEvent[] = events.map((e) => {
    if (e.tenantId !== tenantId) throw new Error('audit event of another tenant in a tenant append');
    seq += 1;
    const hash = chainHash(prev, e, seq);
    const row = { ...e, seq, prevHash: prev, hash };
    prev = hash;
    return row;
  });
  // the INSERTs and the head update are started together: one socket write, one round trip (postgres-js
  // pipelines them in order on the connection; any failure aborts the caller's transaction)
  const writes: Promise<unknown>[] = [];
  for (let i = 0; i < chained.length; i += ROWS_PER_STATEMENT) {
    const rows = chained.slice(i, i + ROWS_PER_STATEMENT).map((e) => ({
      id: e.id,
      tenant_id: e.tenantId,
      at: e.at,
      seq: e.seq,
      prev_hash: e.prevHash,
      hash: e.hash,
      event_type: e.eventType,
      actor_type: e.actorType,
      actor_id: e.actorId,
      actor_roles: e.actorRoles,
      session_id: e.sessionId,
      patient_id: e.patientId,
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
      detail: sql.json(e.detail),
    }));
    writes.push(sql`insert into audit_events ${sql(rows as never, COLUMNS as never)}`.execute());
  }
  writes.push(sql`update audit_chain_heads set seq = ${seq}, hash = ${prev}, updated_at = now() where tenant_id = ${tenantId}`.execute());
  // handled here so that a failure before the caller awaits is not an unhandled rejection; the caller still sees it
  for (const w of writes) w.catch(() => undefined);
  return { chained, writes };
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
