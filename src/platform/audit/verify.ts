import type postgres from 'postgres';
import type { KeyObject } from 'node:crypto';
import { withTenant } from '../db/tenancy.js';
import { chainHash } from './canonical.js';
import type { SqlRunner } from './chain.js';
import { verifyTenantCheckpoints, type CheckpointBreak } from './checkpoint.js';
import { toDate, type AuditDetail, type AuditEventInput } from './types.js';

export type ChainBreak =
  /** the row's content does not match its hash: the row was changed */
  | 'HASH_MISMATCH'
  /** the row does not follow the previous row's hash: a row before it was changed, removed or moved */
  | 'PREV_HASH_MISMATCH'
  /** seq jumps: rows are missing (deleted) */
  | 'SEQ_GAP'
  /** seq repeats or goes back: rows were duplicated or reordered */
  | 'SEQ_OUT_OF_ORDER'
  /** the chain head is past the last row: the newest rows are missing */
  | 'TAIL_MISSING'
  /** the chain head's hash differs from the last row's */
  | 'HEAD_MISMATCH'
  /** rows exist but the tenant has no chain head */
  | 'HEAD_MISSING'
  /** a signed checkpoint no longer matches its row (checkpoint.ts) */
  | CheckpointBreak;

export interface IntegrityReport {
  tenantId: string;
  ok: boolean;
  /** rows checked */
  checked: number;
  /** seq recorded in the chain head (0 = nothing appended yet) */
  headSeq: number;
  /** seq where verification started (anchor + 1; > 1 once retention dropped old partitions) */
  firstSeq: number;
  lastSeq: number | null;
  /** signed checkpoints checked (signature and row hash) */
  checkpoints: number;
  /** the newest checkpoint checked: compare with the copy in the log stream */
  lastCheckpoint: { seq: number; signedAt: Date } | null;
  brokenAt: { seq: number; eventId: string | null; reason: ChainBreak } | null;
}

interface Row {
  id: string;
  tenant_id: string;
  at: Date | string;
  seq: string;
  prev_hash: Buffer;
  hash: Buffer;
  event_type: AuditEventInput['eventType'];
  actor_type: AuditEventInput['actorType'];
  actor_id: string | null;
  actor_roles: string[];
  session_id: string | null;
  patient_id: string | null;
  patient_ids: string[];
  resource_type: string | null;
  resource_id: string | null;
  fields: string[];
  categories: string[];
  action: string;
  outcome: AuditEventInput['outcome'];
  purpose_of_use: string | null;
  request_id: string | null;
  ip: string | null;
  user_agent: string | null;
  operation_name: string | null;
  detail: AuditDetail;
}

export function rowToEvent(r: Row): AuditEventInput {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    at: toDate(r.at),
    eventType: r.event_type,
    actorType: r.actor_type,
    actorId: r.actor_id,
    actorRoles: r.actor_roles,
    sessionId: r.session_id,
    patientId: r.patient_id,
    patientIds: r.patient_ids ?? [],
    resourceType: r.resource_type,
    resourceId: r.resource_id,
    fields: r.fields,
    categories: r.categories,
    action: r.action,
    outcome: r.outcome,
    purposeOfUse: r.purpose_of_use,
    requestId: r.request_id,
    ip: r.ip,
    userAgent: r.user_agent,
    operationName: r.operation_name,
    detail: r.detail ?? {},
  };
}

/**
 * Walks one tenant's chain in seq order (server-side cursor, flat memory)
 * and reports the first broken link, then checks the signed checkpoints
 * against `trusted` public keys (checkpointKeys(config).trusted). Must run
 * inside a transaction whose app.tenant_id is `tenantId` (RLS).
 */
