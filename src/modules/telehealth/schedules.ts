import { and, asc, between, eq, gt, inArray, isNull, lt, or, sql } from 'drizzle-orm';
import type { Db } from '../../platform/db/index.js';
import { badInput, conflict, forbidden, notFound } from '../../platform/errors.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { users } from '../identity/index.js';
import { instanceOf, inSavepoint, pgCode, principalOf, textArg, uuidArg } from './common.js';
import { LIVE_STATUSES, MAX_SLOT_RANGE_DAYS } from './policy.js';
import {
  EXCEPTION_KINDS,
  MODALITIES,
  telehealthAppointments,
  telehealthAvailabilityExceptions,
  telehealthProviderSchedules,
  telehealthVisitTypes,
  telehealthWeeklyHours,
  type AvailabilityException,
  type ExceptionKind,
  type Modality,
  type VisitType,
} from './tables.js';
import {
  availability,
  formatInZone,
  isLocalDate,
  isTimeZone,
  localDateOf,
  openSlots,
  parseLocalTime,
  startOfLocalDate,
  type DateException,
  type Interval,
  type WeeklyRule,
} from './time.js';

/**
 * Schedules: providers' weekly hours (in their IANA time zone), exceptions
 * and tenant holidays, visit types, and the open-slot query. Plain functions
 * (scope, input) -> result; every query filters by tenant and runs in the
 * scope's tenant transaction (RLS).
 */

const DAY = 24 * 60 * 60_000;

/** A local date argument: YYYY-MM-DD (a GraphQL Date literal arrives as a Date at UTC midnight). */
export function dateArg(v: unknown, field: string): string {
  const s = v instanceof Date && !Number.isNaN(v.getTime()) ? v.toISOString().slice(0, 10) : v;
  if (!isLocalDate(s)) throw badInput(`${field} must be YYYY-MM-DD`, field);
  return s;
}
const STAFF_SCHEDULERS = ['ADMIN', 'FRONT_DESK'];

// ------------------------------------------------------------------ providers

export interface ProviderRow {
  id: string;
  displayName: string;
}

/** An active user of the tenant with the PROVIDER role; NOT_FOUND otherwise (another tenant's user is simply not found). */
export async function requireProvider(db: Db, tenantId: string, providerId: string): Promise<ProviderRow> {
  const [row] = await db
    .select({ id: users.id, displayName: users.displayName })
    .from(users)
    .where(and(eq(users.tenantId, tenantId), eq(users.id, providerId), eq(users.status, 'active'), sql`'PROVIDER' = any(${users.roles})`));
  if (!row) throw notFound('Provider');
  return row;
}

/** Display names of providers by id (tenant-scoped), for GraphQL. */
export async function providerNames(db: Db, tenantId: string, ids: readonly string[]): Promise<Map<string, string>> {
  if (!ids.length) return new Map();
  const rows = await db.select({ id: users.id, displayName: users.displayName }).from(users).where(and(eq(users.tenantId, tenantId), inArray(users.id, [...ids])));
  return new Map(rows.map((r) => [r.id, r.displayName]));
}

/** A provider sets only their own hours unless they are also front desk or admin. */
function assertMaySchedule(scope: RequestScope, providerId: string): void {
  const p = principalOf(scope, 'telehealth:schedule:manage');
  if (p.roles.some((r) => STAFF_SCHEDULERS.includes(r))) return;
  if (p.kind === 'user' && p.id === providerId) return;
  throw forbidden('Not allowed for this provider');
}

export interface WeeklyHoursInput {
  weekday: number;
  startTime: string;
  endTime: string;
}

export interface ProviderScheduleView {
  providerId: string;
  timeZone: string;
  weeklyHours: { weekday: number; startTime: string; endTime: string }[];
}

const hhmm = (t: string) => t.slice(0, 5);

