import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { connect, next, request } from '../../helpers/realtime.js';
import { APPOINTMENT_FIELDS, BOOK, consentAll, createClinic, errorOf, FakeClock, ok, publishConsent, telehealthModules, telehealthTestEnv, type AppointmentView, type Clinic } from './helpers.js';

/**
 * In-visit tools over GraphQL and a real socket.io client: the visit chat (participants only, stored encrypted,
 * idempotent by the client's message id, read receipts, each message announced to the visit room with ids only) and
 * vital signs (plausible ranges per unit, LOINC codes, only while the visit is in progress). Another tenant gets
 * NOT_FOUND, a patient of another visit FORBIDDEN, and a refusal stores nothing.
 */
const clock = new FakeClock(Date.parse('2030-05-06T08:00:00Z'));
let t: TestApp;
let c: Clinic;
let b: Clinic;

const step = (field: string) => `mutation($id: UUID!) { ${field}(id: $id) { ${APPOINTMENT_FIELDS} } }`;
const SEND = 'mutation($a: UUID!, $b: String!, $k: String!) { sendVisitChatMessage(appointmentId: $a, body: $b, clientMessageId: $k) { id cursor senderRole body clientMessageId } }';
const MESSAGES = 'query($a: UUID!, $after: String) { visitChatMessages(appointmentId: $a, after: $after) { id cursor senderRole body } }';
const READ = 'mutation($a: UUID!) { markVisitChatRead(appointmentId: $a) }';
const READS = 'query($a: UUID!) { visitChatReads(appointmentId: $a) { userId lastReadAt } }';
const VITAL = 'mutation($i: RecordVitalSignInput!) { recordVitalSign(input: $i) { id kind loinc value value2 unit } }';
const VITALS = 'query($a: UUID!) { visitVitalSigns(appointmentId: $a) { kind loinc value value2 unit } }';

beforeAll(async () => {
  t = await startTestApp({ modules: telehealthModules({ now: clock.now }), env: telehealthTestEnv });
  c = await createClinic(t);
  b = await createClinic(t);
  await publishConsent(c);
  await consentAll(c);
}, 180_000);
afterAll(async () => {
  await t?.close();
});

async function visit(status: 'scheduled' | 'in_progress'): Promise<AppointmentView> {
  clock.advance(120);
  const startsAt = new Date(clock.now() + 30 * 60_000).toISOString();
  const appt = ok(await c.as.frontDesk<{ bookAppointment: AppointmentView }>(BOOK, { i: { patientId: c.patientId, providerId: c.provider.user.id, visitTypeId: c.visitTypeId, startsAt } })).bookAppointment;
  if (status === 'in_progress') {
    ok(await c.as.patient(step('checkInAppointment'), { id: appt.id }));
    ok(await c.as.patient(step('enterWaitingRoom'), { id: appt.id }));
    ok(await c.as.provider(step('admitPatient'), { id: appt.id }));
  }
  return appt;
}
const counts = async (appointmentId: string) =>
  (await t.db.owner<{ m: number; v: number }[]>`select (select count(*)::int from telehealth_chat_messages where appointment_id = ${appointmentId}) as m, (select count(*)::int from telehealth_vitals where appointment_id = ${appointmentId}) as v`)[0]!;

