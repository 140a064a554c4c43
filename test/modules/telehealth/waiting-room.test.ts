import type { Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { createUser, loginAs } from '../../helpers/auth.js';
import { connect, request, until } from '../../helpers/realtime.js';
import { APPOINTMENT_FIELDS, BOOK, consentAll, createClinic, errorOf, FakeClock, ok, publishConsent, telehealthModules, telehealthTestEnv, type AppointmentView, type Clinic } from './helpers.js';

/**
 * The virtual waiting room with two real socket.io clients (a patient and
 * their provider, real identity tokens): the patient checks in and waits,
 * the provider sees the queue with wait times, posts a running-late notice
 * and admits; each sees the right events, in order. Access: a patient only
 * their own visit room, never a waiting room or the queue; another tenant
 * neither.
 */
const clock = new FakeClock(Date.parse('2030-04-01T08:00:00Z'));
let t: TestApp;
let c: Clinic;
let other: Clinic;
const open: Socket[] = [];

type Ev = { id: string; type: string; aggregateId: string; payload: Record<string, unknown>; rooms: string[] };

beforeAll(async () => {
  t = await startTestApp({ modules: telehealthModules({ now: clock.now }), env: { ...telehealthTestEnv, JOB_WORKERS: 'inline' } });
  c = await createClinic(t);
  other = await createClinic(t);
  await publishConsent(c);
  await consentAll(c);
}, 180_000);
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});
afterAll(async () => {
  await t?.close();
});

async function client(token: string): Promise<{ socket: Socket; events: Ev[] }> {
  const socket = await connect(t.url, token);
  open.push(socket);
  const events: Ev[] = [];
  const seen = new Set<string>();
  socket.on('event', (e: Ev) => {
    if (seen.has(e.id)) return; // at-least-once delivery: dedupe by id
    seen.add(e.id);
    events.push(e);
  });
  return { socket, events };
}

async function book(clinic: Clinic, minutesAhead = 30): Promise<AppointmentView> {
  const startsAt = new Date(clock.now() + minutesAhead * 60_000).toISOString();
  return ok(await clinic.as.frontDesk<{ bookAppointment: AppointmentView }>(BOOK, { i: { patientId: clinic.patientId, providerId: clinic.provider.user.id, visitTypeId: clinic.visitTypeId, startsAt } })).bookAppointment;
}

const typesFor = (events: Ev[], appointmentId: string) => events.filter((e) => e.aggregateId === appointmentId).map((e) => e.type);