export async function verifyTenantChain(sql: SqlRunner, tenantId: string, trusted: ReadonlyMap<string, KeyObject>, batchSize = 2000): Promise<IntegrityReport> {
  const [head] = await sql<{ seq: string; hash: Buffer; anchor_seq: string; anchor_hash: Buffer }[]>`
    select seq, hash, anchor_seq, anchor_hash from audit_chain_heads where tenant_id = ${tenantId}`;
  const anchorSeq = head ? Number(head.anchor_seq) : 0;
  const report: IntegrityReport = {
    tenantId,
    ok: true,
    checked: 0,
    headSeq: head ? Number(head.seq) : 0,
    firstSeq: anchorSeq + 1,
    lastSeq: null,
    checkpoints: 0,
    lastCheckpoint: null,
    brokenAt: null,
  };
  let expectedSeq = anchorSeq + 1;
  let prev: Buffer | null = head ? head.anchor_hash : null;
  const cursor = sql<Row[]>`
    select id, tenant_id, at, seq, prev_hash, hash, event_type, actor_type, actor_id, actor_roles, session_id, patient_id,
           patient_ids, resource_type, resource_id, fields, categories, action, outcome, purpose_of_use, request_id, ip, user_agent,
           operation_name, detail
      from audit_events where tenant_id = ${tenantId} order by seq, id`.cursor(batchSize);
  const fail = (seq: number, eventId: string | null, reason: ChainBreak) => {
    report.ok = false;
    report.brokenAt = { seq, eventId, reason };
  };
  for await (const rows of cursor) {
    for (const r of rows) {
      const seq = Number(r.seq);
      if (!head) {
        fail(seq, r.id, 'HEAD_MISSING');
        return report;
      }
      if (seq > expectedSeq) {
        fail(expectedSeq, null, 'SEQ_GAP');
        return report;
      }
      if (seq < expectedSeq) {
        fail(seq, r.id, 'SEQ_OUT_OF_ORDER');
        return report;
      }
      if (!prev || !r.prev_hash.equals(prev)) {
        fail(seq, r.id, 'PREV_HASH_MISMATCH');
        return report;
      }
      if (!chainHash(r.prev_hash, rowToEvent(r), seq).equals(r.hash)) {
        fail(seq, r.id, 'HASH_MISMATCH');
        return report;
      }
      prev = r.hash;
      report.lastSeq = seq;
      report.checked++;
      expectedSeq++;
    }
  }
  if (head) {
    const last = report.lastSeq ?? anchorSeq;
    if (report.headSeq > last) fail(last + 1, null, 'TAIL_MISSING');
    else if (prev && !head.hash.equals(prev)) fail(last, null, 'HEAD_MISMATCH');
  }
  if (report.ok) {
    // the chain is consistent in itself; the signatures show it is still the chain that was signed
    const c = await verifyTenantCheckpoints(sql, tenantId, trusted, anchorSeq);
    report.checkpoints = c.checked;
    report.lastCheckpoint = c.last;
    if (c.broken) fail(c.broken.seq, null, c.broken.reason);
  }
  return report;
}

/** per statement of the chain verification (operations CLI, not a request) */
const VERIFY_STATEMENT_TIMEOUT_MS = 600_000;

/**
 * Verifies every tenant's chain (operations: npm run audit:verify). `owner`
 * must be the table owner's connection: it lists tenants through the owner
 * policy on audit_chain_heads and reads each tenant's rows under RLS.
 */
export async function verifyAllTenants(
  owner: postgres.Sql,
  trusted: ReadonlyMap<string, KeyObject>,
  onReport?: (r: IntegrityReport) => void,
): Promise<IntegrityReport[]> {
  const tenants = await owner<{ tenant_id: string }[]>`select tenant_id from audit_chain_heads order by tenant_id`;
  const reports: IntegrityReport[] = [];
  for (const { tenant_id } of tenants) {
    // a long chain is read in many statements, each of which may take longer than a request's deadline
    const r = await withTenant(owner, tenant_id, (_db, tx) => verifyTenantChain(tx, tenant_id, trusted), { statementTimeoutMs: VERIFY_STATEMENT_TIMEOUT_MS });
    reports.push(r);
    onReport?.(r);
  }
  return reports;
}
