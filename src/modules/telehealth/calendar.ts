import { and, asc, eq, gte, lt, sql } from 'drizzle-orm';
import { badInput } from '../../platform/errors.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { asAccessPrincipal, principalOf, uuidArg } from './common.js';
import { appointmentAccess, MAX_SLOT_RANGE_DAYS } from './policy.js';
import { dateArg, listExceptions, loadSchedule, providerAvailability, requireProvider, startOfLocalDateAfter } from './schedules.js';
import { telehealthAppointments, type Appointment, type AvailabilityException } from './tables.js';
import { formatInZone, isTimeZone, localDateOf, startOfLocalDate } from './time.js';

/**
 * A provider's calendar between two local dates of the caller's zone: the
 * availability windows (weekly hours + extra hours - time off - holidays),
 * the exceptions, and the appointments the caller may read.
 */

const DAY = 24 * 3_600_000;

export interface ProviderCalendar {
  providerId: string;
  providerTimeZone: string;
  timeZone: string;
  windows: { start: number; end: number; timeZone: string; localStart: string; localEnd: string }[];
  exceptions: AvailabilityException[];
  appointments: Appointment[];
}

export async function providerCalendar(scope: RequestScope, input: { providerId: unknown; fromDate: unknown; toDate: unknown; timeZone?: unknown }): Promise<ProviderCalendar> {
  const p = principalOf(scope, 'telehealth:schedule:read');
  const providerId = uuidArg(input.providerId, 'providerId');
  const db = await scope.db();
  await requireProvider(db, p.tenantId, providerId);
  const schedule = await loadSchedule(db, p.tenantId, providerId);
  const fromDate = dateArg(input.fromDate, 'fromDate');
  const toDate = dateArg(input.toDate, 'toDate');
  if (input.timeZone !== undefined && input.timeZone !== null && !isTimeZone(input.timeZone)) throw badInput('timeZone must be an IANA time zone', 'timeZone');
  const tz = (input.timeZone as string | null | undefined) ?? schedule.timeZone;
  const from = startOfLocalDate(fromDate, tz);
  const until = startOfLocalDateAfter(toDate, tz);
  if (until <= from) throw badInput('toDate must not be before fromDate', 'toDate');
  if (until - from > MAX_SLOT_RANGE_DAYS * DAY) throw badInput(`at most ${MAX_SLOT_RANGE_DAYS} days at a time`, 'toDate');
  const { windows } = await providerAvailability(db, p.tenantId, providerId, from, until);
  const clipped = windows
    .map((w) => ({ start: Math.max(w.start, from), end: Math.min(w.end, until) }))
    .filter((w) => w.end > w.start)
    .map((w) => ({ ...w, timeZone: tz, localStart: formatInZone(w.start, tz), localEnd: formatInZone(w.end, tz) }));
  const exceptions = await listExceptions(db, p.tenantId, providerId, localDateOf(from, schedule.timeZone), localDateOf(until - 1, schedule.timeZone));
  let appointments: Appointment[] = [];
  const ap = asAccessPrincipal(p);
  if (p.permissions.has('telehealth:appointment:read')) {
    const a = telehealthAppointments;
    appointments = await db
      .select()
      .from(a)
      .where(and(eq(a.tenantId, p.tenantId), eq(a.providerId, providerId), gte(a.startsAt, new Date(from)), lt(a.startsAt, new Date(until)), ap ? appointmentAccess.where(ap, 'read', sql`${a.id}`) : undefined))
      .orderBy(asc(a.startsAt))
      .limit(1000);
  }
  return { providerId, providerTimeZone: schedule.timeZone, timeZone: tz, windows: clipped, exceptions, appointments };
}
