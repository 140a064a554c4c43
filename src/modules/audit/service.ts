import type postgres from 'postgres';
import { z } from 'zod';
import { resourceExists } from '../../platform/access/index.js';
import { checkpointKeys, toDate, verifyTenantChain, type IntegrityReport, type AuditPrincipal } from '../../platform/audit/index.js';
import { AUDIT_EVENT_TYPES, AUDIT_OUTCOMES, PURPOSES_OF_USE } from '../../platform/audit/types.js';
import { AppError, ErrorCode, badInput, forbidden, notFound } from '../../platform/errors.js';
import type { Db } from '../../platform/db/index.js';
import type { RequestContext } from '../../schema/index.js';

/** Permissions of platform/access the audit module relies on. */
export const AUDIT_READ = 'audit:read';
export const AUDIT_EXPORT = 'audit:export';
export const ALERT_READ = 'alert:read';
export const ALERT_MANAGE = 'alert:manage';

/**
 * Compliance access: a signed-in user (never an API key) holding the
 * permission, who signed in with MFA. Throws FORBIDDEN (reason in
 * extensions) otherwise; the refusal is audited by the field marker.
 */
export function requireComplianceUser(principal: (AuditPrincipal & { permissions: ReadonlySet<string> }) | null, permission: string): AuditPrincipal {
  if (!principal) throw new AppError(ErrorCode.UNAUTHENTICATED, 'Authentication required');
  if (principal.kind !== 'user') throw new AppError(ErrorCode.FORBIDDEN, 'Audit reports are not available to API keys', { reason: 'API_KEY_NOT_ALLOWED' });
  if (!principal.permissions.has(permission)) throw forbidden();
  if (!principal.amr?.some((m) => m === 'mfa' || m === 'otp')) {
    throw new AppError(ErrorCode.FORBIDDEN, 'Audit reports require a sign-in with multi-factor authentication', { reason: 'MFA_REQUIRED' });
  }
  return principal;
}

const ACTION = /^[a-z][a-z0-9_.-]{0,63}$/;

/** A report filter (GraphQL input and CSV query string share it). */
export const auditFilterSchema = z
  .object({
    patientId: z.uuid().optional(),
    actorId: z.string().min(1).max(128).optional(),
    from: z.coerce.date().optional(),
    to: z.coerce.date().optional(),
    actions: z.array(z.string().regex(ACTION)).max(20).optional(),
    purposes: z.array(z.enum(PURPOSES_OF_USE)).max(20).optional(),
    outcome: z.enum(AUDIT_OUTCOMES).optional(),
    eventTypes: z.array(z.enum(AUDIT_EVENT_TYPES)).max(3).optional(),
    /** only break-glass invocations and emergency (ETREAT) accesses */
    breakGlass: z.boolean().optional(),
    requestId: z.string().min(1).max(128).optional(),
  })
  .refine((f) => !f.from || !f.to || f.from <= f.to, { message: 'from must not be after to', path: ['from'] });
export type AuditFilter = z.infer<typeof auditFilterSchema>;

/**
 * The patient a report is about, for the report's own audit event: the filter's patientId when it is a patient of the
 * caller's tenant (the lookup the patients module provides, run under RLS), else null. Reading a patient's audit trail
 * is an access to that patient; an id that names no patient of the tenant (another tenant's, a typo, a random id) must
 * not become a "patient accessed" row of a patient the tenant does not have: the id is kept in the event's detail
 * (`reportDetail`) instead. Without this, a report filtered by such an id found the earlier reports' own events and
 * its answer depended on what had been asked before.
 */
export async function reportPatient(scope: { provided<T>(key: string): T[]; db(): Promise<Db> }, filter: AuditFilter): Promise<string | null> {
  if (!filter.patientId) return null;
  return (await resourceExists(scope, 'patient', await scope.db(), filter.patientId)) ? filter.patientId : null;
}

/** The detail of a report's own audit event: the id filters as asked (ids only), whether or not they name a patient. */
export function reportDetail(f: { patientId?: string | null; actorId?: string | null } | null | undefined): { actorFilter: string | null; patientFilter: string | null } {
  return { actorFilter: f?.actorId ?? null, patientFilter: f?.patientId ?? null };
}

