import { randomUUID } from 'node:crypto';
import type postgres from 'postgres';
import { dbAppError } from '../db/errors.js';
import type { RequestTransaction } from '../db/tenancy.js';
import { AppError, ErrorCode } from '../errors.js';
import { canonicalDetail } from './canonical.js';
import { stageChained } from './chain.js';
import {
  defaultPurposeOfUse,
  isUuid,
  type ActorType,
  type AuditDetail,
  type AuditEventInput,
  type AuditEventType,
  type AuditOutcome,
  type PurposeOfUse,
} from './types.js';
import type { AuditWriter } from './writer.js';

/** The parts of a Principal the audit log records (structurally the schema's Principal). */
export interface AuditPrincipal {
  /** system: a job running as a named system principal (platform/scope systemPrincipal) */
  kind: 'user' | 'apiKey' | 'system';
  id: string;
  tenantId: string;
  roles: readonly string[];
  sessionId?: string;
  amr?: readonly string[];
}

/** The parts of a request context the audit log needs (structurally the schema's RequestContext). */
export interface AuditableContext {
  requestId: string;
  ip: string | undefined;
  userAgent: string | undefined;
  principal: AuditPrincipal | null;
  tx: RequestTransaction;
}

/** What a field resolution contributes to the request's audit trail. */
export interface AccessRecord {
  eventType?: AuditEventType;
  patientIds: readonly string[];
  resourceType: string | null;
  resourceId: string | null;
  /** field coordinate, e.g. Patient.ssn */
  fields: readonly string[];
  categories?: readonly string[];
  action: string;
  outcome: AuditOutcome;
  /** purpose named by a field argument (overrides the request's) */
  purposeOfUse?: PurposeOfUse;
  detail?: AuditDetail;
}

/** A security event from identity/access (login, lockout, refresh reuse, role change ...). */
export interface SecurityEventInput {
  /** snake_case event name, e.g. login, login_failed, lockout, refresh_reuse, role_change */
  type: string;
  outcome: 'allowed' | 'denied';
  /** tenant of the event (defaults to the principal's) */
  tenantId?: string;
  /** who acted, when not the request's principal (e.g. the user id a login was attempted for) */
  actorId?: string | null;
  actorType?: ActorType;
  /** the user the event is about (e.g. whose roles changed), recorded as resource User/<id> */
  subjectUserId?: string | null;
  /** ids and codes only, never PHI or secrets */
  detail?: AuditDetail;
}

interface Entry {
  eventType: AuditEventType;
  patientId: string | null;
  resourceType: string | null;
  resourceId: string | null;
  action: string;
  outcome: AuditOutcome;
  purpose: PurposeOfUse | undefined;
  fields: Set<string>;
  categories: Set<string>;
  detail: AuditDetail;
}

const SECURITY_TYPE = /^[a-z][a-z0-9_.]{0,63}$/;
const WRITE_ACTIONS = new Set(['create', 'update', 'delete']);

/**
 * A request's audit trail in the making: PHI field resolutions and denials
 * collected during execution (merged per patient/resource/action/outcome),
 * written when execution ends and before the response is sent.
 */
export class AuditRequest {
  private readonly entries = new Map<string, Entry>();
  private last: Entry | undefined;
  private readonly extra: AuditEventInput[] = [];
  private readonly breakGlass = new Map<string, string | null>();
  /** the action of each audited root field (by response key), inherited by PHI fields below it */
  readonly rootActions = new Map<string, { action: string; purposeOfUse?: PurposeOfUse }>();
  operationName: string | null = null;

  constructor(
    readonly ctx: AuditableContext,
    readonly writer: AuditWriter,
    /** from X-Purpose-Of-Use; undefined = default by role */
    readonly purposeOfUse: PurposeOfUse | undefined,
  ) {}

  get isEmpty(): boolean {
    return this.entries.size === 0 && this.extra.length === 0;
  }

  record(r: AccessRecord) {
    const ids = r.patientIds;
    if (ids.length === 0) this.recordFor(null, r);
    else for (let i = 0; i < ids.length; i++) this.recordFor(ids[i]!, r);
  }