/** Replaces the provider's time zone and weekly hours (one transaction). */
export async function setProviderAvailability(scope: RequestScope, input: { providerId: unknown; timeZone: unknown; weeklyHours: readonly WeeklyHoursInput[] }): Promise<ProviderScheduleView> {
  const providerId = uuidArg(input.providerId, 'providerId');
  const p = principalOf(scope, 'telehealth:schedule:manage');
  const db = await scope.db();
  await requireProvider(db, p.tenantId, providerId); // another tenant's provider: NOT_FOUND before FORBIDDEN
  assertMaySchedule(scope, providerId);
  if (!isTimeZone(input.timeZone)) throw badInput('timeZone must be an IANA time zone such as America/New_York', 'timeZone');
  if (!Array.isArray(input.weeklyHours) || input.weeklyHours.length > 50) throw badInput('weeklyHours: at most 50 ranges', 'weeklyHours');
  const rules = input.weeklyHours.map((h, i) => {
    const field = `weeklyHours.${i}`;
    if (!Number.isInteger(h.weekday) || h.weekday < 1 || h.weekday > 7) throw badInput(`${field}.weekday must be 1 (Monday) to 7 (Sunday)`, `${field}.weekday`);
    const start = parseLocalTime(h.startTime);
    const end = parseLocalTime(h.endTime);
    if (!start || start === '24:00') throw badInput(`${field}.startTime must be HH:MM`, `${field}.startTime`);
    if (!end) throw badInput(`${field}.endTime must be HH:MM (24:00 for midnight)`, `${field}.endTime`);
    if (start >= end) throw badInput(`${field}: startTime must be before endTime`, field);
    return { weekday: h.weekday, startTime: start, endTime: end };
  });
  const timeZone = input.timeZone;
  await db
    .insert(telehealthProviderSchedules)
    .values({ tenantId: p.tenantId, providerId, timeZone, updatedBy: p.kind === 'user' ? p.id : null })
    .onConflictDoUpdate({ target: [telehealthProviderSchedules.tenantId, telehealthProviderSchedules.providerId], set: { timeZone, updatedBy: p.kind === 'user' ? p.id : null, updatedAt: new Date() } });
  await db.delete(telehealthWeeklyHours).where(and(eq(telehealthWeeklyHours.tenantId, p.tenantId), eq(telehealthWeeklyHours.providerId, providerId)));
  if (rules.length) await db.insert(telehealthWeeklyHours).values(rules.map((r) => ({ tenantId: p.tenantId, providerId, ...r })));
  return { providerId, timeZone, weeklyHours: rules.sort((a, b) => a.weekday - b.weekday || a.startTime.localeCompare(b.startTime)) };
}

/** The provider's time zone and weekly hours; NOT_FOUND when the provider has no schedule. */
export async function getProviderSchedule(scope: RequestScope, providerIdArg: unknown): Promise<ProviderScheduleView> {
  const providerId = uuidArg(providerIdArg, 'providerId');
  const p = principalOf(scope, 'telehealth:schedule:read');
  const db = await scope.db();
  const schedule = await loadSchedule(db, p.tenantId, providerId);
  return {
    providerId,
    timeZone: schedule.timeZone,
    weeklyHours: schedule.weekly.map((w) => ({ weekday: w.weekday, startTime: hhmm(w.startTime), endTime: hhmm(w.endTime) })),
  };
}

export async function loadSchedule(db: Db, tenantId: string, providerId: string): Promise<{ timeZone: string; weekly: WeeklyRule[] }> {
  const [schedule] = await db
    .select({ timeZone: telehealthProviderSchedules.timeZone })
    .from(telehealthProviderSchedules)
    .where(and(eq(telehealthProviderSchedules.tenantId, tenantId), eq(telehealthProviderSchedules.providerId, providerId)));
  if (!schedule) throw notFound('Provider schedule');
  const weekly = await db
    .select({ weekday: telehealthWeeklyHours.weekday, startTime: telehealthWeeklyHours.startTime, endTime: telehealthWeeklyHours.endTime })
    .from(telehealthWeeklyHours)
    .where(and(eq(telehealthWeeklyHours.tenantId, tenantId), eq(telehealthWeeklyHours.providerId, providerId)))
    .orderBy(asc(telehealthWeeklyHours.weekday), asc(telehealthWeeklyHours.startTime));
  return { timeZone: schedule.timeZone, weekly };
}

// ------------------------------------------------------------------ exceptions

export interface ExceptionInput {
  providerId?: unknown;
  date: unknown;
  kind: unknown;
  startTime?: unknown;
  endTime?: unknown;
  label?: unknown;
}