describe('the waiting room over socket.io', () => {
  it('patient checks in and waits; the provider sees the queue, posts a running-late notice and admits; both see the events in order', async () => {
    const appt = await book(c, 10);
    const patient = await client(c.patientUser.token);
    const provider = await client(c.provider.token);
    expect(await request(patient.socket, 'room:join', { room: `visit:${appt.id}` })).toMatchObject({ ok: true });
    expect(await request(provider.socket, 'room:join', { room: `waitingRoom:${c.provider.user.id}` })).toMatchObject({ ok: true });

    expect(await request(patient.socket, 'telehealth:checkIn', { appointmentId: appt.id })).toEqual({ ok: true, result: { appointmentId: appt.id, status: 'checked_in', version: 2, lateByMinutes: null } });
    clock.advance(2);
    expect(await request(patient.socket, 'telehealth:enterWaitingRoom', { appointmentId: appt.id })).toMatchObject({ ok: true, result: { status: 'waiting' } });
    await until(() => typesFor(provider.events, appt.id).includes('appointment.waiting'));

    // a second patient (another record, booked later) waits behind the first
    const second = ok(await c.as.frontDesk<{ bookAppointment: AppointmentView }>(BOOK, { i: { patientId: c.otherPatientId, providerId: c.provider.user.id, visitTypeId: c.visitTypeId, startsAt: new Date(clock.now() + 50 * 60_000).toISOString() } })).bookAppointment;
    ok(await c.as.frontDesk(`mutation($id: UUID!) { checkInAppointment(id: $id) { id } }`, { id: second.id }));
    clock.advance(3);
    const queue = (await request<{ ok: boolean; result: { entries: { appointmentId: string; status: string; position: number | null; waitedSeconds: number }[] } }>(provider.socket, 'telehealth:queue', { providerId: c.provider.user.id })).result.entries;
    expect(queue.map((e) => [e.appointmentId, e.status, e.position, e.waitedSeconds])).toEqual([
      [appt.id, 'waiting', 1, 180],
      [second.id, 'checked_in', null, 180],
    ]);

    expect(await request(provider.socket, 'telehealth:runningLate', { providerId: c.provider.user.id, minutes: 10 })).toMatchObject({ ok: true, result: { appointmentIds: expect.arrayContaining([appt.id, second.id]) } });
    await until(() => typesFor(patient.events, appt.id).includes('appointment.providerLate'));
    const late = patient.events.find((e) => e.type === 'appointment.providerLate')!;
    expect(late.payload).toMatchObject({ appointmentId: appt.id, providerId: c.provider.user.id, lateByMinutes: 10 });

    clock.advance(10);
    expect(await request(provider.socket, 'telehealth:admit', { appointmentId: appt.id })).toMatchObject({ ok: true, result: { status: 'in_progress' } });
    await until(() => typesFor(patient.events, appt.id).includes('appointment.admitted') && typesFor(provider.events, appt.id).includes('appointment.admitted'));

    const expected = ['appointment.checkedIn', 'appointment.waiting', 'appointment.providerLate', 'appointment.admitted'];
    expect(typesFor(patient.events, appt.id)).toEqual(expected);
    expect(typesFor(provider.events, appt.id)).toEqual(expected);
    // the patient's socket heard nothing about the other patient's visit; the provider's waiting room did
    expect(patient.events.filter((e) => e.aggregateId === second.id)).toEqual([]);
    expect(typesFor(provider.events, second.id)).toEqual(['appointment.booked', 'appointment.checkedIn', 'appointment.providerLate']);
    // payloads carry ids and enum values only
    for (const e of [...patient.events, ...provider.events]) for (const v of Object.values(e.payload)) expect(['string', 'number', 'boolean', 'object']).toContain(typeof v);

    // the same queue over GraphQL, after the admission
    const gql = ok(await c.as.provider<{ waitingRoomQueue: { appointment: { id: string; status: string }; position: number | null }[] }>(
      'query($p: UUID!) { waitingRoomQueue(providerId: $p) { appointment { id status lateByMinutes } position waitedSeconds } }',
      { p: c.provider.user.id },
    )).waitingRoomQueue;
    expect(gql.map((e) => [e.appointment.id, e.appointment.status, e.position])).toEqual([
      [second.id, 'CHECKED_IN', null],
      [appt.id, 'IN_PROGRESS', null],
    ]);
  }, 60_000);

  it('a patient joins only their own visit room, never a waiting room, and cannot read the queue or admit', async () => {
    clock.advance(120);
    const own = await book(c);
    const others = ok(await c.as.frontDesk<{ bookAppointment: AppointmentView }>(BOOK, { i: { patientId: c.otherPatientId, providerId: c.provider.user.id, visitTypeId: c.visitTypeId, startsAt: new Date(clock.now() + 70 * 60_000).toISOString() } })).bookAppointment;
    const patient = await client(c.patientUser.token);
    expect(await request(patient.socket, 'room:join', { room: `visit:${own.id}` })).toMatchObject({ ok: true });
    expect(await request(patient.socket, 'room:join', { room: `visit:${others.id}` })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await request(patient.socket, 'room:join', { room: `waitingRoom:${c.provider.user.id}` })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await request(patient.socket, 'telehealth:queue', { providerId: c.provider.user.id })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await request(patient.socket, 'telehealth:admit', { appointmentId: own.id })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await request(patient.socket, 'telehealth:checkIn', { appointmentId: others.id })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await request(patient.socket, 'telehealth:checkIn', { appointmentId: 'nope' })).toMatchObject({ ok: false, error: { code: 'BAD_USER_INPUT' } });
    const [row] = await t.db.owner<{ status: string }[]>`select status from telehealth_appointments where id = ${others.id}`;
    expect(row!.status).toBe('scheduled');
  });

  it('staff of another tenant see neither the visit nor the waiting room; the front desk sees the queue but cannot admit', async () => {
    clock.advance(120);
    const appt = await book(c);
    const foreign = await client(other.provider.token);
    expect(await request(foreign.socket, 'room:join', { room: `visit:${appt.id}` })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await request(foreign.socket, 'room:join', { room: `waitingRoom:${c.provider.user.id}` })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await request(foreign.socket, 'telehealth:queue', { providerId: c.provider.user.id })).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(await request(foreign.socket, 'telehealth:checkIn', { appointmentId: appt.id })).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    const desk = await client(c.frontDesk.token);
    expect(await request(desk.socket, 'room:join', { room: `waitingRoom:${c.provider.user.id}` })).toMatchObject({ ok: true });
    expect(await request(desk.socket, 'telehealth:checkIn', { appointmentId: appt.id })).toMatchObject({ ok: true, result: { status: 'checked_in' } });
    expect(await request(desk.socket, 'telehealth:admit', { appointmentId: appt.id })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    // another provider of the same clinic may not admit someone else's patient, nor post a delay for them
    const colleague = await loginAs(t, await createUser(t, c.tenant, 'PROVIDER'));
    expect(errorOf(await t.gql(`mutation($id: UUID!) { admitPatient(id: $id) { ${APPOINTMENT_FIELDS} } }`, { id: appt.id }, colleague.headers)).code).toBe('FORBIDDEN');
    const late = ok(await t.gql<{ postRunningLate: unknown[] }>('mutation($p: UUID!) { postRunningLate(providerId: $p, minutes: 5) { id } }', { p: c.provider.user.id }, colleague.headers));
    expect(late.postRunningLate).toEqual([]);
    expect(errorOf(await c.as.provider('mutation($p: UUID!) { postRunningLate(providerId: $p, minutes: 500) { id } }', { p: c.provider.user.id })).extensions.field).toBe('minutes');
    const one = 'mutation($id: UUID!, $m: Int!) { postVisitRunningLate(id: $id, minutes: $m) { id lateByMinutes } }';
    expect(ok(await c.as.provider<{ postVisitRunningLate: { lateByMinutes: number } }>(one, { id: appt.id, m: 7 })).postVisitRunningLate.lateByMinutes).toBe(7);
    expect(errorOf(await t.gql(one, { id: appt.id, m: 7 }, colleague.headers)).code).toBe('FORBIDDEN');
    expect(errorOf(await other.as.provider(one, { id: appt.id, m: 7 })).code).toBe('NOT_FOUND');
  });
});

describe('the provider calendar', () => {
  it('shows availability, exceptions and appointments in the caller\u2019s zone; a patient only their own appointments', async () => {
    const q = `query($p: UUID!, $tz: String) { providerCalendar(providerId: $p, fromDate: "2030-04-01", toDate: "2030-04-01", timeZone: $tz) {
      providerTimeZone timeZone availability { startsAt endsAt localStart localEnd } exceptions { id } appointments { id startsAt status } } }`;
    const cal = ok(await c.as.provider<{ providerCalendar: { providerTimeZone: string; timeZone: string; availability: { localStart: string; localEnd: string }[]; appointments: { id: string }[] } }>(q, { p: c.provider.user.id, tz: 'Asia/Tokyo' })).providerCalendar;
    expect(cal.providerTimeZone).toBe('UTC');
    expect(cal.timeZone).toBe('Asia/Tokyo');
    expect(cal.availability).toEqual([{ startsAt: '2030-03-31T15:00:00.000Z', endsAt: '2030-04-01T15:00:00.000Z', localStart: '2030-04-01T00:00:00.000+09:00', localEnd: '2030-04-02T00:00:00.000+09:00' }]);
    expect(cal.appointments.length).toBeGreaterThan(0);
    // a patient sees the availability and only their own appointments
    const mine = ok(await c.as.patient<{ providerCalendar: { appointments: { id: string; patientId: string }[] } }>(q.replace('appointments { id', 'appointments { id patientId'), { p: c.provider.user.id })).providerCalendar.appointments;
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.length).toBeLessThan(cal.appointments.length);
    expect(mine.every((a) => a.patientId === c.patientId)).toBe(true);
    expect(errorOf(await other.as.provider(q, { p: c.provider.user.id })).code).toBe('NOT_FOUND');
  });
});