  private recordFor(patientId: string | null, r: AccessRecord) {
    const eventType = r.eventType ?? 'phi';
    // the fields of one object resolve one after another: most records belong to the previous record's entry
    const l = this.last;
    let e =
      l &&
      l.patientId === patientId &&
      l.resourceId === r.resourceId &&
      l.resourceType === r.resourceType &&
      l.action === r.action &&
      l.outcome === r.outcome &&
      l.purpose === r.purposeOfUse &&
      l.eventType === eventType
        ? l
        : undefined;
    if (!e) {
      const key = eventType + '\u0000' + patientId + '\u0000' + r.resourceType + '\u0000' + r.resourceId + '\u0000' + r.action + '\u0000' + r.outcome + '\u0000' + (r.purposeOfUse ?? '');
      e = this.entries.get(key);
      if (!e) {
        e = {
          eventType,
          patientId,
          resourceType: r.resourceType,
          resourceId: r.resourceId,
          action: r.action,
          outcome: r.outcome,
          purpose: r.purposeOfUse,
          fields: new Set(),
          categories: new Set(),
          detail: {},
        };
        this.entries.set(key, e);
      }
    }
    this.last = e;
    for (let i = 0; i < r.fields.length; i++) e.fields.add(r.fields[i]!);
    const categories = r.categories;
    if (categories) for (let i = 0; i < categories.length; i++) e.categories.add(categories[i]!);
    if (r.detail) Object.assign(e.detail, r.detail);
  }

  /** Access to this patient in this request was granted by break-glass: its events carry purpose ETREAT. */
  markBreakGlass(patientId: string, grantId?: string | null) {
    this.breakGlass.set(patientId, grantId ?? null);
  }

  addSecurityEvent(ev: SecurityEventInput) {
    this.extra.push(securityEvent(ev, this.ctx, this.operationName));
  }

  /**
   * The request's events. `commitWithRequest`: the operation is a mutation
   * that succeeded, so its events go into the request's own transaction
   * (atomic with the change); otherwise every event is group-committed, and
   * writes that will be rolled back are recorded as `failed`.
   */
  /** Which patients and PHI fields this request disclosed (allowed entries only): kept with an idempotent outcome so a replay can be audited. */
  disclosed(): { patientIds: string[]; fields: string[]; categories: string[] } {
    const patientIds = new Set<string>();
    const fields = new Set<string>();
    const categories = new Set<string>();
    for (const e of this.entries.values()) {
      if (e.outcome !== 'allowed' || e.eventType !== 'phi') continue;
      if (e.patientId) patientIds.add(e.patientId);
      for (const f of e.fields) fields.add(f);
      for (const c of e.categories) categories.add(c);
    }
    return { patientIds: [...patientIds], fields: [...fields], categories: [...categories] };
  }

  build(commitWithRequest: boolean): { inTx: AuditEventInput[]; grouped: AuditEventInput[] } {
    const p = this.ctx.principal;
    const at = new Date();
    const inTx: AuditEventInput[] = [];
    const grouped: AuditEventInput[] = [];
    const requestPurpose = this.purposeOfUse ?? (p ? defaultPurposeOfUse(p.roles, p.kind) : null);
    // reads alike of several patients: one event naming them all (acrossPatientsKey)
    const alike = new Map<string, { ev: AuditEventInput; patients: Set<string> }>();
    if (p) {
      for (const e of this.entries.values()) {
        const bg = e.patientId !== null && this.breakGlass.has(e.patientId);
        const detail: AuditDetail = { ...e.detail };
        if (bg) detail.breakGlassGrantId = this.breakGlass.get(e.patientId!) ?? null;
        const outcome: AuditOutcome = !commitWithRequest && e.outcome === 'allowed' && WRITE_ACTIONS.has(e.action) ? 'failed' : e.outcome;
        const purposeOfUse = bg ? 'ETREAT' : (e.purpose ?? requestPurpose);
        const fields = [...e.fields].sort();
        const categories = [...e.categories].sort();
        const patientId = patientUuid(e.patientId);
        const target = commitWithRequest && e.outcome !== 'denied' ? inTx : grouped;
        const key = acrossPatientsKey(e, target === inTx, outcome, purposeOfUse, fields, categories, detail);
        const same = key === undefined ? undefined : alike.get(key);
        if (same) {
          same.patients.add(patientId!);
          continue;
        }
        const ev: AuditEventInput = {
          id: randomUUID(),
          tenantId: p.tenantId,
          at,
          eventType: e.eventType,
          actorType: p.kind,
          actorId: p.id,
          actorRoles: [...p.roles],
          sessionId: p.sessionId ?? null,
          patientId,
          resourceType: e.resourceType,
          resourceId: e.resourceId,
          fields,
          categories,
          action: e.action,
          outcome,
          purposeOfUse,
          requestId: this.ctx.requestId,
          ip: this.ctx.ip ?? null,
          userAgent: truncate(this.ctx.userAgent, 512),
          operationName: this.operationName,
          detail,
        };
        target.push(ev);
        if (key !== undefined) alike.set(key, { ev, patients: new Set([patientId!]) });
      }
      for (const { ev, patients } of alike.values()) {
        if (patients.size < 2) continue;
        ev.patientIds = [...patients].sort();
        ev.patientId = null;
        ev.resourceId = null;
      }
    }
    // (anonymous callers have no tenant to file events under; they can reach no PHI field: scope-auth denies first)
    for (const ev of this.extra) {
      ev.at = at;
      ev.operationName = this.operationName;
      (commitWithRequest && p && ev.tenantId === p.tenantId && ev.outcome !== 'denied' ? inTx : grouped).push(ev);
    }
    return { inTx, grouped };
  }
}