/** Adds time off / extra hours for a provider on one of their local dates, or (no provider) a tenant holiday. */
export async function addAvailabilityException(scope: RequestScope, input: ExceptionInput): Promise<AvailabilityException> {
  const providerId = input.providerId === undefined || input.providerId === null ? null : uuidArg(input.providerId, 'providerId');
  const p = principalOf(scope, 'telehealth:schedule:manage');
  if (!providerId && !p.permissions.has('telehealth:settings:manage')) throw forbidden('Tenant holidays are managed by administrators');
  const db = await scope.db();
  if (providerId) {
    await requireProvider(db, p.tenantId, providerId);
    assertMaySchedule(scope, providerId);
    await loadSchedule(db, p.tenantId, providerId);
  }
  const date = dateArg(input.date, 'date');
  if (!EXCEPTION_KINDS.includes(input.kind as ExceptionKind)) throw badInput('kind must be unavailable or available', 'kind');
  const kind = input.kind as ExceptionKind;
  const hasTimes = input.startTime !== undefined && input.startTime !== null;
  const start = hasTimes ? parseLocalTime(input.startTime) : null;
  const end = input.endTime !== undefined && input.endTime !== null ? parseLocalTime(input.endTime) : null;
  if (hasTimes && (!start || start === '24:00')) throw badInput('startTime must be HH:MM', 'startTime');
  if ((start === null) !== (end === null)) throw badInput('startTime and endTime go together', end === null ? 'endTime' : 'startTime');
  if (start && end && start >= end) throw badInput('startTime must be before endTime', 'startTime');
  if (kind === 'available' && (!start || !providerId)) throw badInput('extra hours need a provider, a startTime and an endTime', start ? 'providerId' : 'startTime');
  const label = textArg(input.label, 'label', { max: 120, optional: true });
  const [row] = await db
    .insert(telehealthAvailabilityExceptions)
    .values({ tenantId: p.tenantId, providerId, date, kind, startTime: start, endTime: end, label, createdBy: p.kind === 'user' ? p.id : null })
    .returning();
  return row!;
}

export async function removeAvailabilityException(scope: RequestScope, idArg: unknown): Promise<boolean> {
  const id = uuidArg(idArg, 'id');
  const p = principalOf(scope, 'telehealth:schedule:manage');
  const db = await scope.db();
  const [row] = await db
    .select()
    .from(telehealthAvailabilityExceptions)
    .where(and(eq(telehealthAvailabilityExceptions.tenantId, p.tenantId), eq(telehealthAvailabilityExceptions.id, id)));
  if (!row) throw notFound('Availability exception');
  if (row.providerId) assertMaySchedule(scope, row.providerId);
  else if (!p.permissions.has('telehealth:settings:manage')) throw forbidden('Tenant holidays are managed by administrators');
  await db.delete(telehealthAvailabilityExceptions).where(and(eq(telehealthAvailabilityExceptions.tenantId, p.tenantId), eq(telehealthAvailabilityExceptions.id, id)));
  return true;
}

/** Exceptions of a provider (and the tenant's holidays) on local dates from..to (inclusive). */
export async function listExceptions(db: Db, tenantId: string, providerId: string | null, fromDate: string, toDate: string): Promise<AvailabilityException[]> {
  return db
    .select()
    .from(telehealthAvailabilityExceptions)
    .where(
      and(
        eq(telehealthAvailabilityExceptions.tenantId, tenantId),
        providerId ? or(eq(telehealthAvailabilityExceptions.providerId, providerId), isNull(telehealthAvailabilityExceptions.providerId)) : isNull(telehealthAvailabilityExceptions.providerId),
        between(telehealthAvailabilityExceptions.date, fromDate, toDate),
      ),
    )
    .orderBy(asc(telehealthAvailabilityExceptions.date), asc(telehealthAvailabilityExceptions.startTime));
}

export async function availabilityExceptions(scope: RequestScope, input: { providerId?: unknown; fromDate: unknown; toDate: unknown }): Promise<AvailabilityException[]> {
  const p = principalOf(scope, 'telehealth:schedule:read');
  const providerId = input.providerId === undefined || input.providerId === null ? null : uuidArg(input.providerId, 'providerId');
  const fromDate = dateArg(input.fromDate, 'fromDate');
  const toDate = dateArg(input.toDate, 'toDate');
  if (toDate < fromDate) throw badInput('toDate must not be before fromDate', 'toDate');
  const db = await scope.db();
  // a filter naming no provider of the tenant finds nothing (not even the holidays)
  if (providerId && !(await db.select({ id: users.id }).from(users).where(and(eq(users.tenantId, p.tenantId), eq(users.id, providerId)))).length) return [];
  return listExceptions(db, p.tenantId, providerId, fromDate, toDate);
}

// ------------------------------------------------------------------ visit types

export interface VisitTypeInput {
  code: unknown;
  name: unknown;
  durationMinutes: unknown;
  modality: unknown;
  bufferMinutes?: unknown;
}

function minutesArg(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw badInput(`${field} must be a whole number of minutes from ${min} to ${max}`, field);
  return v;
}

