import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { telehealthAppointments } from '../../../src/modules/telehealth/index.js';
import { withTenant } from '../../../src/platform/db/index.js';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { adminSession, createTenantWithAdmin } from '../../helpers/auth.js';
import { APPOINTMENT_FIELDS, BOOK, consentAll, createClinic, publishConsent, errorOf, FakeClock, ok, telehealthModules, telehealthTestEnv, type AppointmentView, type Clinic } from './helpers.js';

/**
 * Appointments over GraphQL (HTTP, real PostgreSQL): booking without double
 * booking (the exclusion constraint, also under 20 concurrent requests),
 * rescheduling, cancelling, the visit state machine, a PATIENT user limited
 * to their own record, and every bad input answered with a typed error that
 * changes nothing. The telehealth module runs on a fake clock: Monday
 * 2030-01-07 08:00 UTC; the provider works all week, all day (UTC); the visit
 * type lasts 30 minutes with a 10-minute buffer, so slots start every 40
 * minutes from midnight (08:40, 09:20, ...).
 */
const clock = new FakeClock(Date.parse('2030-01-07T08:00:00Z'));
let t: TestApp;
let a: Clinic;
let b: Clinic;

beforeAll(async () => {
  t = await startTestApp({ modules: telehealthModules({ now: clock.now }), env: telehealthTestEnv });
  a = await createClinic(t);
  b = await createClinic(t);
  await publishConsent(a);
  await consentAll(a); // the patient may enter the waiting room of a video visit (consent.test.ts tests without)
}, 180_000);
afterAll(async () => {
  await t?.close();
});

const at = (isoTime: string) => `2030-01-${isoTime}Z`;
const RESCHEDULE = `mutation($id: UUID!, $s: DateTime!) { rescheduleAppointment(id: $id, startsAt: $s) { ${APPOINTMENT_FIELDS} } }`;
const CANCEL = `mutation($id: UUID!, $r: String!) { cancelAppointment(id: $id, reason: $r) { ${APPOINTMENT_FIELDS} } }`;
const GET = `query($id: UUID!) { appointment(id: $id) { ${APPOINTMENT_FIELDS} } }`;
const LIST = `query($f: AppointmentFilter, $first: Int, $after: String) { appointments(filter: $f, first: $first, after: $after) { edges { cursor node { id patientId startsAt status } } pageInfo { endCursor hasNextPage } } }`;
const step = (field: string) => `mutation($id: UUID!) { ${field}(id: $id) { ${APPOINTMENT_FIELDS} } }`;

async function book(c: Clinic, startsAt: string, over: Record<string, unknown> = {}, as: 'frontDesk' | 'patient' = 'frontDesk') {
  return c.as[as]<{ bookAppointment: AppointmentView }>(BOOK, {
    i: { patientId: as === 'patient' ? undefined : c.patientId, providerId: c.provider.user.id, visitTypeId: c.visitTypeId, startsAt, ...over },
  });
}

/** A digest of what a refused request must not have changed: appointments, their history and outbox events of the tenant. */
async function stateOf(tenantId: string) {
  const [row] = await t.db.owner<{ appts: string; transitions: number; events: number }[]>`
    select (select md5(coalesce(string_agg(x::text, '|' order by x.id), '')) from telehealth_appointments x where tenant_id = ${tenantId}) as appts,
           (select count(*)::int from telehealth_appointment_transitions where tenant_id = ${tenantId}) as transitions,
           (select count(*)::int from outbox where tenant_id = ${tenantId} and type like 'appointment.%') as events`;
  return row!;
}

async function expectRefused(c: Clinic, call: () => Promise<Parameters<typeof errorOf>[0]>, code: string, reason?: string) {
  const before = await stateOf(c.tenant.id);
  const err = errorOf(await call());
  expect(err.code, err.message).toBe(code);
  if (reason) expect(err.extensions.reason).toBe(reason);
  expect(await stateOf(c.tenant.id)).toEqual(before);
  return err;
}

