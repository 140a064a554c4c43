import { stringify } from 'csv-stringify/sync';
import type { FastifyInstance } from 'fastify';
import { badInput } from '../../platform/errors.js';
import { defineRoute, streamBody, type RouteDefinition } from '../../platform/scope/index.js';
import type { ModuleDeps } from '../../schema/index.js';
import { AUDIT_EXPORT, auditFilterSchema, filterFields, filterSql, normalizeEvent, reportColumns, reportDetail, reportPatient, requireComplianceUser, type AuditEventRow, type AuditFilter } from './service.js';

/** how long the export's cursor may run (per statement): 30 minutes */
const EXPORT_STATEMENT_TIMEOUT_MS = 30 * 60_000;

export const EXPORT_PATH = '/exports/audit.csv';

const HEADER = [
  'id', 'at', 'seq', 'event_type', 'actor_type', 'actor_id', 'actor_roles', 'session_id', 'patient_id', 'resource_type', 'resource_id',
  'fields', 'categories', 'action', 'outcome', 'purpose_of_use', 'request_id', 'ip', 'user_agent', 'operation_name', 'detail',
  // last, so that the columns before keep their places: an event about several patients (patient_id empty) names them here
  'patient_ids',
];

/** Spreadsheet formula injection: a cell starting with = + - @ or a control character is prefixed with '. */
function cell(v: string | null): string {
  if (v === null) return '';
  return /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
}

function toRecord(r: AuditEventRow): string[] {
  return [
    r.id, r.at.toISOString(), String(r.seq), r.event_type, r.actor_type, cell(r.actor_id), r.actor_roles.join(';'), cell(r.session_id),
    r.patient_id ?? '', cell(r.resource_type), cell(r.resource_id), r.fields.join(';'), r.categories.join(';'), cell(r.action), r.outcome,
    r.purpose_of_use ?? '', cell(r.request_id), cell(r.ip), cell(r.user_agent), cell(r.operation_name), cell(JSON.stringify(r.detail ?? {})),
    r.patient_ids.join(';'),
  ];
}

const toIds = (id: string | null) => (id ? [id] : []);

const list = (v: unknown) => (typeof v === 'string' && v !== '' ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined);

/** Query string -> filter (same rules as the GraphQL AuditEventFilter). */
export function parseExportQuery(q: Record<string, unknown>): { ok: true; filter: AuditFilter } | { ok: false; field: string; message: string } {
  const breakGlass = q.breakGlass === undefined ? undefined : q.breakGlass === 'true' ? true : q.breakGlass === 'false' ? false : 'invalid';
  const raw = {
    patientId: q.patientId || undefined,
    actorId: q.actorId || undefined,
    from: q.from || undefined,
    to: q.to || undefined,
    actions: list(q.action),
    purposes: list(q.purpose),
    outcome: q.outcome || undefined,
    eventTypes: list(q.eventType),
    breakGlass,
    requestId: q.requestId || undefined,
  };
  const parsed = auditFilterSchema.safeParse(Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined)));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, field: String(issue?.path[0] ?? 'query'), message: issue?.message ?? 'invalid' };
  }
  return { ok: true, filter: parsed.data };
}

/**
 * GET /exports/audit.csv?patientId=&actorId=&from=&to=&action=a,b&purpose=TREAT&outcome=denied&eventType=phi&breakGlass=true
 * On the request-scope route adapter: the same credentials as /graphql,
 * permission audit:export, users with an MFA sign-in only (refusals audited).
 * The export is itself audited (durably, before the first byte). Rows stream
 * from a server-side cursor (1,000 at a time) in the scope's read-only tenant
 * transaction through a pull-based stream, so memory stays flat whatever the
 * size of the log; the transaction ends with the stream.
 */
export const exportRoute: RouteDefinition = defineRoute({
  method: 'GET',
  url: EXPORT_PATH,
  permission: AUDIT_EXPORT,
  operationName: 'auditCsvExport',
  auditDenials: { eventType: 'audit', resourceType: 'AuditLog', action: 'export' },
  handler: async (scope, req, reply) => {
    const principal = requireComplianceUser(scope.principal, AUDIT_EXPORT);
    const parsed = parseExportQuery(req.query as Record<string, unknown>);
    if (!parsed.ok) throw badInput(`${parsed.field}: ${parsed.message}`, parsed.field);
    const filter = parsed.filter;
    scope.recordPhiAccess({
      eventType: 'audit',
      action: 'export',
      outcome: 'allowed',
      resourceType: 'AuditLog',
      resourceId: null,
      // the filter's patient only when it is a patient of the tenant; the ids asked for are in detail (as for auditEvents)
      patientIds: toIds(await reportPatient(scope, filter)),
      fields: filterFields(filter),
      detail: reportDetail(filter),
    });
    await scope.readOnly();
    const conn = await scope.connection();
    // the cursor outlives a request's statement_timeout (a 100k-row export on a busy machine takes longer than 10 s:
    // the stream was cut after the 200); a bound stays, generous for a compliance export
    await conn`select set_config('statement_timeout', ${String(EXPORT_STATEMENT_TIMEOUT_MS)}, true)`;
    const tenantId = principal.tenantId;
    async function* csv() {
      yield stringify([HEADER]);
      const cursor = conn<AuditEventRow[]>`
        select ${reportColumns(conn)} from audit_events where ${filterSql(conn, tenantId, filter)} order by at, id`.cursor(1000);
      for await (const rows of cursor) yield stringify(rows.map((r) => toRecord(normalizeEvent(r))));
    }
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    reply
      .header('content-type', 'text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="audit-${stamp}.csv"`)
      .header('cache-control', 'no-store');
    return streamBody(csv());
  },
});

/** Registers the export on the request-scope route adapter. */
export function registerExportRoute(_app: FastifyInstance, deps: ModuleDeps) {
  deps.route!(exportRoute);
}
