import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { BOOK, createClinic, CREATE_VISIT_TYPE, errorOf, FakeClock, ok, SET_AVAILABILITY, telehealthModules, telehealthTestEnv, type Clinic } from './helpers.js';

/**
 * Schedules over GraphQL: weekly hours in the provider's IANA zone,
 * exceptions and tenant holidays, visit types, and open slots shown in the
 * caller's zone, correct across the daylight-saving changes of both zones
 * (America/New_York springs forward on 8 March 2026, Europe/Berlin on
 * 29 March 2026). The module's clock: 1 March 2026.
 */
const clock = new FakeClock(Date.parse('2026-03-01T12:00:00Z'));
let t: TestApp;
let c: Clinic;
let other: Clinic;

const weekdays = (startTime: string, endTime: string) => [1, 2, 3, 4, 5].map((weekday) => ({ weekday, startTime, endTime }));
const SLOTS = `query($p: UUID!, $v: UUID!, $from: Date!, $to: Date!, $tz: String) {
  openSlots(providerId: $p, visitTypeId: $v, fromDate: $from, toDate: $to, timeZone: $tz) { startsAt endsAt localStart localEnd localDate timeZone } }`;
const EXCEPTION = 'mutation($i: AvailabilityExceptionInput!) { addAvailabilityException(input: $i) { id providerId date kind startTime endTime label } }';
const EXCEPTIONS = 'query($p: UUID, $from: Date!, $to: Date!) { availabilityExceptions(providerId: $p, fromDate: $from, toDate: $to) { id providerId date kind startTime endTime label } }';
type Slot = { startsAt: string; endsAt: string; localStart: string; localEnd: string; localDate: string; timeZone: string };

beforeAll(async () => {
  t = await startTestApp({ modules: telehealthModules({ now: clock.now }), env: telehealthTestEnv });
  // a New York provider, 09:00-12:00 on weekdays; 60-minute visits, no buffer
  c = await createClinic(t, { timeZone: 'America/New_York', weeklyHours: weekdays('09:00', '12:00'), durationMinutes: 60, bufferMinutes: 0 });
  other = await createClinic(t);
}, 180_000);
afterAll(async () => {
  await t?.close();
});

async function slots(from: string, to: string, tz?: string, as = c.as.patient) {
  return ok(await as<{ openSlots: Slot[] }>(SLOTS, { p: c.provider.user.id, v: c.visitTypeId, from, to, tz })).openSlots;
}

