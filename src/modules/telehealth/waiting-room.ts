import { and, asc, eq, gte, inArray, lt, sql } from 'drizzle-orm';
import type { AccessPrincipal } from '../../platform/access/index.js';
import type { Db } from '../../platform/db/index.js';
import { badInput } from '../../platform/errors.js';
import { emitEvent } from '../../platform/jobs/index.js';
import type { RoomType } from '../../platform/realtime/types.js';
import type { RequestScope } from '../../platform/scope/index.js';
import type { SocketHandler } from '../../schema/index.js';
import { appointmentRooms, authorizeAppointment } from './appointments.js';
import { asAccessPrincipal, instanceOf, invalidTransition, isUuid, principalOf, uuidArg } from './common.js';
import { appointmentAccess } from './policy.js';
import { requireProvider } from './schedules.js';
import { telehealthAppointments, type Appointment, type AppointmentStatus } from './tables.js';
import { visitTransition } from './visits.js';

/**
 * The virtual waiting room: a provider's queue (checked-in and waiting
 * patients, ordered, with their wait times), "provider running late"
 * notices, and the socket.io side: room types `visit:<appointmentId>` (the
 * patient of the visit, staff of the tenant) and `waitingRoom:<providerId>`
 * (staff holding telehealth:queue:read), and socket events that call the
 * same services as GraphQL. Every change reaches the rooms through the
 * outbox (events `appointment.*`, ids only).
 */

const HOUR = 3_600_000;
const QUEUE_STATUSES: AppointmentStatus[] = ['waiting', 'checked_in', 'in_progress'];

export interface QueueEntry {
  appointment: Appointment;
  /** 1-based place among those waiting (null for checked in / in progress) */
  position: number | null;
  /** seconds since entering the waiting room (since check-in when not yet waiting) */
  waitedSeconds: number;
}

/**
 * The provider's queue: waiting patients in the order they entered the
 * waiting room, then those checked in but not yet waiting, then the visit in
 * progress. Filtered by the appointment access scope in SQL.
 */
export async function providerQueue(scope: RequestScope, providerIdArg: unknown): Promise<QueueEntry[]> {
  const p = principalOf(scope, 'telehealth:queue:read');
  const providerId = uuidArg(providerIdArg, 'providerId');
  const db = await scope.db();
  await requireProvider(db, p.tenantId, providerId);
  const ap = asAccessPrincipal(p);
  const now = instanceOf(scope).now();
  const a = telehealthAppointments;
  const rows = await db
    .select()
    .from(a)
    .where(
      and(
        eq(a.tenantId, p.tenantId),
        eq(a.providerId, providerId),
        inArray(a.status, QUEUE_STATUSES),
        ap ? appointmentAccess.where(ap, 'read', sql`${a.id}`) : undefined,
      ),
    )
    .orderBy(
      sql`case ${a.status} when 'waiting' then 0 when 'checked_in' then 1 else 2 end`,
      asc(sql`coalesce(${a.waitingSince}, ${a.checkedInAt}, ${a.startsAt})`),
      asc(a.startsAt),
      asc(a.id),
    )
    .limit(200);
  let position = 0;
  const entries = rows.map((appointment) => {
    const since = appointment.waitingSince ?? appointment.checkedInAt;
    return {
      appointment,
      position: appointment.status === 'waiting' ? ++position : null,
      waitedSeconds: since ? Math.max(0, Math.floor((now - since.getTime()) / 1000)) : 0,
    };
  });
  if (entries.length) {
    scope.recordPhiAccess({
      patientIds: [...new Set(entries.map((e) => e.appointment.patientId))],
      resourceType: 'Appointment',
      resourceId: null,
      fields: ['Appointment.status', 'Appointment.waitingSince'],
      action: 'read',
      outcome: 'allowed',
      detail: { queueOf: providerId, entries: entries.length },
    });
  }
  return entries;
}

/**
 * "Provider running late": the expected delay, posted to one visit or to
 * every visit of the provider still to come in the next 12 hours (those the
 * caller may conduct). Each affected visit gets `appointment.providerLate`.
 */