/**
 * One event for what a request read alike of several patients: read entries
 * that differ only in the patient (a search page or a list: the same fields of
 * each patient's own record, same outcome, purpose and detail) become one
 * event naming every patient in `patientIds` (patientId and resourceId null),
 * in the place of the first. Nothing is lost: each patient, field and category
 * is still recorded (and reports by patient find the event), and the row costs
 * one insert instead of one per patient. Writes, reveals and exports, entries
 * about another record of a patient (resourceId not the patient's id),
 * break-glass accesses (their grant differs) and single-patient events are
 * left as they are. Returns the entry's group key, or undefined when it stays
 * an event of its own.
 */
function acrossPatientsKey(
  e: Entry,
  inTx: boolean,
  outcome: AuditOutcome,
  purposeOfUse: string | null,
  fields: string[],
  categories: string[],
  detail: AuditDetail,
): string | undefined {
  if (e.action !== 'read' || e.patientId === null || (e.resourceId !== null && e.resourceId !== e.patientId)) return undefined;
  // (String(): null stays apart from '')
  return [inTx, e.eventType, String(e.resourceType), outcome, String(purposeOfUse), fields.join('\u0001'), categories.join('\u0001'), JSON.stringify(canonicalDetail(detail))].join('\u0000');
}

/** Patient ids are UUIDs; anything else is a marking bug, and the request fails closed (AUDIT_UNAVAILABLE). */
function patientUuid(id: string | null): string | null {
  if (id === null) return null;
  if (!isUuid(id)) throw new Error('audit: a PHI marker returned a patient id that is not a UUID');
  return id.toLowerCase();
}

function truncate(s: string | undefined | null, n: number): string | null {
  if (!s) return null;
  return s.length > n ? s.slice(0, n) : s;
}

function securityEvent(ev: SecurityEventInput, ctx: Partial<AuditableContext> | undefined, operationName: string | null): AuditEventInput {
  if (!SECURITY_TYPE.test(ev.type)) throw new Error('security event type must be snake_case');
  const p = ctx?.principal ?? null;
  const tenantId = ev.tenantId ?? p?.tenantId;
  if (!tenantId) throw new Error('security event without a tenant');
  return {
    id: randomUUID(),
    tenantId,
    at: new Date(),
    eventType: 'security',
    actorType: ev.actorType ?? (ev.actorId !== undefined ? (ev.actorId ? 'user' : 'anonymous') : (p?.kind ?? 'anonymous')),
    actorId: ev.actorId !== undefined ? ev.actorId : (p?.id ?? null),
    actorRoles: ev.actorId !== undefined ? [] : [...(p?.roles ?? [])],
    sessionId: ev.actorId !== undefined ? null : (p?.sessionId ?? null),
    patientId: null,
    resourceType: ev.subjectUserId ? 'User' : null,
    resourceId: ev.subjectUserId ?? null,
    fields: [],
    categories: [],
    action: ev.type,
    outcome: ev.outcome,
    purposeOfUse: null,
    requestId: ctx?.requestId ?? null,
    ip: ctx?.ip ?? null,
    userAgent: truncate(ctx?.userAgent, 512),
    operationName,
    detail: ev.detail ?? {},
  };
}

/**
 * An event about the audit log itself or another non-GraphQL access (e.g.
 * the CSV export route), attributed to a principal; write it with
 * AuditWriter.append before responding.
 */
export function principalEvent(
  principal: AuditPrincipal,
  request: { requestId?: string; ip?: string; userAgent?: string },
  e: Pick<AuditEventInput, 'eventType' | 'action' | 'outcome' | 'resourceType'> &
    Partial<Pick<AuditEventInput, 'patientId' | 'resourceId' | 'fields' | 'purposeOfUse' | 'operationName' | 'detail'>>,
): AuditEventInput {
  return {
    id: randomUUID(),
    tenantId: principal.tenantId,
    at: new Date(),
    eventType: e.eventType,
    actorType: principal.kind,
    actorId: principal.id,
    actorRoles: [...principal.roles],
    sessionId: principal.sessionId ?? null,
    patientId: patientUuid(e.patientId ?? null),
    resourceType: e.resourceType,
    resourceId: e.resourceId ?? null,
    fields: [...(e.fields ?? [])].sort(),
    categories: [],
    action: e.action,
    outcome: e.outcome,
    purposeOfUse: e.purposeOfUse ?? defaultPurposeOfUse(principal.roles, principal.kind),
    requestId: request.requestId ?? null,
    ip: request.ip ?? null,
    userAgent: truncate(request.userAgent, 512),
    operationName: e.operationName ?? null,
    detail: e.detail ?? {},
  };
}

