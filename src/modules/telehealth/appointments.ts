import { randomUUID } from 'node:crypto';
import { and, asc, eq, gt, gte, inArray, lt, or, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../../platform/db/index.js';
import { AppError, ErrorCode, badInput, conflict, forbidden, notFound } from '../../platform/errors.js';
import { emitEvent } from '../../platform/jobs/index.js';
import type { RequestScope, ScopePrincipal } from '../../platform/scope/index.js';
import { actorOf, asAccessPrincipal, findPatient, inSavepoint, instanceOf, invalidTransition, ownPatientIds, pgCode, principalOf, textArg, uuidArg } from './common.js';
import {
  appointmentAccess,
  appointmentScopesFor,
  CHECK_IN_OPENS_MINUTES,
  isPatientOnly,
  MAX_BOOKING_AHEAD_DAYS,
  TRANSITIONS,
  type AppointmentAction,
  type TransitionName,
} from './policy.js';
import { providerAvailability, requireProvider, requireVisitType } from './schedules.js';
import { APPOINTMENT_STATUSES, telehealthAppointments, telehealthAppointmentTransitions, type Appointment, type AppointmentStatus } from './tables.js';
import { isTimeZone, withinAvailability } from './time.js';

/**
 * Appointments: booking (no double booking: the exclusion constraint
 * telehealth_appointments_no_overlap, surfaced as CONFLICT), rescheduling,
 * cancelling, and the visit state machine (policy.ts TRANSITIONS). Every
 * change writes a history row, an outbox event (rooms visit:<id> and
 * waitingRoom:<providerId>) and an audit entry, in the caller's transaction.
 */

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
export const NO_OVERLAP_CONSTRAINT = 'telehealth_appointments_no_overlap';

/** Checks run before a transition; other features of the module add theirs (e.g. consent before entering the waiting room). */
export type TransitionGuard = (scope: RequestScope, db: Db, appointment: Appointment, transition: TransitionName) => Promise<void>;

const badInputWith = (message: string, field: string, reason: string) => new AppError(ErrorCode.BAD_USER_INPUT, message, { field, reason });

/** An instant argument: a Date (GraphQL DateTime) or an ISO 8601 string with an offset. */
export function instantArg(v: unknown, field: string): number {
  const d = v instanceof Date ? v : typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T.*(Z|[+-]\d{2}:?\d{2})$/.test(v) ? new Date(v) : undefined;
  if (!d || Number.isNaN(d.getTime())) throw badInput(`${field} must be an ISO 8601 date-time with an offset`, field);
  return d.getTime();
}

export async function loadAppointment(db: Db, tenantId: string, id: string): Promise<Appointment> {
  const [row] = await db.select().from(telehealthAppointments).where(and(eq(telehealthAppointments.tenantId, tenantId), eq(telehealthAppointments.id, id)));
  if (!row) throw notFound('Appointment');
  return row;
}

/**
 * The appointment if the principal may do `action` to it: NOT_FOUND when it
 * is not in the tenant, FORBIDDEN when the access rules refuse (a patient's
 * other appointments, a visit the user does not take part in). Jobs (system
 * principals) are trusted code.
 */
export async function authorizeAppointment(scope: RequestScope, idArg: unknown, action: AppointmentAction): Promise<Appointment> {
  const id = uuidArg(idArg, 'appointmentId');
  const p = principalOf(scope);
  const db = await scope.db();
  const appt = await loadAppointment(db, p.tenantId, id);
  const ap = asAccessPrincipal(p);
  if (ap) {
    const result = await appointmentAccess.check(ap, id, action, db);
    if (!result.allowed) {
      if (result.outcome === 'rbac') throw forbidden();
      throw new AppError(ErrorCode.FORBIDDEN, action === 'join' ? 'Not a participant of this visit' : 'Not allowed for this appointment', {
        reason: action === 'join' ? 'NOT_A_PARTICIPANT' : 'APPOINTMENT_ACCESS',
      });
    }
  }
  return appt;
}

/** The patient a booking is for: a PATIENT user books for their own record only; staff for any live patient of the tenant. */
async function bookingPatient(db: Db, p: ScopePrincipal, patientIdArg: unknown): Promise<string> {
  const ap = asAccessPrincipal(p);
  if (ap && isPatientOnly(ap, 'book')) {
    const own = await ownPatientIds(db, p.tenantId, p.id);
    if (!own.length) throw new AppError(ErrorCode.FORBIDDEN, 'No patient record is linked to this account', { reason: 'NO_PATIENT_RECORD' });
    if (patientIdArg === undefined || patientIdArg === null) return own[0]!;
    const patientId = uuidArg(patientIdArg, 'patientId');
    if (!own.includes(patientId)) throw new AppError(ErrorCode.FORBIDDEN, 'Not allowed for this patient', { reason: 'PATIENT_ACCESS' });
    return patientId;
  }
  if (ap && !appointmentScopesFor(ap.roles, 'book').has('tenant')) throw forbidden();
  const patientId = uuidArg(patientIdArg, 'patientId');
  const patient = await findPatient(db, p.tenantId, patientId);
  if (!patient) throw notFound('Patient');
  if (patient.status === 'merged' || patient.status === 'deceased') throw badInputWith(`The patient record is ${patient.status}`, 'patientId', 'PATIENT_INACTIVE');
  return patientId;
}

/** Refuses a start in the past, too far ahead, or an interval outside the provider's availability. */
async function checkBookable(scope: RequestScope, db: Db, tenantId: string, providerId: string, start: number, end: number): Promise<void> {
  const now = instanceOf(scope).now();
  if (start <= now) throw badInputWith('startsAt is in the past', 'startsAt', 'IN_THE_PAST');
  if (start > now + MAX_BOOKING_AHEAD_DAYS * DAY) throw badInputWith(`startsAt is more than ${MAX_BOOKING_AHEAD_DAYS} days ahead`, 'startsAt', 'TOO_FAR_AHEAD');
  const { windows } = await providerAvailability(db, tenantId, providerId, start - DAY, end + DAY);
  if (!withinAvailability(windows, start, end)) throw badInputWith('The provider is not available at this time', 'startsAt', 'OUTSIDE_AVAILABILITY');
}

const slotTaken = () => new AppError(ErrorCode.CONFLICT, 'The provider is already booked at this time', { reason: 'SLOT_TAKEN' });

/** Runs an insert/update of appointment times; the exclusion constraint's refusal becomes CONFLICT (nothing changed). */
async function withoutOverlap<T>(db: Db, fn: () => Promise<T>): Promise<T> {
  try {
    return await inSavepoint(db, fn);
  } catch (e) {
    if (pgCode(e) === '23P01') throw slotTaken();
    throw e;
  }
}

interface ChangeRecord {
  appointment: Appointment;
  from: AppointmentStatus | null;
  action: string;
  event: string;
  auditAction: 'create' | 'update';
  previousStartsAt?: Date | null;
}

/** History row + outbox event (ids only) + audit entry of one change, in the caller's transaction. */
async function recordChange(scope: RequestScope, db: Db, c: ChangeRecord): Promise<void> {
  const p = principalOf(scope);
  const a = c.appointment;
  await db.insert(telehealthAppointmentTransitions).values({
    tenantId: a.tenantId,
    appointmentId: a.id,
    fromStatus: c.from,
    toStatus: a.status,
    action: c.action,
    actor: actorOf(p),
    previousStartsAt: c.previousStartsAt ?? null,
  });
  await emitEvent(db, {
    type: c.event,
    tenantId: a.tenantId,
    aggregateId: a.id,
    payload: {
      appointmentId: a.id,
      providerId: a.providerId,
      patientId: a.patientId,
      status: a.status,
      fromStatus: c.from,
      action: c.action,
      version: a.version,
      startsAt: a.startsAt.getTime(),
    },
    rooms: appointmentRooms(a),
  });
  scope.recordPhiAccess({
    patientIds: [a.patientId],
    resourceType: 'Appointment',
    resourceId: a.id,
    fields: c.auditAction === 'create' ? ['Appointment.startsAt', 'Appointment.providerId', 'Appointment.status'] : c.action === 'reschedule' ? ['Appointment.startsAt'] : ['Appointment.status'],
    action: c.auditAction,
    outcome: 'allowed',
    detail: { transition: c.action, from: c.from, to: a.status },
  });
}

/** Socket rooms that hear about an appointment: its visit room and its provider's waiting room. */
export function appointmentRooms(a: Pick<Appointment, 'id' | 'providerId'>): string[] {
  return [`visit:${a.id}`, `waitingRoom:${a.providerId}`];
}

export interface BookInput {
  patientId?: unknown;
  providerId: unknown;
  visitTypeId: unknown;
  startsAt: unknown;
  reason?: unknown;
  /** the caller's IANA zone (kept for notices) */
  timeZone?: unknown;
}

/** Books an appointment (staff: any live patient of the tenant; a PATIENT user: their own record). */
export async function bookAppointment(scope: RequestScope, input: BookInput): Promise<Appointment> {
  const p = principalOf(scope, 'telehealth:appointment:book');
  const providerId = uuidArg(input.providerId, 'providerId');
  const visitTypeId = uuidArg(input.visitTypeId, 'visitTypeId');
  const db = await scope.db();
  // the records named first (NOT_FOUND), then the other arguments
  const patientId = await bookingPatient(db, p, input.patientId);
  await requireProvider(db, p.tenantId, providerId);
  const visitType = await requireVisitType(db, p.tenantId, visitTypeId);
  const start = instantArg(input.startsAt, 'startsAt');
  const reason = textArg(input.reason, 'reason', { max: 1000, optional: true });
  if (input.timeZone !== undefined && input.timeZone !== null && !isTimeZone(input.timeZone)) throw badInput('timeZone must be an IANA time zone', 'timeZone');
  const end = start + visitType.durationMinutes * MINUTE;
  await checkBookable(scope, db, p.tenantId, providerId, start, end);
  const id = randomUUID();
  const now = new Date(instanceOf(scope).now());
  const [appointment] = await withoutOverlap(db, () =>
    db
      .insert(telehealthAppointments)
      .values({
        id,
        tenantId: p.tenantId,
        patientId,
        providerId,
        visitTypeId,
        modality: visitType.modality,
        startsAt: new Date(start),
        endsAt: new Date(end),
        blockedUntil: new Date(end + visitType.bufferMinutes * MINUTE),
        reason,
        roomName: visitType.modality === 'video' ? `visit_${id}` : null,
        bookedBy: p.kind === 'user' ? p.id : null,
        bookedTimeZone: (input.timeZone as string | null | undefined) ?? null,
        createdAt: now,
        updatedAt: now,
      })
      .returning(),
  );
  await recordChange(scope, db, { appointment: appointment!, from: null, action: 'book', event: 'appointment.booked', auditAction: 'create' });
  return appointment!;
}

/** Moves a scheduled appointment to another start (same length and buffer); CONFLICT when the provider is taken then. */
export async function rescheduleAppointment(scope: RequestScope, input: { appointmentId: unknown; startsAt: unknown }): Promise<Appointment> {
  principalOf(scope, 'telehealth:appointment:book');
  const appt = await authorizeAppointment(scope, input.appointmentId, 'book');
  const start = instantArg(input.startsAt, 'startsAt');
  if (appt.status !== 'scheduled') throw invalidTransition(appt.status, 'reschedule');
  const db = await scope.db();
  const length = appt.endsAt.getTime() - appt.startsAt.getTime();
  const buffer = appt.blockedUntil.getTime() - appt.endsAt.getTime();
  await checkBookable(scope, db, appt.tenantId, appt.providerId, start, start + length);
  const [row] = await withoutOverlap(db, () =>
    db
      .update(telehealthAppointments)
      .set({
        startsAt: new Date(start),
        endsAt: new Date(start + length),
        blockedUntil: new Date(start + length + buffer),
        rescheduleCount: sql`${telehealthAppointments.rescheduleCount} + 1`,
        version: sql`${telehealthAppointments.version} + 1`,
        updatedAt: new Date(instanceOf(scope).now()),
      })
      .where(and(eq(telehealthAppointments.tenantId, appt.tenantId), eq(telehealthAppointments.id, appt.id), eq(telehealthAppointments.status, 'scheduled')))
      .returning(),
  );
  if (!row) throw invalidTransition((await loadAppointment(db, appt.tenantId, appt.id)).status, 'reschedule');
  await recordChange(scope, db, { appointment: row, from: 'scheduled', action: 'reschedule', event: 'appointment.rescheduled', auditAction: 'update', previousStartsAt: appt.startsAt });
  return row;
}

/** Timestamps a transition sets besides the status. */
function transitionColumns(name: TransitionName, now: Date, p: ScopePrincipal, reason: string | null): Partial<typeof telehealthAppointments.$inferInsert> {
  switch (name) {
    case 'check_in':
      return { checkedInAt: now };
    case 'wait':
      return { waitingSince: now };
    case 'admit':
      return { admittedAt: now };
    case 'complete':
      return { completedAt: now };
    case 'cancel':
      return { cancelledAt: now, cancelledBy: p.kind === 'user' ? p.id : null, cancelReason: reason };
    case 'no_show':
      return { noShowAt: now };
  }
}

/** Time rules of a transition (after the state check): check-in opens before the start; a no-show only once the visit should have begun. */
function checkTiming(name: TransitionName, appt: Appointment, now: number): void {
  if (name === 'check_in' || name === 'wait') {
    if (now < appt.startsAt.getTime() - CHECK_IN_OPENS_MINUTES * MINUTE) throw badInputWith(`Check-in opens ${CHECK_IN_OPENS_MINUTES} minutes before the appointment`, 'appointmentId', 'TOO_EARLY');
    if (now >= appt.endsAt.getTime()) throw badInputWith('The appointment is over', 'appointmentId', 'TOO_LATE');
  }
  if (name === 'no_show' && now < appt.startsAt.getTime()) throw badInputWith('A no-show can be marked once the appointment has started', 'appointmentId', 'TOO_EARLY');
}

/**
 * One step of the state machine (check_in, wait, admit, complete, cancel,
 * no_show): RBAC, the appointment scope, the state check, timing and the
 * registered guards, then a compare-and-set update (a concurrent change
 * makes it INVALID_STATE_TRANSITION, never a double step).
 */
export async function transitionAppointment(
  scope: RequestScope,
  idArg: unknown,
  name: TransitionName,
  opts: { reason?: unknown; guards?: readonly TransitionGuard[] } = {},
): Promise<Appointment> {
  const spec = TRANSITIONS[name];
  const p = principalOf(scope, appointmentAccess.permission(spec.access));
  const appt = await authorizeAppointment(scope, idArg, spec.access);
  const reason = name === 'cancel' ? textArg(opts.reason, 'reason', { min: 3, max: 500 }) : null;
  if (!(spec.from as readonly string[]).includes(appt.status)) throw invalidTransition(appt.status, name);
  const nowMs = instanceOf(scope).now();
  checkTiming(name, appt, nowMs);
  const db = await scope.db();
  for (const guard of opts.guards ?? []) await guard(scope, db, appt, name);
  const now = new Date(nowMs);
  const [row] = await db
    .update(telehealthAppointments)
    .set({ status: spec.to, ...transitionColumns(name, now, p, reason), version: sql`${telehealthAppointments.version} + 1`, updatedAt: now })
    .where(and(eq(telehealthAppointments.tenantId, appt.tenantId), eq(telehealthAppointments.id, appt.id), inArray(telehealthAppointments.status, [...spec.from])))
    .returning();
  if (!row) throw invalidTransition((await loadAppointment(db, appt.tenantId, appt.id)).status, name);
  await recordChange(scope, db, { appointment: row, from: appt.status, action: name, event: spec.event, auditAction: 'update' });
  return row;
}

export const cancelAppointment = (scope: RequestScope, input: { appointmentId: unknown; reason: unknown }) =>
  transitionAppointment(scope, input.appointmentId, 'cancel', { reason: input.reason });

/** One appointment the caller may read. */
export async function getAppointment(scope: RequestScope, idArg: unknown): Promise<Appointment> {
  principalOf(scope, 'telehealth:appointment:read');
  return authorizeAppointment(scope, idArg, 'read');
}

export interface AppointmentFilter {
  providerId?: unknown;
  patientId?: unknown;
  /** instants: appointments starting in [from, to) */
  from?: unknown;
  to?: unknown;
  statuses?: readonly unknown[] | null;
  first?: number | null;
  /** cursor from a previous page */
  after?: string | null;
}

export interface AppointmentPage {
  items: Appointment[];
  endCursor: string | null;
  hasNextPage: boolean;
}

const cursorOf = (a: Appointment) => Buffer.from(`${a.startsAt.getTime()}:${a.id}`).toString('base64url');
function parseCursor(c: string): { at: number; id: string } {
  const m = /^(\d{1,15}):([0-9a-f-]{36})$/.exec(Buffer.from(c, 'base64url').toString('utf8'));
  if (!m) throw badInput('after is not a cursor of this list', 'after');
  return { at: Number(m[1]), id: m[2]! };
}

/**
 * Appointments the caller may read (the access scope as SQL: a patient sees
 * their own, staff the tenant's), filtered, ordered by start, keyset pages.
 */
export async function listAppointments(scope: RequestScope, f: AppointmentFilter): Promise<AppointmentPage> {
  const p = principalOf(scope, 'telehealth:appointment:read');
  const ap = asAccessPrincipal(p);
  const first = f.first ?? 50;
  if (!Number.isInteger(first) || first < 1 || first > 200) throw badInput('first must be 1 to 200', 'first');
  const conds: (SQL | undefined)[] = [eq(telehealthAppointments.tenantId, p.tenantId)];
  if (ap) conds.push(appointmentAccess.where(ap, 'read', sql`${telehealthAppointments.id}`));
  if (f.providerId !== undefined && f.providerId !== null) conds.push(eq(telehealthAppointments.providerId, uuidArg(f.providerId, 'providerId')));
  if (f.patientId !== undefined && f.patientId !== null) conds.push(eq(telehealthAppointments.patientId, uuidArg(f.patientId, 'patientId')));
  if (f.from !== undefined && f.from !== null) conds.push(gte(telehealthAppointments.startsAt, new Date(instantArg(f.from, 'from'))));
  if (f.to !== undefined && f.to !== null) conds.push(lt(telehealthAppointments.startsAt, new Date(instantArg(f.to, 'to'))));
  if (f.statuses?.length) {
    for (const s of f.statuses) if (!APPOINTMENT_STATUSES.includes(s as AppointmentStatus)) throw badInput('unknown status', 'statuses');
    conds.push(inArray(telehealthAppointments.status, f.statuses as AppointmentStatus[]));
  }
  if (f.after) {
    const c = parseCursor(f.after);
    conds.push(or(gt(telehealthAppointments.startsAt, new Date(c.at)), and(eq(telehealthAppointments.startsAt, new Date(c.at)), gt(telehealthAppointments.id, c.id))));
  }
  const db = await scope.db();
  const rows = await db
    .select()
    .from(telehealthAppointments)
    .where(and(...conds))
    .orderBy(asc(telehealthAppointments.startsAt), asc(telehealthAppointments.id))
    .limit(first + 1);
  const items = rows.slice(0, first);
  return { items, hasNextPage: rows.length > first, endCursor: items.length ? cursorOf(items[items.length - 1]!) : null };
}