describe('booking', () => {
  it('books an open slot: the slot is no longer open, and the booking has its history row, outbox event and audit entry', async () => {
    const slotsQ = 'query($p: UUID!, $v: UUID!) { openSlots(providerId: $p, visitTypeId: $v, fromDate: "2030-01-07", toDate: "2030-01-07") { startsAt localStart } }';
    const before = ok(await a.as.patient<{ openSlots: { startsAt: string }[] }>(slotsQ, { p: a.provider.user.id, v: a.visitTypeId })).openSlots.map((s) => s.startsAt);
    expect(before[0]).toBe('2030-01-07T08:40:00.000Z'); // the first start after 08:00 on the 40-minute grid
    const requestId = randomUUID();
    const res = await t.gql<{ bookAppointment: AppointmentView }>(
      BOOK,
      { i: { patientId: a.patientId, providerId: a.provider.user.id, visitTypeId: a.visitTypeId, startsAt: before[1], reason: 'Follow-up on blood pressure' } },
      { ...a.frontDesk.headers, 'x-request-id': requestId },
    );
    const appt = ok(res).bookAppointment;
    expect(appt).toMatchObject({ patientId: a.patientId, providerId: a.provider.user.id, providerName: 'Dr Test', status: 'SCHEDULED', startsAt: before[1], endsAt: '2030-01-07T09:50:00.000Z', modality: 'VIDEO', version: 1 });
    const after = ok(await a.as.patient<{ openSlots: { startsAt: string }[] }>(slotsQ, { p: a.provider.user.id, v: a.visitTypeId })).openSlots.map((s) => s.startsAt);
    expect(after).not.toContain(before[1]);
    expect(after).toContain(before[0]);
    const [tr] = await t.db.owner`select from_status, to_status, action, actor from telehealth_appointment_transitions where appointment_id = ${appt.id}`;
    expect(tr).toEqual({ from_status: null, to_status: 'scheduled', action: 'book', actor: `user:${a.frontDesk.user.id}` });
    const [ev] = await t.db.owner<{ type: string; payload: Record<string, unknown>; rooms: string[] }[]>`select type, payload, rooms from outbox where aggregate_id = ${appt.id}`;
    expect(ev).toMatchObject({ type: 'appointment.booked', payload: { appointmentId: appt.id, patientId: a.patientId, status: 'scheduled', action: 'book' }, rooms: [`visit:${appt.id}`, `waitingRoom:${a.provider.user.id}`] });
    const audit = await t.db.owner<{ action: string; outcome: string; patient_id: string; resource_id: string }[]>`
      select action, outcome, patient_id, resource_id from audit_events where request_id = ${requestId} and resource_type = 'Appointment' order by action`;
    expect(audit).toEqual(expect.arrayContaining([{ action: 'create', outcome: 'allowed', patient_id: a.patientId, resource_id: appt.id }]));
  });

  it('20 concurrent bookings of one slot over HTTP: exactly one succeeds, 19 get CONFLICT', async () => {
    const slot = at('08T10:00:00.000');
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => book(a, slot, { patientId: i % 2 ? a.patientId : a.otherPatientId })),
    );
    const codes = results.map((r) => (r.body.errors?.length ? r.body.errors[0]!.extensions?.code : 'OK'));
    expect(codes.filter((c) => c === 'OK')).toHaveLength(1);
    expect(codes.filter((c) => c === 'CONFLICT')).toHaveLength(19);
    expect(results.filter((r) => r.body.errors).every((r) => r.body.errors![0]!.extensions?.reason === 'SLOT_TAKEN')).toBe(true);
    const [n] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from telehealth_appointments where tenant_id = ${a.tenant.id} and starts_at = ${slot}`;
    expect(n!.n).toBe(1);
    const [events] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from outbox o join telehealth_appointments x on x.id::text = o.aggregate_id where x.starts_at = ${slot}`;
    expect(events!.n).toBe(1);
  }, 60_000);

  it('refuses an overlapping booking (the buffer counts), the past, outside availability, an unknown or retired visit type', async () => {
    ok(await book(a, at('08T12:00:00.000')));
    // 12:30 is inside 12:00 + 30 min + 10 min buffer
    await expectRefused(a, () => book(a, at('08T12:30:00.000')), 'CONFLICT', 'SLOT_TAKEN');
    await expectRefused(a, () => book(a, at('08T11:30:00.000')), 'CONFLICT', 'SLOT_TAKEN'); // its own buffer reaches 12:10
    await expectRefused(a, () => book(a, at('07T07:00:00.000')), 'BAD_USER_INPUT', 'IN_THE_PAST');
    // time off on the 9th from 09:00 to 12:00
    ok(await a.as.provider('mutation($i: AvailabilityExceptionInput!) { addAvailabilityException(input: $i) { id } }', { i: { providerId: a.provider.user.id, date: '2030-01-09', kind: 'UNAVAILABLE', startTime: '09:00', endTime: '12:00' } }));
    await expectRefused(a, () => book(a, at('09T10:00:00.000')), 'BAD_USER_INPUT', 'OUTSIDE_AVAILABILITY');
    await expectRefused(a, () => book(a, at('09T11:50:00.000')), 'BAD_USER_INPUT', 'OUTSIDE_AVAILABILITY'); // ends inside the time off
    await expectRefused(a, () => book(a, at('08T14:00:00.000'), { visitTypeId: randomUUID() }), 'NOT_FOUND');
    const retired = ok(
      await a.as.admin<{ createVisitType: { id: string } }>('mutation($i: CreateVisitTypeInput!) { createVisitType(input: $i) { id } }', { i: { code: 'old-type', name: 'Old', durationMinutes: 20, modality: 'IN_PERSON' } }),
    ).createVisitType.id;
    ok(await a.as.admin('mutation($id: UUID!) { updateVisitType(id: $id, input: { active: false }) { id } }', { id: retired }));
    await expectRefused(a, () => book(a, at('08T14:00:00.000'), { visitTypeId: retired }), 'NOT_FOUND');
    await expectRefused(a, () => book(a, 'tomorrow at noon'), 'BAD_USER_INPUT');
    await expectRefused(a, () => book(a, at('08T14:00:00.000'), { reason: 'x'.repeat(1001) }), 'BAD_USER_INPUT');
  });

  it("refuses another tenant's provider, patient and visit type (NOT_FOUND), and changes nothing in either tenant", async () => {
    const beforeB = await stateOf(b.tenant.id);
    await expectRefused(a, () => book(a, at('08T15:00:00.000'), { providerId: b.provider.user.id }), 'NOT_FOUND');
    await expectRefused(a, () => book(a, at('08T15:00:00.000'), { patientId: b.patientId }), 'NOT_FOUND');
    await expectRefused(a, () => book(a, at('08T15:00:00.000'), { visitTypeId: b.visitTypeId }), 'NOT_FOUND');
    await expectRefused(a, () => book(a, at('08T15:00:00.000'), { providerId: a.frontDesk.user.id }), 'NOT_FOUND'); // not a provider
    expect(await stateOf(b.tenant.id)).toEqual(beforeB);
  });
});

