import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reminder, ReminderNotifier } from '../../../src/modules/telehealth/index.js';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { connect, next, request, until } from '../../helpers/realtime.js';
import { BOOK, consentAll, createClinic, FakeClock, ok, publishConsent, telehealthModules, telehealthTestEnv, type AppointmentView, type Clinic } from './helpers.js';

/**
 * Reminders, no-shows and room cleanup on the module's fake clock, through the real schedule (telehealth.sweep on a
 * BullMQ job scheduler every 250 ms here) and the per-tenant telehealth.advance jobs: each reminder offset is sent
 * once (24 h and 1 h by default; a visit booked inside the 24 h gets only the 1 h one), a visit not started 15 minutes
 * after its start becomes no_show (history, outbox, audit like any transition), and the video room of a finished visit
 * is closed at the provider.
 */
const clock = new FakeClock(Date.parse('2030-01-07T08:00:00Z'));
const sent: Reminder[] = [];
const notifier: ReminderNotifier = {
  channel: 'test',
  async send(r) {
    sent.push(r);
  },
};
let t: TestApp;
let c: Clinic;

beforeAll(async () => {
  t = await startTestApp({ modules: telehealthModules({ now: clock.now, notifier }), env: { ...telehealthTestEnv, JOB_WORKERS: 'inline', JOB_SCHEDULE_INTERVALS: 'telehealth.sweep=250' } });
  c = await createClinic(t);
  await publishConsent(c);
  await consentAll(c);
}, 180_000);
afterAll(async () => {
  await t?.close();
});

const book = async (startsAt: string) =>
  ok(await c.as.frontDesk<{ bookAppointment: AppointmentView }>(BOOK, { i: { patientId: c.patientId, providerId: c.provider.user.id, visitTypeId: c.visitTypeId, startsAt } })).bookAppointment;
const statusOf = async (id: string) => (await t.db.owner<{ status: string }[]>`select status from telehealth_appointments where id = ${id}`)[0]!.status;
const settle = () => new Promise((r) => setTimeout(r, 800)); // several schedule runs at this clock (not a timing assertion)
const sentFor = (id: string) => sent.filter((r) => r.appointmentId === id).map((r) => r.offsetMinutes);

describe('telehealth jobs on the fake clock', () => {
  let tomorrow: AppointmentView;
  let soon: AppointmentView;

  it('sends each reminder once: the nearest offset that has come (24 h, then 1 h); skipped offsets are recorded', async () => {
    tomorrow = await book('2030-01-08T10:00:00Z');
    soon = await book('2030-01-07T10:30:00Z');
    // 08:00: the visit 2.5 h ahead is inside its 24 h reminder; tomorrow's is not
    await until(() => sentFor(soon.id).length > 0);
    await settle();
    expect(sentFor(soon.id)).toEqual([1440]);
    expect(sentFor(tomorrow.id)).toEqual([]);

    const socket = await connect(t.url, c.patientUser.token);
    try {
      expect((await request(socket, 'room:join', { room: `visit:${tomorrow.id}` })).ok).toBe(true);
      const heard = next<{ type: string; payload: Record<string, unknown> }>(socket, 'event', 15_000, (e) => e.type === 'appointment.reminder');
      clock.set('2030-01-07T10:01:00Z');
      await until(() => sentFor(tomorrow.id).length > 0 && sentFor(soon.id).length > 1);
      const ev = await heard;
      expect(ev.payload).toMatchObject({ appointmentId: tomorrow.id, offsetMinutes: 1440 });
      expect(Object.keys(ev.payload).sort()).toEqual(['appointmentId', 'offsetMinutes', 'patientId', 'providerId', 'startsAt']); // ids and times only
    } finally {
      socket.close();
    }
    await settle();
    expect(sentFor(tomorrow.id)).toEqual([1440]);
    expect(sentFor(soon.id)).toEqual([1440, 60]);
    const rows = await t.db.owner<{ offset_minutes: number; channel: string }[]>`select offset_minutes, channel from telehealth_reminders where appointment_id = ${soon.id} order by offset_minutes`;
    expect(rows).toEqual([
      { offset_minutes: 60, channel: 'test' },
      { offset_minutes: 1440, channel: 'test' },
    ]);
  });

  it('marks a visit not started 15 minutes after its start as no_show, and closes its video room', async () => {
    // the provider had opened the visit's room (as joinVisit does)
    await t.db.owner`insert into telehealth_video_rooms (tenant_id, appointment_id, room_name, provider) values (${c.tenant.id}, ${soon.id}, ${`visit_${soon.id}`}, 'development')`;
    clock.set('2030-01-07T10:44:00Z'); // 14 minutes after the start: still within the grace
    await settle();
    expect(await statusOf(soon.id)).toBe('scheduled');
    clock.set('2030-01-07T10:46:00Z');
    await until(async () => (await statusOf(soon.id)) === 'no_show');
    const [history] = await t.db.owner<{ action: string; actor: string; to_status: string }[]>`select action, actor, to_status from telehealth_appointment_transitions where appointment_id = ${soon.id} order by at desc limit 1`;
    expect(history).toMatchObject({ action: 'no_show', to_status: 'no_show' });
    expect(history!.actor).toMatch(/^system:/);
    expect(await t.db.owner`select 1 from outbox where aggregate_id = ${soon.id} and type = 'appointment.noShow'`).toHaveLength(1);
    await until(async () => (await t.db.owner<{ closed: boolean }[]>`select closed_at is not null as closed from telehealth_video_rooms where appointment_id = ${soon.id}`)[0]!.closed);
    expect(await statusOf(tomorrow.id)).toBe('scheduled');
  });

  it('sends the 1 h reminder of the next day’s visit, once; a visit booked inside the hour gets only that one', async () => {
    clock.set('2030-01-08T09:01:00Z');
    await until(() => sentFor(tomorrow.id).length === 2);
    await settle();
    expect(sentFor(tomorrow.id)).toEqual([1440, 60]);
    // booked 9 minutes ahead: only the 1 h reminder; the 24 h one is recorded as skipped
    const late = await book('2030-01-08T09:10:00Z');
    await until(() => sentFor(late.id).length > 0);
    await settle();
    expect(sentFor(late.id)).toEqual([60]);
    expect((await t.db.owner<{ channel: string }[]>`select channel from telehealth_reminders where appointment_id = ${late.id} and offset_minutes = 1440`)[0]?.channel).toBe('skipped');
    expect(sent.every((r) => r.tenantId === c.tenant.id)).toBe(true);
  });
});