export async function postRunningLate(scope: RequestScope, input: { providerId: unknown; minutes: unknown; appointmentId?: unknown }): Promise<Appointment[]> {
  const p = principalOf(scope, 'telehealth:visit:conduct');
  const providerId = uuidArg(input.providerId, 'providerId');
  const db = await scope.db();
  await requireProvider(db, p.tenantId, providerId);
  let only: Appointment | undefined;
  if (input.appointmentId !== undefined && input.appointmentId !== null) {
    only = await authorizeAppointment(scope, input.appointmentId, 'conduct');
    if (only.providerId !== providerId) throw badInput('the appointment is not one of this provider', 'appointmentId');
  }
  if (typeof input.minutes !== 'number' || !Number.isInteger(input.minutes) || input.minutes < 0 || input.minutes > 240) {
    throw badInput('minutes must be 0 (on time again) to 240', 'minutes');
  }
  const minutes = input.minutes;
  const nowMs = instanceOf(scope).now();
  const ap = asAccessPrincipal(p);
  const a = telehealthAppointments;
  const rows = await db
    .update(a)
    .set({ lateByMinutes: minutes === 0 ? null : minutes, lateNoticeAt: new Date(nowMs), version: sql`${a.version} + 1`, updatedAt: new Date(nowMs) })
    .where(
      and(
        eq(a.tenantId, p.tenantId),
        eq(a.providerId, providerId),
        inArray(a.status, ['scheduled', 'checked_in', 'waiting']),
        only ? eq(a.id, only.id) : and(gte(a.endsAt, new Date(nowMs)), lt(a.startsAt, new Date(nowMs + 12 * HOUR))),
        ap ? appointmentAccess.where(ap, 'conduct', sql`${a.id}`) : undefined,
      ),
    )
    .returning();
  for (const appt of rows) {
    await emitEvent(db, {
      type: 'appointment.providerLate',
      tenantId: appt.tenantId,
      aggregateId: appt.id,
      payload: { appointmentId: appt.id, providerId, lateByMinutes: minutes, version: appt.version },
      rooms: appointmentRooms(appt),
    });
  }
  if (rows.length) {
    scope.recordPhiAccess({ patientIds: [...new Set(rows.map((r) => r.patientId))], resourceType: 'Appointment', resourceId: only?.id ?? null, fields: ['Appointment.lateByMinutes'], action: 'update', outcome: 'allowed', detail: { lateByMinutes: minutes, appointments: rows.length } });
  }
  return rows;
}

// ------------------------------------------------------------------ socket.io

/** `visit:<appointmentId>`: the patient of the visit (their own only), staff of the tenant, the provider. */
export const visitRoom: RoomType = {
  permission: 'telehealth:appointment:read',
  check: async (principal, id, db) => {
    if (!isUuid(id)) return false;
    // the appointment must exist in the caller's tenant (a tenant-wide rule allows without looking), then the access rules
    const a = telehealthAppointments;
    const [row] = await db.select({ id: a.id }).from(a).where(and(eq(a.tenantId, principal.tenantId), eq(a.id, id.toLowerCase())));
    return !!row && (await appointmentAccess.check(principal as AccessPrincipal, row.id, 'read', db)).allowed;
  },
};

/** `waitingRoom:<providerId>`: staff with telehealth:queue:read, for a provider of their tenant. */
export const waitingRoomRoom: RoomType = {
  permission: 'telehealth:queue:read',
  check: async (principal, id, db) => {
    if (!isUuid(id)) return false;
    try {
      await requireProvider(db as Db, principal.tenantId, id.toLowerCase());
      return true;
    } catch {
      return false;
    }
  },
};

/** The running-late notice for one visit (its state must still be before the visit). */
export async function postVisitRunningLate(scope: RequestScope, input: { appointmentId: unknown; minutes: unknown }): Promise<Appointment> {
  const appt = await authorizeAppointment(scope, input.appointmentId, 'conduct');
  const rows = await postRunningLate(scope, { providerId: appt.providerId, minutes: input.minutes, appointmentId: appt.id });
  if (!rows[0]) throw invalidTransition(appt.status, 'running_late');
  return rows[0];
}

/** The ack of a socket event that changed an appointment: ids, the new state and version (no PHI beyond ids). */
export const appointmentAck = (a: Appointment) => ({ appointmentId: a.id, status: a.status, version: a.version, lateByMinutes: a.lateByMinutes });

const field = (payload: unknown, key: string): unknown => (payload && typeof payload === 'object' ? (payload as Record<string, unknown>)[key] : undefined);

export const waitingRoomHandlers: SocketHandler[] = [
  {
    event: 'telehealth:checkIn',
    permission: 'telehealth:visit:checkin',
    handle: async (_s, payload, ctx) => appointmentAck(await visitTransition(ctx.scope, field(payload, 'appointmentId'), 'check_in')),
  },
  {
    event: 'telehealth:enterWaitingRoom',
    permission: 'telehealth:visit:checkin',
    handle: async (_s, payload, ctx) => appointmentAck(await visitTransition(ctx.scope, field(payload, 'appointmentId'), 'wait')),
  },
  {
    event: 'telehealth:admit',
    permission: 'telehealth:visit:conduct',
    handle: async (_s, payload, ctx) => appointmentAck(await visitTransition(ctx.scope, field(payload, 'appointmentId'), 'admit')),
  },
  {
    event: 'telehealth:queue',
    permission: 'telehealth:queue:read',
    handle: async (_s, payload, ctx) => {
      const entries = await providerQueue(ctx.scope, field(payload, 'providerId'));
      return {
        entries: entries.map((e) => ({
          appointmentId: e.appointment.id,
          patientId: e.appointment.patientId,
          status: e.appointment.status,
          position: e.position,
          waitedSeconds: e.waitedSeconds,
          startsAt: e.appointment.startsAt.toISOString(),
          lateByMinutes: e.appointment.lateByMinutes,
        })),
      };
    },
  },
  {
    event: 'telehealth:runningLate',
    permission: 'telehealth:visit:conduct',
    handle: async (_s, payload, ctx) => {
      const rows = await postRunningLate(ctx.scope, { providerId: field(payload, 'providerId'), minutes: field(payload, 'minutes'), appointmentId: field(payload, 'appointmentId') });
      return { appointmentIds: rows.map((r) => r.id) };
    },
  },
];
