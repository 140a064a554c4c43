import { and, eq, inArray, isNull, sql } from 'drizzle-orm';
import { emitEvent, enqueueForTenants, type JobDefinition } from '../../platform/jobs/index.js';
import type { Logger } from '../../platform/logger.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { appointmentRooms, transitionAppointment } from './appointments.js';
import { instanceOf, TELEHEALTH, type TelehealthInstance } from './common.js';
import { telehealthAppointments, telehealthReminders, telehealthVideoRooms } from './tables.js';

export const SWEEP_JOB = 'telehealth.sweep';
export const ADVANCE_JOB = 'telehealth.advance';
const MINUTE = 60_000;

/** One reminder to deliver: ids and the start only (no PHI). */
export interface Reminder {
  tenantId: string;
  appointmentId: string;
  patientId: string;
  startsAt: Date;
  offsetMinutes: number;
}

/**
 * Delivers appointment reminders. The built-in one writes a log line (ids only) and the realtime notice goes to the
 * visit's room through the outbox; e-mail and SMS adapters implement the same interface. Returns the channel name.
 */
export interface ReminderNotifier {
  /** the channel recorded with each reminder (log, email, sms...) */
  readonly channel: string;
  /** delivers it; a failure rolls the reminder back and the job retries it */
  send(reminder: Reminder): Promise<void>;
}

export function logNotifier(log: Logger): ReminderNotifier {
  return {
    channel: 'log',
    async send(r) {
      log.info({ appointmentId: r.appointmentId, offsetMinutes: r.offsetMinutes }, 'telehealth: appointment reminder');
    },
  };
}

/**
 * The telehealth schedule (a BullMQ job scheduler: one run per minute whatever the number of processes): asks the
 * definer telehealth_due_tenants for tenants with a reminder due, a visit past the no-show grace, or a finished visit's
 * video room still open, at the module's clock, and queues one telehealth.advance job per tenant.
 */
export const sweepSchedule: JobDefinition = {
  every: MINUTE, // JOB_SCHEDULE_INTERVALS=telehealth.sweep=<ms> overrides it
  attempts: 3,
  backoffMs: 5_000,
  handler: async (_payload, ctx) => {
    const inst = ctx.scope.module<TelehealthInstance>(TELEHEALTH);
    const now = new Date(inst.now());
    const noShowBefore = new Date(now.getTime() - inst.jobs.noShowGraceMinutes * MINUTE);
    const offsets = `{${inst.jobs.reminderOffsetsMinutes.join(',')}}`;
    const due = await ctx.database.sql<{ tenant_id: string }[]>`select tenant_id from telehealth_due_tenants(${now}, ${offsets}::int[], ${noShowBefore}, 1000)`;
    await enqueueForTenants(ctx.database.sql, due.map((d) => d.tenant_id), ADVANCE_JOB);
    if (due.length) ctx.log.info({ tenants: due.length }, 'telehealth: sweep');
  },
};

/** One tenant's due work, as system:telehealth.advance: reminders, no-shows, room cleanup. */
export const advanceJob: JobDefinition = {
  attempts: 5,
  backoffMs: 2_000,
  concurrency: 4,
  handler: async (_payload, ctx) => {
    const sent = await sendReminders(ctx.scope);
    const noShows = await markNoShows(ctx.scope);
    const closed = await closeFinishedRooms(ctx.scope, ctx.log);
    if (sent || noShows || closed) ctx.log.info({ reminders: sent, noShows, roomsClosed: closed }, 'telehealth: advance');
  },
};