/** Names (never values) of the filter fields in use, for the report's own audit event. */
export function filterFields(f: AuditFilter | null | undefined): string[] {
  return Object.entries(f ?? {})
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k]) => `AuditLog.${k}`);
}

/**
 * The WHERE clause of a report. Every combination is served by one of the
 * indexes of audit_events (see platform/audit/tables.ts): patient, actor,
 * action, purpose, denied and break-glass indexes all lead with tenant_id and
 * end with (at, id), so the keyset order comes straight from the index.
 * That needs equality on the middle column: one action or purpose is `=`
 * (listAuditEvents splits a list into one branch per value), and the outcome
 * is a literal so that a prepared statement's generic plan can still use the
 * partial index on denied events.
 */
export function filterSql(sql: postgres.Sql | postgres.ReservedSql, tenantId: string, f: AuditFilter, patientMatch?: PatientMatch) {
  const conds = [sql`tenant_id = ${tenantId}`];
  if (f.patientId) conds.push(PATIENT_SQL[patientMatch ?? 'either'](sql, f.patientId));
  if (f.actorId) conds.push(sql`actor_id = ${f.actorId}`);
  if (f.from) conds.push(sql`at >= ${f.from}`);
  if (f.to) conds.push(sql`at < ${f.to}`);
  if (f.actions?.length) conds.push(f.actions.length === 1 ? sql`action = ${f.actions[0]!}` : sql`action = any(${f.actions}::text[])`);
  if (f.purposes?.length) conds.push(f.purposes.length === 1 ? sql`purpose_of_use = ${f.purposes[0]!}` : sql`purpose_of_use = any(${f.purposes}::text[])`);
  if (f.outcome) conds.push(OUTCOME_SQL[f.outcome](sql));
  if (f.eventTypes?.length) conds.push(sql`event_type = any(${f.eventTypes}::text[])`);
  if (f.breakGlass) conds.push(sql`(action = 'break-glass' or purpose_of_use = 'ETREAT')`);
  if (f.requestId) conds.push(sql`request_id = ${f.requestId}`);
  return conds.reduce((acc, c) => sql`${acc} and ${c}`);
}

/**
 * How a patient filter matches: the patient's own events (`patient_id`, index audit_events_patient_idx, in keyset
 * order), events about several patients that name it (`patient_ids`, the GIN index), or either (the CSV export,
 * which reads in order anyway). A report lists both as two branches of one union.
 */
type PatientMatch = 'one' | 'many' | 'either';
const PATIENT_SQL: Record<PatientMatch, (sql: postgres.Sql | postgres.ReservedSql, id: string) => postgres.PendingQuery<postgres.Row[]>> = {
  one: (sql, id) => sql`patient_id = ${id}`,
  many: (sql, id) => sql`patient_ids @> array[${id}]::uuid[] and cardinality(patient_ids) > 0`,
  either: (sql, id) => sql`(patient_id = ${id} or (patient_ids @> array[${id}]::uuid[] and cardinality(patient_ids) > 0))`,
};

const OUTCOME_SQL: Record<AuditFilter['outcome'] & string, (sql: postgres.Sql | postgres.ReservedSql) => postgres.PendingQuery<postgres.Row[]>> = {
  allowed: (sql) => sql`outcome = 'allowed'`,
  denied: (sql) => sql`outcome = 'denied'`,
  failed: (sql) => sql`outcome = 'failed'`,
};

/** Columns of a report row (no hashes; never PHI: ids, field names, codes). */
export interface AuditEventRow {
  id: string;
  at: Date;
  seq: string;
  event_type: string;
  actor_type: string;
  actor_id: string | null;
  actor_roles: string[];
  session_id: string | null;
  patient_id: string | null;
  /** an event about several patients: all of them (patient_id null) */
  patient_ids: string[];
  resource_type: string | null;
  resource_id: string | null;
  fields: string[];
  categories: string[];
  action: string;
  outcome: string;
  purpose_of_use: string | null;
  request_id: string | null;
  ip: string | null;
  user_agent: string | null;
  operation_name: string | null;
  detail: Record<string, unknown>;
}

/** Raw rows carry timestamps as text when drizzle's parsers are installed on the pool. */
export function normalizeEvent(r: AuditEventRow): AuditEventRow {
  return { ...r, at: toDate(r.at) };
}