describe('weekly hours', () => {
  it('a provider sets their own hours; the front desk any provider\u2019s; another provider may not', async () => {
    const mine = ok(await c.as.provider<{ setProviderAvailability: { timeZone: string; weeklyHours: unknown[] } }>(SET_AVAILABILITY, { i: { providerId: c.provider.user.id, timeZone: 'America/New_York', weeklyHours: weekdays('09:00', '12:00') } }));
    expect(mine.setProviderAvailability).toMatchObject({ timeZone: 'America/New_York', weeklyHours: expect.arrayContaining([{ weekday: 1, startTime: '09:00', endTime: '12:00' }]) });
    const read = ok(await c.as.patient<{ providerSchedule: { weeklyHours: unknown[] } }>('query($p: UUID!) { providerSchedule(providerId: $p) { providerId timeZone weeklyHours { weekday startTime endTime } } }', { p: c.provider.user.id }));
    expect(read.providerSchedule.weeklyHours).toHaveLength(5);
    const err = errorOf(await other.as.provider(SET_AVAILABILITY, { i: { providerId: c.provider.user.id, timeZone: 'UTC', weeklyHours: [] } }));
    expect(err.code).toBe('NOT_FOUND'); // another tenant's provider
    expect(errorOf(await c.as.patient(SET_AVAILABILITY, { i: { providerId: c.provider.user.id, timeZone: 'UTC', weeklyHours: [] } })).code).toBe('FORBIDDEN');
  });

  it('refuses a bad zone, a bad time, an empty range, a bad weekday; nothing changes', async () => {
    const bad = async (i: Record<string, unknown>, field: string) => {
      const e = errorOf(await c.as.frontDesk(SET_AVAILABILITY, { i: { providerId: c.provider.user.id, timeZone: 'America/New_York', weeklyHours: weekdays('09:00', '12:00'), ...i } }));
      expect([e.code, e.extensions.field]).toEqual(['BAD_USER_INPUT', field]);
    };
    await bad({ timeZone: 'EST' }, 'timeZone');
    await bad({ timeZone: 'Mars/Olympus_Mons' }, 'timeZone');
    await bad({ weeklyHours: [{ weekday: 1, startTime: '9am', endTime: '12:00' }] }, 'weeklyHours.0.startTime');
    await bad({ weeklyHours: [{ weekday: 1, startTime: '12:00', endTime: '09:00' }] }, 'weeklyHours.0');
    await bad({ weeklyHours: [{ weekday: 8, startTime: '09:00', endTime: '12:00' }] }, 'weeklyHours.0.weekday');
    const [row] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from telehealth_weekly_hours where provider_id = ${c.provider.user.id}`;
    expect(row!.n).toBe(5);
    expect(errorOf(await c.as.frontDesk(SET_AVAILABILITY, { i: { providerId: c.frontDesk.user.id, timeZone: 'UTC', weeklyHours: [] } })).code).toBe('NOT_FOUND'); // not a provider
  });
});

describe('open slots across daylight-saving changes', () => {
  it('stay at 09:00, 10:00, 11:00 New York time on both sides of the spring-forward (their UTC instants move by an hour)', async () => {
    const fri = await slots('2026-03-06', '2026-03-06');
    const mon = await slots('2026-03-09', '2026-03-09');
    expect(fri.map((s) => s.localStart)).toEqual(['2026-03-06T09:00:00.000-05:00', '2026-03-06T10:00:00.000-05:00', '2026-03-06T11:00:00.000-05:00']);
    expect(fri.map((s) => s.startsAt)).toEqual(['2026-03-06T14:00:00.000Z', '2026-03-06T15:00:00.000Z', '2026-03-06T16:00:00.000Z']);
    expect(mon.map((s) => s.localStart)).toEqual(['2026-03-09T09:00:00.000-04:00', '2026-03-09T10:00:00.000-04:00', '2026-03-09T11:00:00.000-04:00']);
    expect(mon.map((s) => s.startsAt)).toEqual(['2026-03-09T13:00:00.000Z', '2026-03-09T14:00:00.000Z', '2026-03-09T15:00:00.000Z']);
    expect(new Set([...fri, ...mon].map((s) => s.timeZone))).toEqual(new Set(['America/New_York']));
  });

  it('in a Berlin caller\u2019s zone: 15:00 before 8 March, 14:00 between the two changes, 15:00 again after 29 March', async () => {
    const berlin = (from: string, to: string) => slots(from, to, 'Europe/Berlin');
    expect((await berlin('2026-03-06', '2026-03-06')).map((s) => s.localStart)[0]).toBe('2026-03-06T15:00:00.000+01:00');
    expect((await berlin('2026-03-09', '2026-03-09')).map((s) => s.localStart)[0]).toBe('2026-03-09T14:00:00.000+01:00');
    expect((await berlin('2026-03-30', '2026-03-30')).map((s) => s.localStart)[0]).toBe('2026-03-30T15:00:00.000+02:00');
    // a week spanning the change: every weekday has its three slots, each 60 real minutes long
    const week = await berlin('2026-03-02', '2026-03-13');
    expect(week).toHaveLength(30);
    expect(week.every((s) => Date.parse(s.endsAt) - Date.parse(s.startsAt) === 3_600_000)).toBe(true);
  });

  it('a caller far east sees the provider\u2019s morning on the next local date (Pacific/Auckland)', async () => {
    const nz = await slots('2026-03-10', '2026-03-10', 'Pacific/Auckland');
    // 09:00-12:00 New York on Monday 9 March = 02:00-05:00 on Tuesday 10 March in Auckland (NZDT, +13)
    expect(nz.map((s) => s.localStart)).toEqual(['2026-03-10T02:00:00.000+13:00', '2026-03-10T03:00:00.000+13:00', '2026-03-10T04:00:00.000+13:00']);
    expect(nz.every((s) => s.localDate === '2026-03-10')).toBe(true);
  });

  it('leave out booked time, the past and days off', async () => {
    ok(await c.as.frontDesk(BOOK, { i: { patientId: c.patientId, providerId: c.provider.user.id, visitTypeId: c.visitTypeId, startsAt: '2026-03-09T14:00:00.000Z' } }));
    expect((await slots('2026-03-09', '2026-03-09')).map((s) => s.startsAt)).toEqual(['2026-03-09T13:00:00.000Z', '2026-03-09T15:00:00.000Z']);
    // the clock is 1 March 12:00 UTC: nothing before it (Friday 27 Feb is gone)
    expect(await slots('2026-02-27', '2026-02-27')).toEqual([]);
    // no weekend hours
    expect(await slots('2026-03-07', '2026-03-08')).toEqual([]);
  });

  it('refuses bad ranges and unknown records', async () => {
    const q = (v: Record<string, unknown>) => c.as.patient(SLOTS, { p: c.provider.user.id, v: c.visitTypeId, from: '2026-03-02', to: '2026-03-06', ...v });
    expect(errorOf(await q({ from: '2026-03-06', to: '2026-03-02' })).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'toDate' });
    expect(errorOf(await q({ to: '2026-06-30' })).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'toDate' });
    expect(errorOf(await q({ tz: 'Berlin' })).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'timeZone' });
    expect(errorOf(await q({ v: randomUUID() })).code).toBe('NOT_FOUND');
    expect(errorOf(await q({ v: other.visitTypeId })).code).toBe('NOT_FOUND');
    expect(errorOf(await q({ p: other.provider.user.id })).code).toBe('NOT_FOUND');
  });
});

describe('exceptions and holidays', () => {
  it('time off removes slots; extra hours add them; the provider\u2019s own local date is used', async () => {
    ok(await c.as.provider(EXCEPTION, { i: { providerId: c.provider.user.id, date: '2026-03-10', kind: 'UNAVAILABLE', startTime: '10:00', endTime: '11:00', label: 'Team meeting' } }));
    ok(await c.as.provider(EXCEPTION, { i: { providerId: c.provider.user.id, date: '2026-03-10', kind: 'AVAILABLE', startTime: '14:00', endTime: '15:00' } }));
    expect((await slots('2026-03-10', '2026-03-10')).map((s) => s.localStart)).toEqual(['2026-03-10T09:00:00.000-04:00', '2026-03-10T11:00:00.000-04:00', '2026-03-10T14:00:00.000-04:00']);
    const list = ok(await c.as.patient<{ availabilityExceptions: { kind: string; label: string | null }[] }>(EXCEPTIONS, { p: c.provider.user.id, from: '2026-03-01', to: '2026-03-31' })).availabilityExceptions;
    expect(list.map((e) => e.kind)).toEqual(['UNAVAILABLE', 'AVAILABLE']);
  });

  it('a tenant holiday (administrators only) closes the day for every provider', async () => {
    const holiday = { i: { date: '2026-03-11', kind: 'UNAVAILABLE', label: 'Clinic closed' } };
    expect(errorOf(await c.as.frontDesk(EXCEPTION, holiday)).code).toBe('FORBIDDEN');
    expect(errorOf(await c.as.provider(EXCEPTION, holiday)).code).toBe('FORBIDDEN');
    const h = ok(await c.as.admin<{ addAvailabilityException: { id: string; providerId: string | null } }>(EXCEPTION, holiday)).addAvailabilityException;
    expect(h.providerId).toBeNull();
    expect(await slots('2026-03-11', '2026-03-11')).toEqual([]);
    const err = errorOf(await c.as.frontDesk(BOOK, { i: { patientId: c.patientId, providerId: c.provider.user.id, visitTypeId: c.visitTypeId, startsAt: '2026-03-11T13:00:00.000Z' } }));
    expect([err.code, err.extensions.reason]).toEqual(['BAD_USER_INPUT', 'OUTSIDE_AVAILABILITY']);
    // the holiday is listed with the provider's exceptions and alone; another tenant does not see it
    const listed = ok(await c.as.patient<{ availabilityExceptions: { id: string }[] }>(EXCEPTIONS, { from: '2026-03-01', to: '2026-03-31' })).availabilityExceptions;
    expect(listed.map((e) => e.id)).toEqual([h.id]);
    expect(ok(await other.as.patient<{ availabilityExceptions: unknown[] }>(EXCEPTIONS, { from: '2026-03-01', to: '2026-03-31' })).availabilityExceptions).toEqual([]);
    // removing it reopens the day
    expect(errorOf(await other.as.admin('mutation($id: UUID!) { removeAvailabilityException(id: $id) }', { id: h.id })).code).toBe('NOT_FOUND');
    ok(await c.as.admin('mutation($id: UUID!) { removeAvailabilityException(id: $id) }', { id: h.id }));
    expect(await slots('2026-03-11', '2026-03-11')).toHaveLength(3);
  });

  it('refuses extra hours without times, a bad date, times out of order', async () => {
    const bad = async (i: Record<string, unknown>, field: string) => {
      const e = errorOf(await c.as.provider(EXCEPTION, { i: { providerId: c.provider.user.id, date: '2026-03-12', kind: 'UNAVAILABLE', ...i } }));
      expect([e.code, e.extensions.field]).toEqual(['BAD_USER_INPUT', field]);
    };
    await bad({ kind: 'AVAILABLE' }, 'startTime');
    await bad({ startTime: '11:00', endTime: '10:00' }, 'startTime');
    await bad({ startTime: '11:00' }, 'endTime');
    expect(errorOf(await c.as.provider(EXCEPTION, { i: { providerId: c.provider.user.id, date: '2026-02-30', kind: 'UNAVAILABLE' } })).code).toBe('BAD_USER_INPUT');
  });
});

describe('visit types', () => {
  it('are created by administrators with a unique code, validated, and listed', async () => {
    const input = { code: 'new-patient', name: 'New patient', durationMinutes: 45, modality: 'IN_PERSON', bufferMinutes: 15 };
    const created = ok(await c.as.admin<{ createVisitType: Record<string, unknown> }>(CREATE_VISIT_TYPE, { i: input })).createVisitType;
    expect(created).toMatchObject({ code: 'new-patient', durationMinutes: 45, bufferMinutes: 15, modality: 'IN_PERSON', active: true });
    expect(errorOf(await c.as.admin(CREATE_VISIT_TYPE, { i: input })).code).toBe('CONFLICT');
    ok(await other.as.admin(CREATE_VISIT_TYPE, { i: input })); // another tenant may use the same code
    expect(errorOf(await c.as.admin(CREATE_VISIT_TYPE, { i: { ...input, code: 'x2', durationMinutes: 2 } })).extensions.field).toBe('durationMinutes');
    expect(errorOf(await c.as.admin(CREATE_VISIT_TYPE, { i: { ...input, code: 'Bad Code' } })).extensions.field).toBe('code');
    expect(errorOf(await c.as.frontDesk(CREATE_VISIT_TYPE, { i: { ...input, code: 'fd' } })).code).toBe('FORBIDDEN');
    const listed = ok(await c.as.patient<{ telehealthVisitTypes: { code: string }[] }>('{ telehealthVisitTypes { code } }')).telehealthVisitTypes.map((v) => v.code);
    expect(listed.sort()).toEqual(['new-patient', 'video-30']);
  });
});