const requests = new WeakMap<object, AuditRequest>();

/** Starts a request's audit trail (the Apollo audit plugin does this for every GraphQL request). */
export function beginAuditRequest(ctx: AuditableContext, writer: AuditWriter, purposeOfUse?: PurposeOfUse): AuditRequest {
  const r = new AuditRequest(ctx, writer, purposeOfUse);
  requests.set(ctx, r);
  return r;
}

/** The request's audit trail; throws AUDIT_UNAVAILABLE when PHI is resolved outside an audited request. */
export function auditRequestOf(ctx: object): AuditRequest {
  const r = requests.get(ctx);
  if (!r) throw new AppError(ErrorCode.AUDIT_UNAVAILABLE, 'The audit log is unavailable; no data was returned');
  return r;
}

export function hasAuditRequest(ctx: object): boolean {
  return requests.has(ctx);
}

/**
 * Records a security event with the current request (durable before its
 * response; inside the request transaction when the mutation commits, else
 * group-committed so that e.g. a failed login is kept although its
 * transaction rolls back).
 */
export function recordSecurityEvent(ctx: AuditableContext, event: SecurityEventInput): void {
  auditRequestOf(ctx).addSecurityEvent(event);
}

/**
 * Records a security event outside a GraphQL request (e.g. a REST route such
 * as /auth/refresh, or a job) and resolves once it is committed.
 */
export async function recordSecurityEventNow(
  writer: AuditWriter,
  event: SecurityEventInput & { tenantId: string },
  request?: { requestId?: string; ip?: string; userAgent?: string; principal?: AuditPrincipal | null },
): Promise<void> {
  await writer.append([securityEvent(event, request as Partial<AuditableContext> | undefined, null)]);
}

/** Tells the audit trail that access to this patient was granted by a break-glass grant (purpose ETREAT). */
export function markBreakGlassAccess(ctx: AuditableContext, patientId: string, grantId?: string | null): void {
  auditRequestOf(ctx).markBreakGlass(patientId, grantId);
}

/**
 * Writes a request's events: group-committed ones first (never while holding
 * this tenant's chain lock, so a batch cannot wait on us while we wait on
 * it), then those that belong to the request transaction, under a savepoint
 * so a missing partition can be created and the insert retried.
 */
export async function writeAuditRequest(r: AuditRequest, commitWithRequest: boolean): Promise<{ inTx: number; grouped: number }> {
  const { inTx, grouped } = r.build(commitWithRequest);
  if (grouped.length) await r.writer.append(grouped);
  if (inTx.length) {
    await r.ctx.tx.connection(); // opens the transaction if the mutation has not
    r.ctx.tx.beforeCommit((conn) => stageBeforeCommit(conn, inTx));
    // once committed, the staged events join the chain (group-committed); the response waits for it
    r.ctx.tx.afterCommit(() => r.writer.chainStaged(inTx[0]!.tenantId));
  }
  return { inTx: inTx.length, grouped: grouped.length };
}

/**
 * A mutation's events go into its own transaction as its last statement: one
 * insert into audit_staged (stageChained) leaves in the same write as COMMIT,
 * so the change and its trail are saved together or not at all
 * (AUDIT_UNAVAILABLE). The tenant's chain head is not touched here:
 * concurrent writes of a tenant do not queue on it through their commits.
 * After the commit the group writer chains the staged events (afterCommit),
 * many writes per batch; a crash in between leaves them staged, durable, and
 * chained by the audit.chainStaged schedule.
 */
async function stageBeforeCommit(conn: postgres.ReservedSql, events: AuditEventInput[]): Promise<Promise<unknown>[]> {
  // (audit_staged is not partitioned: a missing monthly partition is met, and created, by the chaining)
  const unavailable = (e: unknown) => {
    // the whole database is down (not just the audit log): say so, like every other statement of the outage
    const down = dbAppError(e);
    if (down?.code === ErrorCode.DATABASE_UNAVAILABLE) return down;
    return new AppError(ErrorCode.AUDIT_UNAVAILABLE, 'The audit log is unavailable; the change was not saved');
  };
  try {
    const write = stageChained(conn, events[0]!.tenantId, events);
    return [
      write.catch((e) => {
        throw unavailable(e);
      }),
    ];
  } catch (e) {
    throw unavailable(e);
  }
}