/** Each reminder offset whose time has come for a scheduled visit, once (the reminder row is the once). */
export async function sendReminders(scope: RequestScope): Promise<number> {
  const inst = instanceOf(scope);
  const db = await scope.db();
  const now = new Date(inst.now());
  const horizon = new Date(now.getTime() + Math.max(...inst.jobs.reminderOffsetsMinutes) * MINUTE);
  const upcoming = await db
    .select()
    .from(telehealthAppointments)
    .where(and(eq(telehealthAppointments.status, 'scheduled'), sql`${telehealthAppointments.startsAt} > ${now}`, sql`${telehealthAppointments.startsAt} <= ${horizon}`));
  let sent = 0;
  for (const a of upcoming) {
    // the nearest offset that has come (offsets are largest first): a visit booked 30 minutes ahead gets the 1 h
    // reminder only; one booked 3 hours ahead gets the 24 h one at once, then the 1 h one
    const offset = inst.jobs.reminderOffsetsMinutes.filter((o) => a.startsAt.getTime() - o * MINUTE <= now.getTime()).at(-1);
    if (offset === undefined) continue;
    // the row is the once: a second sweep, process or retry finds it (a delivery that fails rolls it back: retried)
    const [row] = await db
      .insert(telehealthReminders)
      .values({ tenantId: a.tenantId, appointmentId: a.id, offsetMinutes: offset, channel: inst.notifier.channel })
      .onConflictDoNothing()
      .returning();
    if (!row) continue;
    // earlier offsets not sent are passed over (recorded, so the sweep stops asking)
    for (const earlier of inst.jobs.reminderOffsetsMinutes.filter((o) => o > offset)) {
      await db.insert(telehealthReminders).values({ tenantId: a.tenantId, appointmentId: a.id, offsetMinutes: earlier, channel: 'skipped' }).onConflictDoNothing();
    }
    await inst.notifier.send({ tenantId: a.tenantId, appointmentId: a.id, patientId: a.patientId, startsAt: a.startsAt, offsetMinutes: offset });
    await emitEvent(db, {
      type: 'appointment.reminder',
      tenantId: a.tenantId,
      aggregateId: a.id,
      payload: { appointmentId: a.id, providerId: a.providerId, patientId: a.patientId, startsAt: a.startsAt.getTime(), offsetMinutes: offset },
      rooms: appointmentRooms(a),
    });
    sent++;
  }
  return sent;
}

/** Visits not started within the grace after their start: no_show (the state machine's own step: history, outbox, audit). */
export async function markNoShows(scope: RequestScope): Promise<number> {
  const inst = instanceOf(scope);
  const db = await scope.db();
  const before = new Date(inst.now() - inst.jobs.noShowGraceMinutes * MINUTE);
  const overdue = await db
    .select({ id: telehealthAppointments.id })
    .from(telehealthAppointments)
    .where(and(inArray(telehealthAppointments.status, ['scheduled', 'checked_in', 'waiting']), sql`${telehealthAppointments.startsAt} <= ${before}`))
    .limit(500);
  for (const { id } of overdue) await transitionAppointment(scope, id, 'no_show');
  return overdue.length;
}

/** Video rooms of visits that reached a final status: closed at the provider (a room already gone counts as closed). */
export async function closeFinishedRooms(scope: RequestScope, log: Logger): Promise<number> {
  const inst = instanceOf(scope);
  const db = await scope.db();
  const open = await db
    .select({ tenantId: telehealthVideoRooms.tenantId, appointmentId: telehealthVideoRooms.appointmentId, roomName: telehealthVideoRooms.roomName })
    .from(telehealthVideoRooms)
    .innerJoin(telehealthAppointments, and(eq(telehealthAppointments.tenantId, telehealthVideoRooms.tenantId), eq(telehealthAppointments.id, telehealthVideoRooms.appointmentId)))
    .where(and(isNull(telehealthVideoRooms.closedAt), inArray(telehealthAppointments.status, ['completed', 'cancelled', 'no_show'])))
    .limit(200);
  for (const r of open) {
    await inst.video.closeRoom(r.roomName);
    await db
      .update(telehealthVideoRooms)
      .set({ closedAt: new Date(inst.now()) })
      .where(and(eq(telehealthVideoRooms.tenantId, r.tenantId), eq(telehealthVideoRooms.appointmentId, r.appointmentId)));
    log.info({ appointmentId: r.appointmentId }, 'telehealth: video room closed');
  }
  return open.length;
}