describe('a PATIENT user', () => {
  let own: AppointmentView;
  let other: AppointmentView;

  it('books for their own record (patientId may be omitted), never for another patient', async () => {
    own = ok(await book(a, at('10T09:20:00.000'), {}, 'patient')).bookAppointment;
    expect(own.patientId).toBe(a.patientId);
    const err = await expectRefused(a, () => book(a, at('10T10:00:00.000'), { patientId: a.otherPatientId }, 'patient'), 'FORBIDDEN');
    expect(err.extensions.reason).toBe('PATIENT_ACCESS');
    await expectRefused(a, () => book(a, at('10T10:00:00.000'), { patientId: b.patientId }, 'patient'), 'FORBIDDEN');
    other = ok(await book(a, at('10T10:00:00.000'), { patientId: a.otherPatientId })).bookAppointment;
  });

  it('reads only their own appointments', async () => {
    expect(ok(await a.as.patient<{ appointment: AppointmentView }>(GET, { id: own.id })).appointment.id).toBe(own.id);
    expect(errorOf(await a.as.patient(GET, { id: other.id })).code).toBe('FORBIDDEN');
    const mine = ok(await a.as.patient<{ appointments: { edges: { node: AppointmentView }[] } }>(LIST, { first: 200 })).appointments.edges.map((e) => e.node);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((m) => m.patientId === a.patientId)).toBe(true);
    const staff = ok(await a.as.frontDesk<{ appointments: { edges: { node: AppointmentView }[] } }>(LIST, { first: 200 })).appointments.edges.map((e) => e.node);
    expect(staff.map((s) => s.id)).toEqual(expect.arrayContaining([own.id, other.id]));
    // another tenant's staff see none of them
    expect(errorOf(await b.as.frontDesk(GET, { id: own.id })).code).toBe('NOT_FOUND');
    const bList = ok(await b.as.frontDesk<{ appointments: { edges: unknown[] } }>(LIST, { f: { patientId: a.patientId } })).appointments.edges;
    expect(bList).toEqual([]);
  });

  it('cannot cancel another patient\u2019s appointment, can cancel their own', async () => {
    await expectRefused(a, () => a.as.patient(CANCEL, { id: other.id, r: 'cannot come' }), 'FORBIDDEN');
    expect(ok(await a.as.patient<{ cancelAppointment: AppointmentView }>(CANCEL, { id: own.id, r: 'cannot come' })).cancelAppointment.status).toBe('CANCELLED');
  });
});