export async function createVisitType(scope: RequestScope, input: VisitTypeInput): Promise<VisitType> {
  const p = principalOf(scope, 'telehealth:settings:manage');
  if (typeof input.code !== 'string' || !/^[a-z0-9][a-z0-9-]{1,62}$/.test(input.code)) throw badInput('code must be 2-63 of a-z 0-9 -', 'code');
  const name = textArg(input.name, 'name', { max: 120 })!;
  const durationMinutes = minutesArg(input.durationMinutes, 'durationMinutes', 5, 480);
  const bufferMinutes = input.bufferMinutes === undefined || input.bufferMinutes === null ? 0 : minutesArg(input.bufferMinutes, 'bufferMinutes', 0, 240);
  if (!MODALITIES.includes(input.modality as Modality)) throw badInput('modality must be video or in_person', 'modality');
  const db = await scope.db();
  try {
    const [row] = await inSavepoint(db, () =>
      db.insert(telehealthVisitTypes).values({ tenantId: p.tenantId, code: input.code as string, name, durationMinutes, bufferMinutes, modality: input.modality as Modality }).returning(),
    );
    return row!;
  } catch (e) {
    if (pgCode(e) === '23505') throw conflict('A visit type with this code exists');
    throw e;
  }
}

export async function updateVisitType(scope: RequestScope, idArg: unknown, input: { name?: unknown; durationMinutes?: unknown; bufferMinutes?: unknown; active?: unknown }): Promise<VisitType> {
  const id = uuidArg(idArg, 'id');
  const p = principalOf(scope, 'telehealth:settings:manage');
  const db = await scope.db();
  const [current] = await db.select({ id: telehealthVisitTypes.id }).from(telehealthVisitTypes).where(and(eq(telehealthVisitTypes.tenantId, p.tenantId), eq(telehealthVisitTypes.id, id)));
  if (!current) throw notFound('Visit type');
  const set: Partial<typeof telehealthVisitTypes.$inferInsert> = { updatedAt: new Date() };
  if (input.name !== undefined && input.name !== null) set.name = textArg(input.name, 'name', { max: 120 })!;
  if (input.durationMinutes !== undefined && input.durationMinutes !== null) set.durationMinutes = minutesArg(input.durationMinutes, 'durationMinutes', 5, 480);
  if (input.bufferMinutes !== undefined && input.bufferMinutes !== null) set.bufferMinutes = minutesArg(input.bufferMinutes, 'bufferMinutes', 0, 240);
  if (input.active !== undefined && input.active !== null) {
    if (typeof input.active !== 'boolean') throw badInput('active must be a boolean', 'active');
    set.active = input.active;
  }
  const [row] = await db.update(telehealthVisitTypes).set(set).where(and(eq(telehealthVisitTypes.tenantId, p.tenantId), eq(telehealthVisitTypes.id, id))).returning();
  if (!row) throw notFound('Visit type');
  return row;
}

export async function listVisitTypes(scope: RequestScope, opts: { includeInactive?: boolean | null } = {}): Promise<VisitType[]> {
  const p = principalOf(scope, 'telehealth:schedule:read');
  const db = await scope.db();
  return db
    .select()
    .from(telehealthVisitTypes)
    .where(and(eq(telehealthVisitTypes.tenantId, p.tenantId), opts.includeInactive ? undefined : eq(telehealthVisitTypes.active, true)))
    .orderBy(asc(telehealthVisitTypes.name));
}

/** An active visit type of the tenant; NOT_FOUND otherwise (unknown, another tenant's, or retired). */
export async function requireVisitType(db: Db, tenantId: string, visitTypeId: string): Promise<VisitType> {
  const [row] = await db
    .select()
    .from(telehealthVisitTypes)
    .where(and(eq(telehealthVisitTypes.tenantId, tenantId), eq(telehealthVisitTypes.id, visitTypeId), eq(telehealthVisitTypes.active, true)));
  if (!row) throw notFound('Visit type');
  return row;
}

// ------------------------------------------------------------------ availability and open slots

/** The provider's available intervals over [from, to) (instants): weekly hours + extra hours - time off - holidays. */
export async function providerAvailability(db: Db, tenantId: string, providerId: string, from: number, to: number): Promise<{ timeZone: string; windows: Interval[] }> {
  const schedule = await loadSchedule(db, tenantId, providerId);
  const tz = schedule.timeZone;
  const fromDate = localDateOf(from - DAY, tz);
  const toDate = localDateOf(to + DAY, tz);
  const exceptions: DateException[] = (await listExceptions(db, tenantId, providerId, fromDate, toDate)).map((e) => ({ date: e.date, kind: e.kind, startTime: e.startTime, endTime: e.endTime }));
  return { timeZone: tz, windows: availability(from, to, tz, schedule.weekly, exceptions) };
}