describe('visit chat', () => {
  it('participants write and read; the provider hears each message on the visit room (ids only); a resend is the same message', async () => {
    const appt = await visit('in_progress');
    const socket = await connect(t.url, c.provider.token);
    try {
      expect((await request(socket, 'room:join', { room: `visit:${appt.id}` })).ok).toBe(true);
      const heard = next<{ type: string; payload: Record<string, unknown> }>(socket, 'event', 10_000, (e) => e.type === 'visit.chatMessage');
      const sent = ok(await c.as.patient<{ sendVisitChatMessage: { id: string; senderRole: string; body: string } }>(SEND, { a: appt.id, b: 'My rash is itchier at night', k: 'm-1' })).sendVisitChatMessage;
      expect(sent).toMatchObject({ senderRole: 'patient', body: 'My rash is itchier at night' });
      const ev = await heard;
      expect(ev.payload).toMatchObject({ appointmentId: appt.id, messageId: sent.id, senderRole: 'patient' });
      expect(JSON.stringify(ev.payload)).not.toContain('rash');
    } finally {
      socket.close();
    }
    const again = ok(await c.as.patient<{ sendVisitChatMessage: { id: string } }>(SEND, { a: appt.id, b: 'My rash is itchier at night', k: 'm-1' })).sendVisitChatMessage;
    ok(await c.as.provider(SEND, { a: appt.id, b: 'Since when?', k: 'p-1' }));
    const all = ok(await c.as.provider<{ visitChatMessages: { id: string; cursor: string; senderRole: string; body: string }[] }>(MESSAGES, { a: appt.id })).visitChatMessages;
    expect(all.map((m) => [m.senderRole, m.body])).toEqual([
      ['patient', 'My rash is itchier at night'],
      ['provider', 'Since when?'],
    ]);
    expect(again.id).toBe(all[0]!.id);
    expect(ok(await c.as.patient<{ visitChatMessages: { body: string }[] }>(MESSAGES, { a: appt.id, after: all[0]!.cursor })).visitChatMessages.map((m) => m.body)).toEqual(['Since when?']);
    // stored encrypted
    const [raw] = await t.db.owner<{ body: string }[]>`select body::text from telehealth_chat_messages where id = ${all[0]!.id}`;
    expect(raw!.body).not.toContain('rash');
    // read receipts
    ok(await c.as.patient(READ, { a: appt.id }));
    const reads = ok(await c.as.provider<{ visitChatReads: { userId: string }[] }>(READS, { a: appt.id })).visitChatReads;
    expect(reads.map((r) => r.userId)).toEqual([c.patientUser.user.id]);
  });

  it('is closed before check-in; another tenant gets NOT_FOUND; bad input is refused; nothing is stored', async () => {
    const appt = await visit('scheduled');
    expect(errorOf(await c.as.patient(SEND, { a: appt.id, b: 'hello', k: 'x' })).extensions.reason).toBe('VISIT_NOT_OPEN');
    expect(errorOf(await b.as.provider(MESSAGES, { a: appt.id })).code).toBe('NOT_FOUND');
    expect(errorOf(await b.as.patient(SEND, { a: appt.id, b: 'hello', k: 'x' })).code).toBe('NOT_FOUND');
    const live = await visit('in_progress');
    expect(errorOf(await c.as.patient(SEND, { a: live.id, b: '', k: 'x' })).code).toBe('BAD_USER_INPUT');
    expect(errorOf(await c.as.patient(SEND, { a: live.id, b: 'x'.repeat(4001), k: 'x' })).code).toBe('BAD_USER_INPUT');
    expect(errorOf(await c.as.patient(MESSAGES, { a: live.id, after: 'nope' })).code).toBe('BAD_USER_INPUT');
    expect(await counts(appt.id)).toEqual({ m: 0, v: 0 });
    expect(await counts(live.id)).toEqual({ m: 0, v: 0 });
  });
});

describe('vital signs', () => {
  it('the provider records vitals during the visit with LOINC codes; the patient reads them; out-of-range values are refused', async () => {
    const appt = await visit('in_progress');
    ok(await c.as.provider(VITAL, { i: { appointmentId: appt.id, kind: 'BLOOD_PRESSURE', value: 128, value2: 82, unit: 'mm[Hg]' } }));
    ok(await c.as.provider(VITAL, { i: { appointmentId: appt.id, kind: 'TEMPERATURE', value: 99.1, unit: '[degF]' } }));
    ok(await c.as.provider(VITAL, { i: { appointmentId: appt.id, kind: 'SPO2', value: 97, unit: '%' } }));
    const bad = [
      { kind: 'BLOOD_PRESSURE', value: 128, unit: 'mm[Hg]' }, // no diastolic
      { kind: 'BLOOD_PRESSURE', value: 80, value2: 120, unit: 'mm[Hg]' }, // diastolic above systolic
      { kind: 'HEART_RATE', value: 400, unit: '/min' },
      { kind: 'TEMPERATURE', value: 99.1, unit: 'Cel' }, // 99.1 °C
      { kind: 'WEIGHT', value: 70, unit: 'stone' },
      { kind: 'SPO2', value: 97, value2: 1, unit: '%' },
    ];
    for (const i of bad) expect(errorOf(await c.as.provider(VITAL, { i: { appointmentId: appt.id, ...i } })).code).toBe('BAD_USER_INPUT');
    expect(errorOf(await c.as.patient(VITAL, { i: { appointmentId: appt.id, kind: 'SPO2', value: 97, unit: '%' } })).code).toBe('FORBIDDEN');
    expect(errorOf(await b.as.provider(VITALS, { a: appt.id })).code).toBe('NOT_FOUND');
    const vitals = ok(await c.as.patient<{ visitVitalSigns: unknown[] }>(VITALS, { a: appt.id })).visitVitalSigns;
    expect(vitals).toEqual([
      { kind: 'BLOOD_PRESSURE', loinc: '85354-9', value: 128, value2: 82, unit: 'mm[Hg]' },
      { kind: 'TEMPERATURE', loinc: '8310-5', value: 99.1, value2: null, unit: '[degF]' },
      { kind: 'SPO2', loinc: '59408-5', value: 97, value2: null, unit: '%' },
    ]);
    const scheduled = await visit('scheduled');
    expect(errorOf(await c.as.provider(VITAL, { i: { appointmentId: scheduled.id, kind: 'SPO2', value: 97, unit: '%' } })).extensions.reason).toBe('VISIT_NOT_OPEN');
    expect((await counts(appt.id)).v).toBe(3);
    expect((await counts(scheduled.id)).v).toBe(0);
  });
});