describe('reschedule and cancel', () => {
  it('reschedules to a free time, refuses a taken one (CONFLICT) and a cancelled appointment (INVALID_STATE_TRANSITION)', async () => {
    const first = ok(await book(a, at('11T09:20:00.000'))).bookAppointment;
    const second = ok(await book(a, at('11T10:00:00.000'))).bookAppointment;
    const moved = ok(await a.as.frontDesk<{ rescheduleAppointment: AppointmentView }>(RESCHEDULE, { id: first.id, s: at('11T13:00:00.000') })).rescheduleAppointment;
    expect(moved).toMatchObject({ startsAt: '2030-01-11T13:00:00.000Z', endsAt: '2030-01-11T13:30:00.000Z', rescheduleCount: 1, version: 2, status: 'SCHEDULED' });
    const [tr] = await t.db.owner`select action, previous_starts_at from telehealth_appointment_transitions where appointment_id = ${first.id} and action = 'reschedule'`;
    expect(new Date(tr!.previous_starts_at as string).toISOString()).toBe('2030-01-11T09:20:00.000Z');
    await expectRefused(a, () => a.as.frontDesk(RESCHEDULE, { id: second.id, s: at('11T13:20:00.000') }), 'CONFLICT', 'SLOT_TAKEN');
    await expectRefused(a, () => a.as.frontDesk(RESCHEDULE, { id: second.id, s: at('06T13:20:00.000') }), 'BAD_USER_INPUT', 'IN_THE_PAST');
    // the freed 09:20 can be booked again
    ok(await book(a, at('11T09:20:00.000'), { patientId: a.otherPatientId }));
    ok(await a.as.frontDesk(CANCEL, { id: second.id, r: 'clinic closed' }));
    await expectRefused(a, () => a.as.frontDesk(RESCHEDULE, { id: second.id, s: at('11T15:00:00.000') }), 'INVALID_STATE_TRANSITION');
  });

  it('cancelling needs a reason, frees the time, and cannot be done twice', async () => {
    const appt = ok(await book(a, at('12T09:20:00.000'))).bookAppointment;
    await expectRefused(a, () => a.as.frontDesk(CANCEL, { id: appt.id, r: '  ' }), 'BAD_USER_INPUT');
    const cancelled = ok(await a.as.frontDesk<{ cancelAppointment: AppointmentView }>(CANCEL, { id: appt.id, r: 'patient is travelling' })).cancelAppointment;
    expect(cancelled).toMatchObject({ status: 'CANCELLED', cancelReason: 'patient is travelling', version: 2 });
    const err = await expectRefused(a, () => a.as.frontDesk(CANCEL, { id: appt.id, r: 'again' }), 'INVALID_STATE_TRANSITION');
    expect(err.extensions).toMatchObject({ from: 'cancelled', action: 'cancel' });
    ok(await book(a, at('12T09:20:00.000'), { patientId: a.otherPatientId }));
  });
});