function normalizeAlert(a: AlertRow): AlertRow {
  return {
    ...a,
    window_start: toDate(a.window_start),
    window_end: toDate(a.window_end),
    created_at: toDate(a.created_at),
    updated_at: toDate(a.updated_at),
    acknowledged_at: a.acknowledged_at ? toDate(a.acknowledged_at) : null,
  };
}

export function reportColumns(sql: postgres.Sql | postgres.ReservedSql) {
  return sql`id, at, seq, event_type, actor_type, actor_id, actor_roles, session_id, patient_id, patient_ids, resource_type, resource_id,
             fields, categories, action, outcome, purpose_of_use, request_id, ip, user_agent, operation_name, detail`;
}

/** Opaque keyset cursor over (at, id). */
export function encodeCursor(at: Date, id: string): string {
  return Buffer.from(`${at.toISOString()}|${id}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): { at: Date; id: string } {
  const [iso, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const at = new Date(iso ?? '');
  if (!iso || Number.isNaN(at.getTime()) || !id || !/^[0-9a-f-]{36}$/i.test(id)) throw badInput('after: not a cursor of this connection', 'after');
  return { at, id };
}

export interface Page<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
}

/** A page of the audit log and the patient the report was about (see reportPatient), for the report's own audit event. */
export interface AuditEventPage extends Page<AuditEventRow> {
  reportPatientId: string | null;
}

export interface PageArgs {
  first?: number | null;
  after?: string | null;
  last?: number | null;
  before?: string | null;
}

function pageSize(args: PageArgs): number {
  if (args.last != null || args.before != null) throw badInput('reports page forward only: use first/after', 'last');
  const first = args.first ?? 50;
  if (!Number.isInteger(first) || first < 1 || first > 500) throw badInput('first must be between 1 and 500', 'first');
  return first;
}

type Branch = [AuditFilter, PatientMatch];

/** Newest first, keyset pagination on (at, id). */
export async function listAuditEvents(ctx: RequestContext, filter: AuditFilter, args: PageArgs): Promise<Page<AuditEventRow>> {
  const principal = requireComplianceUser(ctx.principal, AUDIT_READ);
  const first = pageSize(args);
  const after = args.after ? decodeCursor(args.after) : null;
  const sql = await ctx.tx.connection();
  const query = ([f, patientMatch]: Branch) => sql`
    select ${reportColumns(sql)} from audit_events
     where ${filterSql(sql, principal.tenantId, f, patientMatch)}
       ${after ? sql`and (at, id) < (${after.at}, ${after.id}::uuid)` : sql``}
     order by at desc, id desc
     limit ${first + 1}`;
  // a list of actions (or purposes) is one index range per value: each branch reads its newest rows in index order
  // and the union keeps the newest of all (one `= any(list)` scan would have to sort every matching row)
  // and a patient's own events and the events naming it among several patients are two branches too
  const byValue =
    (filter.actions?.length ?? 0) > 1
      ? filter.actions!.map((a) => ({ ...filter, actions: [a] }))
      : (filter.purposes?.length ?? 0) > 1
        ? filter.purposes!.map((p) => ({ ...filter, purposes: [p] }))
        : [filter];
  const branches: Branch[] = filter.patientId ? byValue.flatMap((f) => [[f, 'one'] as Branch, [f, 'many'] as Branch]) : byValue.map((f) => [f, 'either']);
  const rows =
    branches.length === 1
      ? await sql<AuditEventRow[]>`${query(branches[0]!)}`
      : await sql<AuditEventRow[]>`
          select * from (${branches.map((f) => sql`(${query(f)})`).reduce((a, b) => sql`${a} union all ${b}`)}) u
           order by at desc, id desc
           limit ${first + 1}`;
  const page = rows.slice(0, first).map(normalizeEvent);
  const edges = page.map((node) => ({ cursor: encodeCursor(node.at, node.id), node }));
  return {
    edges,
    pageInfo: {
      hasNextPage: rows.length > first,
      hasPreviousPage: !!after,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
  };
}

/** Walks the caller's tenant chain (see platform/audit/verify.ts). */
export async function verifyIntegrity(ctx: RequestContext): Promise<IntegrityReport> {
  const principal = requireComplianceUser(ctx.principal, AUDIT_READ);
  const sql = await ctx.tx.connection();
  return verifyTenantChain(sql, principal.tenantId, checkpointKeys(ctx.config).trusted);
}

// ---- alerts and patient flags ----

export interface AlertRow {
  id: string;
  rule: string;
  severity: string;
  actor_id: string | null;
  patient_id: string | null;
  window_start: Date;
  window_end: Date;
  event_count: number;
  detail: Record<string, unknown>;
  status: string;
  acknowledged_by: string | null;
  acknowledged_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const ALERT_COLUMNS = 'id, rule, severity, actor_id, patient_id, window_start, window_end, event_count, detail, status, acknowledged_by, acknowledged_at, created_at, updated_at';

function requireUserWith(ctx: RequestContext, permission: string) {
  const p = ctx.principal;
  if (!p) throw new AppError(ErrorCode.UNAUTHENTICATED, 'Authentication required');
  if (p.kind !== 'user' || !p.permissions.has(permission)) throw forbidden();
  return p;
}

export async function listAlerts(ctx: RequestContext, status: 'open' | 'acknowledged' | null | undefined, args: PageArgs): Promise<Page<AlertRow>> {
  const p = requireUserWith(ctx, ALERT_READ);
  const first = pageSize(args);
  const after = args.after ? decodeCursor(args.after) : null;
  const sql = await ctx.tx.connection();
  const rows = await sql<AlertRow[]>`
    select ${sql.unsafe(ALERT_COLUMNS)} from audit_alerts
     where tenant_id = ${p.tenantId}
       ${status ? sql`and status = ${status}` : sql``}
       ${after ? sql`and (created_at, id) < (${after.at}, ${after.id}::uuid)` : sql``}
     order by created_at desc, id desc
     limit ${first + 1}`;
  const page = rows.slice(0, first).map(normalizeAlert);
  const edges = page.map((node) => ({ cursor: encodeCursor(node.created_at, node.id), node }));
  return {
    edges,
    pageInfo: { hasNextPage: rows.length > first, hasPreviousPage: !!after, startCursor: edges[0]?.cursor ?? null, endCursor: edges.at(-1)?.cursor ?? null },
  };
}

export async function acknowledgeAlert(ctx: RequestContext, id: string): Promise<AlertRow> {
  const p = requireUserWith(ctx, ALERT_MANAGE);
  const sql = await ctx.tx.connection();
  const [row] = await sql<AlertRow[]>`
    update audit_alerts set status = 'acknowledged', acknowledged_by = ${p.id}, acknowledged_at = coalesce(acknowledged_at, now()), updated_at = now()
     where tenant_id = ${p.tenantId} and id = ${id}
     returning ${sql.unsafe(ALERT_COLUMNS)}`;
  if (!row) throw notFound('Alert');
  return normalizeAlert(row);
}

export async function setPatientFlag(ctx: RequestContext, patientId: string, flag: 'vip' | 'employee' | null): Promise<boolean> {
  const p = requireUserWith(ctx, ALERT_MANAGE);
  // like every id-taking operation: an id that is not a patient of the caller's tenant (another tenant's, or none) is
  // NOT_FOUND and nothing is stored (the lookup is registered by the patients module and runs under RLS)
  if (!(await resourceExists(ctx, 'patient', await ctx.db(), patientId))) throw notFound('Patient');
  const sql = await ctx.tx.connection();
  if (flag === null) {
    await sql`delete from audit_patient_flags where tenant_id = ${p.tenantId} and patient_id = ${patientId}`;
    return false;
  }
  await sql`
    insert into audit_patient_flags (tenant_id, patient_id, flag, set_by) values (${p.tenantId}, ${patientId}, ${flag}, ${p.id})
    on conflict (tenant_id, patient_id) do nothing`;
  const [row] = await sql<{ flag: string }[]>`select flag from audit_patient_flags where tenant_id = ${p.tenantId} and patient_id = ${patientId}`;
  if (row?.flag !== flag) {
    // the app role may not UPDATE flags (who set a flag is itself evidence): replace it
    await sql`delete from audit_patient_flags where tenant_id = ${p.tenantId} and patient_id = ${patientId}`;
    await sql`insert into audit_patient_flags (tenant_id, patient_id, flag, set_by) values (${p.tenantId}, ${patientId}, ${flag}, ${p.id})`;
  }
  return true;
}
