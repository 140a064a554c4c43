import { Readable } from 'node:stream';
import { stringify } from 'csv-stringify/sync';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { auditWriterFor, principalEvent, type AuditPrincipal } from '../../platform/audit/index.js';
import { AppError, ErrorCode } from '../../platform/errors.js';
import type { ModuleDeps } from '../../schema/index.js';
import { AUDIT_EXPORT, auditFilterSchema, filterFields, filterSql, normalizeEvent, reportColumns, requireComplianceUser, type AuditEventRow, type AuditFilter } from './service.js';

export const EXPORT_PATH = '/exports/audit.csv';

const HEADER = [
  'id', 'at', 'seq', 'event_type', 'actor_type', 'actor_id', 'actor_roles', 'session_id', 'patient_id', 'resource_type', 'resource_id',
  'fields', 'categories', 'action', 'outcome', 'purpose_of_use', 'request_id', 'ip', 'user_agent', 'operation_name', 'detail',
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
  ];
}

function fail(reply: FastifyReply, req: FastifyRequest, status: number, code: string, message: string, extra: Record<string, unknown> = {}) {
  return reply.code(status).send({ errors: [{ message, extensions: { code, requestId: req.id, ...extra } }] });
}

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
 * Bearer token as for /graphql; permission audit:export, users with an MFA
 * sign-in only. The export is itself audited (durably, before the first
 * byte). Rows stream from a server-side cursor (1,000 at a time) through a
 * pull-based stream, so memory stays flat whatever the size of the log.
 */
export function registerExportRoute(app: FastifyInstance, deps: ModuleDeps) {
  app.get(EXPORT_PATH, async (req, reply) => {
    const writer = auditWriterFor(deps.database.sql);
    const info = { requestId: req.id, ip: req.ip, userAgent: req.headers['user-agent'] };
    let principal: (AuditPrincipal & { permissions: ReadonlySet<string> }) | null = null;
    try {
      principal = (await deps.authenticate?.(req)) ?? null;
    } catch (e) {
      if (e instanceof AppError) return fail(reply, req, e.code === ErrorCode.UNAUTHENTICATED ? 401 : 400, e.code, e.message);
      throw e;
    }
    if (!principal) return fail(reply, req, 401, ErrorCode.UNAUTHENTICATED, 'Authentication required');
    try {
      requireComplianceUser(principal, AUDIT_EXPORT);
    } catch (e) {
      const reason = e instanceof AppError ? String((e.extensions as { reason?: unknown }).reason ?? e.code) : 'FORBIDDEN';
      await writer
        .append([principalEvent(principal, info, { eventType: 'audit', action: 'export', outcome: 'denied', resourceType: 'AuditLog', operationName: 'auditCsvExport', detail: { reason } })])
        .catch(() => undefined);
      return fail(reply, req, 403, ErrorCode.FORBIDDEN, e instanceof AppError ? e.message : 'Not allowed', reason !== 'FORBIDDEN' ? { reason } : {});
    }
    const parsed = parseExportQuery(req.query as Record<string, unknown>);
    if (!parsed.ok) return fail(reply, req, 400, ErrorCode.BAD_USER_INPUT, `${parsed.field}: ${parsed.message}`, { field: parsed.field });
    const filter = parsed.filter;
    try {
      await writer.append([
        principalEvent(principal, info, {
          eventType: 'audit',
          action: 'export',
          outcome: 'allowed',
          resourceType: 'AuditLog',
          patientId: filter.patientId ?? null,
          fields: filterFields(filter),
          operationName: 'auditCsvExport',
          detail: { actorFilter: filter.actorId ?? null },
        }),
      ]);
    } catch {
      return fail(reply, req, 503, ErrorCode.AUDIT_UNAVAILABLE, 'The audit log is unavailable; nothing was exported');
    }

    const tenantId = principal.tenantId;
    const conn = await deps.database.sql.reserve();
    let open = true;
    const finish = async (how: 'commit' | 'rollback') => {
      if (!open) return;
      open = false;
      try {
        await (how === 'commit' ? conn`commit` : conn`rollback`);
      } catch {
        // the connection is released either way
      } finally {
        conn.release();
      }
    };
    try {
      await conn`begin read only`;
      await conn`select set_config('app.tenant_id', ${tenantId}, true)`;
    } catch (e) {
      await finish('rollback');
      throw e;
    }
    async function* csv() {
      try {
        yield stringify([HEADER]);
        const cursor = conn<AuditEventRow[]>`
          select ${reportColumns(conn)} from audit_events where ${filterSql(conn, tenantId, filter)} order by at, id`.cursor(1000);
        for await (const rows of cursor) yield stringify(rows.map((r) => toRecord(normalizeEvent(r))));
        await finish('commit');
      } finally {
        await finish('rollback'); // client went away or the query failed: end the transaction, free the connection
      }
    }
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    reply
      .header('content-type', 'text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="audit-${stamp}.csv"`)
      .header('cache-control', 'no-store');
    return reply.send(Readable.from(csv(), { objectMode: false, highWaterMark: 64 * 1024 }));
  });
}