describe('the visit state machine', () => {
  it('scheduled → checked_in → waiting → in_progress → completed; illegal steps are INVALID_STATE_TRANSITION; each step an event and an audit entry', async () => {
    const appt = ok(await book(a, at('13T09:20:00.000'))).bookAppointment;
    // check-in opens 60 minutes before the start
    clock.set('2030-01-13T08:00:00Z');
    await expectRefused(a, () => a.as.patient(step('checkInAppointment'), { id: appt.id }), 'BAD_USER_INPUT', 'TOO_EARLY');
    await expectRefused(a, () => a.as.provider(step('markNoShow'), { id: appt.id }), 'BAD_USER_INPUT', 'TOO_EARLY');
    clock.set('2030-01-13T09:00:00Z');
    await expectRefused(a, () => a.as.provider(step('admitPatient'), { id: appt.id }), 'INVALID_STATE_TRANSITION');
    await expectRefused(a, () => a.as.patient(step('enterWaitingRoom'), { id: appt.id }), 'INVALID_STATE_TRANSITION');
    const requestId = randomUUID();
    const checked = ok(await t.gql<{ checkInAppointment: AppointmentView }>(step('checkInAppointment'), { id: appt.id }, { ...a.patientUser.headers, 'x-request-id': requestId })).checkInAppointment;
    expect(checked).toMatchObject({ status: 'CHECKED_IN', checkedInAt: '2030-01-13T09:00:00.000Z', version: 2 });
    const audit = await t.db.owner`select action, outcome, detail from audit_events where request_id = ${requestId} and resource_type = 'Appointment' and action = 'update'`;
    expect(audit[0]).toMatchObject({ action: 'update', outcome: 'allowed', detail: { transition: 'check_in', from: 'scheduled', to: 'checked_in' } });
    await expectRefused(a, () => a.as.patient(step('checkInAppointment'), { id: appt.id }), 'INVALID_STATE_TRANSITION');
    expect(ok(await a.as.patient<{ enterWaitingRoom: AppointmentView }>(step('enterWaitingRoom'), { id: appt.id })).enterWaitingRoom.status).toBe('WAITING');
    // the patient cannot admit themselves (no permission), nor can the front desk
    expect(errorOf(await a.as.patient(step('admitPatient'), { id: appt.id })).code).toBe('FORBIDDEN');
    expect(errorOf(await a.as.frontDesk(step('admitPatient'), { id: appt.id })).code).toBe('FORBIDDEN');
    clock.set('2030-01-13T09:22:00Z');
    expect(ok(await a.as.provider<{ admitPatient: AppointmentView }>(step('admitPatient'), { id: appt.id })).admitPatient.status).toBe('IN_PROGRESS');
    await expectRefused(a, () => a.as.frontDesk(CANCEL, { id: appt.id, r: 'too late to cancel' }), 'INVALID_STATE_TRANSITION');
    await expectRefused(a, () => a.as.provider(step('markNoShow'), { id: appt.id }), 'INVALID_STATE_TRANSITION');
    expect(ok(await a.as.provider<{ completeVisit: AppointmentView }>(step('completeVisit'), { id: appt.id })).completeVisit).toMatchObject({ status: 'COMPLETED', version: 5 });
    await expectRefused(a, () => a.as.provider(step('completeVisit'), { id: appt.id }), 'INVALID_STATE_TRANSITION');
    const events = await t.db.owner<{ type: string }[]>`select type from outbox where aggregate_id = ${appt.id} order by seq`;
    expect(events.map((e) => e.type)).toEqual(['appointment.booked', 'appointment.checkedIn', 'appointment.waiting', 'appointment.admitted', 'appointment.completed']);
    const history = await t.db.owner<{ from_status: string | null; to_status: string }[]>`select from_status, to_status from telehealth_appointment_transitions where appointment_id = ${appt.id} order by at, to_status`;
    expect(history.map((h) => `${h.from_status}->${h.to_status}`)).toEqual(['null->scheduled', 'scheduled->checked_in', 'checked_in->waiting', 'waiting->in_progress', 'in_progress->completed']);
  });

  it('a no-show once the start has passed; then nothing moves on', async () => {
    clock.set('2030-01-13T12:00:00Z');
    const appt = ok(await book(a, at('13T13:20:00.000'))).bookAppointment;
    clock.set('2030-01-13T13:35:00Z');
    expect(ok(await a.as.provider<{ markNoShow: AppointmentView }>(step('markNoShow'), { id: appt.id })).markNoShow.status).toBe('NO_SHOW');
    await expectRefused(a, () => a.as.patient(step('checkInAppointment'), { id: appt.id }), 'INVALID_STATE_TRANSITION');
    // a no-show frees the rest of the time
    clock.set('2030-01-13T13:36:00Z');
    ok(await book(a, at('13T13:40:00.000'), { patientId: a.otherPatientId }));
  });

  it("a provider conducts only their own visits; another tenant's visit is not found", async () => {
    clock.set('2030-01-14T08:00:00Z');
    const appt = ok(await book(b, '2030-01-14T08:40:00.000Z')).bookAppointment;
    expect(errorOf(await a.as.provider(step('admitPatient'), { id: appt.id })).code).toBe('NOT_FOUND');
    expect(errorOf(await a.as.patient(step('checkInAppointment'), { id: appt.id })).code).toBe('NOT_FOUND');
  });
});