/** [starts_at, blocked_until) of the provider's appointments that still take their time, overlapping [from, to). */
export async function busyIntervals(db: Db, tenantId: string, providerId: string, from: number, to: number, exceptAppointmentId?: string): Promise<Interval[]> {
  const rows = await db
    .select({ id: telehealthAppointments.id, startsAt: telehealthAppointments.startsAt, blockedUntil: telehealthAppointments.blockedUntil })
    .from(telehealthAppointments)
    .where(
      and(
        eq(telehealthAppointments.tenantId, tenantId),
        eq(telehealthAppointments.providerId, providerId),
        inArray(telehealthAppointments.status, [...LIVE_STATUSES]),
        lt(telehealthAppointments.startsAt, new Date(to)),
        gt(telehealthAppointments.blockedUntil, new Date(from)),
      ),
    );
  return rows.filter((r) => r.id !== exceptAppointmentId).map((r) => ({ start: r.startsAt.getTime(), end: r.blockedUntil.getTime() }));
}

export interface OpenSlot {
  providerId: string;
  visitTypeId: string;
  /** instants (epoch ms) */
  start: number;
  end: number;
  /** the zone the slot is shown in (the caller's) */
  timeZone: string;
  /** ISO 8601 with that zone's offset at the instant */
  localStart: string;
  localEnd: string;
  /** local date in that zone */
  localDate: string;
}

export interface OpenSlotsInput {
  providerId: unknown;
  visitTypeId: unknown;
  /** first and last local date (inclusive) in `timeZone` */
  fromDate: unknown;
  toDate: unknown;
  /** the caller's IANA zone (default: the provider's) */
  timeZone?: unknown;
}

/**
 * Open slots of a provider for a visit type between two local dates of the
 * caller's time zone: the provider's availability (in their zone) minus the
 * time taken by appointments, on a grid of duration + buffer, not in the past.
 */
export async function findOpenSlots(scope: RequestScope, input: OpenSlotsInput): Promise<OpenSlot[]> {
  const p = principalOf(scope, 'telehealth:schedule:read');
  const providerId = uuidArg(input.providerId, 'providerId');
  const visitTypeId = uuidArg(input.visitTypeId, 'visitTypeId');
  const db = await scope.db();
  await requireProvider(db, p.tenantId, providerId);
  const visitType = await requireVisitType(db, p.tenantId, visitTypeId);
  const schedule = await loadSchedule(db, p.tenantId, providerId);
  const fromDate = dateArg(input.fromDate, 'fromDate');
  const toDate = dateArg(input.toDate, 'toDate');
  if (input.timeZone !== undefined && input.timeZone !== null && !isTimeZone(input.timeZone)) throw badInput('timeZone must be an IANA time zone such as Europe/Berlin', 'timeZone');
  const tz = (input.timeZone as string | null | undefined) ?? schedule.timeZone;
  const from = startOfLocalDate(fromDate, tz);
  const until = startOfLocalDateAfter(toDate, tz);
  if (until <= from) throw badInput('toDate must not be before fromDate', 'toDate');
  if (until - from > MAX_SLOT_RANGE_DAYS * DAY) throw badInput(`at most ${MAX_SLOT_RANGE_DAYS} days at a time`, 'toDate');
  const { windows } = await providerAvailability(db, p.tenantId, providerId, from, until);
  const busy = await busyIntervals(db, p.tenantId, providerId, from - DAY, until + DAY);
  const slots = openSlots({
    windows,
    busy,
    durationMinutes: visitType.durationMinutes,
    bufferMinutes: visitType.bufferMinutes,
    from,
    to: until,
    notBefore: instanceOf(scope).now() + 1, // a slot starting now is already in the past
  });
  return slots.map((s) => ({
    providerId,
    visitTypeId,
    start: s.start,
    end: s.end,
    timeZone: tz,
    localStart: formatInZone(s.start, tz),
    localEnd: formatInZone(s.end, tz),
    localDate: localDateOf(s.start, tz),
  }));
}

export function startOfLocalDateAfter(date: string, tz: string): number {
  const next = new Date(`${date}T00:00:00Z`);
  next.setUTCDate(next.getUTCDate() + 1);
  return startOfLocalDate(next.toISOString().slice(0, 10), tz);
}
