import type postgres from 'postgres';
import { withTenant } from '../../platform/db/index.js';
import { appendChained, toDate, type AuditDetail, type AuditEventInput } from '../../platform/audit/index.js';

/** Security event types that record a refusal (the rest record something that happened). */
const DENIED = /(failure|failed|locked|reuse)/;

interface SecurityEventRow {
  id: string;
  tenant_id: string;
  type: string;
  user_id: string | null;
  actor_id: string | null;
  session_id: string | null;
  ip: string | null;
  details: Record<string, unknown> | null;
  created_at: Date | string;
}

function flatten(details: Record<string, unknown> | null): AuditDetail {
  const out: AuditDetail = {};
  for (const [k, v] of Object.entries(details ?? {})) {
    if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = v;
    else if (Array.isArray(v)) out[k] = v.filter((x) => typeof x === 'string' || typeof x === 'number').join(',');
  }
  return out;
}

export function securityRowToEvent(r: SecurityEventRow): AuditEventInput {
  const actor = r.actor_id ?? r.user_id;
  return {
    id: r.id,
    tenantId: r.tenant_id,
    at: toDate(r.created_at),
    eventType: 'security',
    actorType: actor ? 'user' : 'anonymous',
    actorId: actor,
    actorRoles: [],
    sessionId: r.session_id,
    patientId: null,
    resourceType: r.user_id ? 'User' : null,
    resourceId: r.user_id,
    fields: [],
    categories: [],
    action: r.type,
    outcome: DENIED.test(r.type) ? 'denied' : 'allowed',
    purposeOfUse: null,
    requestId: null,
    ip: r.ip,
    userAgent: null,
    operationName: null,
    detail: { ...flatten(r.details), securityEventId: r.id },
  };
}

/**
 * Moves identity's security events (queued in audit_inbox by a trigger on
 * security_events, in the transaction that wrote them) into the audit hash
 * chain: per tenant, claim a batch (SKIP LOCKED: several processes may
 * drain), append, delete the claimed rows, commit. Exactly once. Returns
 * the number of events appended.
 */
/** a batch of 1000 appends in one statement may take longer than a request's deadline on a busy database */
const DRAIN_STATEMENT_TIMEOUT_MS = 60_000;

export async function drainSecurityEvents(pool: postgres.Sql, batch = 1000): Promise<number> {
  const tenants = await pool<{ t: string }[]>`select t from carebase_audit_inbox_tenants() t`;
  let total = 0;
  for (const { t: tenantId } of tenants) {
    for (;;) {
      const n = await withTenant(pool, tenantId, async (_db, tx) => {
        const rows = await tx<SecurityEventRow[]>`
          with claimed as (
            select security_event_id from audit_inbox where tenant_id = ${tenantId}
             order by created_at limit ${batch} for update skip locked
          ), gone as (
            delete from audit_inbox i using claimed c where i.security_event_id = c.security_event_id returning i.security_event_id
          )
          select s.id, s.tenant_id, s.type, s.user_id, s.actor_id, s.session_id, s.ip, s.details, s.created_at
            from security_events s join gone g on g.security_event_id = s.id
           order by s.created_at, s.id`;
        await appendChained(tx, tenantId, rows.map(securityRowToEvent));
        return rows.length;
      }, { statementTimeoutMs: DRAIN_STATEMENT_TIMEOUT_MS });
      total += n;
      if (n < batch) break;
    }
  }
  return total;
}