describe('isolation and entitlement', () => {
  it('RLS alone hides another tenant\u2019s appointments; the app role cannot delete them', async () => {
    const [row] = await t.db.owner<{ id: string }[]>`select id from telehealth_appointments where tenant_id = ${a.tenant.id} limit 1`;
    const byId = (tenantId: string) => withTenant(t.db.sql, tenantId, (tx) => tx.select({ id: telehealthAppointments.id }).from(telehealthAppointments).where(sql`${telehealthAppointments.id} = ${row!.id}`));
    expect(await byId(a.tenant.id)).toHaveLength(1);
    expect(await byId(b.tenant.id)).toEqual([]);
    const err = await withTenant(t.db.sql, a.tenant.id, (tx) => tx.execute(sql`delete from telehealth_appointments where id = ${row!.id}`)).catch((e: unknown) => e);
    expect((err as { cause?: { code?: string } }).cause?.code).toBe('42501');
    const [rls] = await t.db.owner<{ enabled: boolean; forced: boolean }[]>`select relrowsecurity as enabled, relforcerowsecurity as forced from pg_class where relname = 'telehealth_appointments'`;
    expect(rls).toEqual({ enabled: true, forced: true });
  });

  it('a tenant whose plan lacks telehealth gets FEATURE_NOT_ENTITLED', async () => {
    const c = await createTenantWithAdmin(t);
    await t.db.owner`insert into tenant_entitlements (tenant_id, modules) values (${c.id}, '{}')`;
    const admin = await adminSession(t, c);
    expect(errorOf(await t.gql(LIST, {}, admin.headers)).code).toBe('FEATURE_NOT_ENTITLED');
    expect(errorOf(await t.gql(BOOK, { i: { patientId: randomUUID(), providerId: randomUUID(), visitTypeId: randomUUID(), startsAt: at('20T10:00:00.000') } }, admin.headers)).code).toBe('FEATURE_NOT_ENTITLED');
  });
});
