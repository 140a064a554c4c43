import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import {
  APPOINTMENT_FIELDS,
  BOOK,
  createClinic,
  errorOf,
  FakeClock,
  ok,
  PUBLISH_CONSENT,
  publishConsent,
  RECORD_CONSENT,
  telehealthModules,
  telehealthTestEnv,
  type AppointmentView,
  type Clinic,
} from './helpers.js';

/**
 * Consent over GraphQL: versioned texts per tenant, consents with who, when,
 * which version and from where; a video visit's patient cannot enter the
 * waiting room without the current telehealth consent; a new version makes
 * earlier consents stop counting; withdrawal; staff on behalf; isolation.
 */
const clock = new FakeClock(Date.parse('2030-02-04T08:00:00Z'));
let t: TestApp;
let c: Clinic;
let other: Clinic;

type ConsentView = { id: string; kind: string; version: number; patientId: string | null; userId: string | null; onBehalf: boolean; recordedBy: string; ip: string | null; userAgent: string | null; withdrawnAt: string | null };
const CURRENT = 'query($k: ConsentKind!) { currentConsentText(kind: $k) { id kind version title body } }';
const LIST = 'query($p: UUID) { telehealthConsents(patientId: $p) { id kind version patientId userId onBehalf withdrawnAt } }';
const WITHDRAW = 'mutation($id: UUID!) { withdrawConsent(id: $id) { id withdrawnAt } }';
const WAIT = `mutation($id: UUID!) { enterWaitingRoom(id: $id) { ${APPOINTMENT_FIELDS} } }`;
const CHECK_IN = `mutation($id: UUID!) { checkInAppointment(id: $id) { ${APPOINTMENT_FIELDS} } }`;

beforeAll(async () => {
  t = await startTestApp({ modules: telehealthModules({ now: clock.now }), env: telehealthTestEnv });
  c = await createClinic(t);
  other = await createClinic(t);
}, 180_000);
afterAll(async () => {
  await t?.close();
});

async function consentRows(tenantId: string) {
  const [row] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from telehealth_consents where tenant_id = ${tenantId}`;
  return row!.n;
}

/** A video appointment 40 minutes after the clock (moved on by two hours each time), checked in. */
async function checkedInVisit(): Promise<AppointmentView> {
  clock.advance(120);
  const startsAt = new Date(clock.now() + 40 * 60_000).toISOString();
  const appt = ok(await c.as.frontDesk<{ bookAppointment: AppointmentView }>(BOOK, { i: { patientId: c.patientId, providerId: c.provider.user.id, visitTypeId: c.visitTypeId, startsAt } })).bookAppointment;
  ok(await c.as.patient(CHECK_IN, { id: appt.id }));
  return appt;
}

describe('without a published text', () => {
  it('nothing can be consented to, and a video visit\u2019s waiting room stays closed', async () => {
    expect(errorOf(await c.as.patient(CURRENT, { k: 'TELEHEALTH' })).code).toBe('NOT_FOUND');
    expect(errorOf(await c.as.patient(RECORD_CONSENT, { i: { kind: 'TELEHEALTH', version: 1 } })).code).toBe('NOT_FOUND');
    const appt = await checkedInVisit();
    const err = errorOf(await c.as.patient(WAIT, { id: appt.id }));
    expect([err.code, err.extensions.reason]).toEqual(['FORBIDDEN', 'CONSENT_TEXT_MISSING']);
    expect(await consentRows(c.tenant.id)).toBe(0);
  });
});

describe('telehealth consent', () => {
  let version: number;
  let appt: AppointmentView;

  it('is published by administrators in versions, read by patients', async () => {
    expect(errorOf(await c.as.frontDesk(PUBLISH_CONSENT, { i: { kind: 'TELEHEALTH', title: 'x', body: 'x'.repeat(30) } })).code).toBe('FORBIDDEN');
    expect(errorOf(await c.as.admin(PUBLISH_CONSENT, { i: { kind: 'TELEHEALTH', title: 'short', body: 'too short' } })).extensions.field).toBe('body');
    version = await publishConsent(c);
    expect(version).toBe(1);
    const text = ok(await c.as.patient<{ currentConsentText: { version: number; body: string } }>(CURRENT, { k: 'TELEHEALTH' })).currentConsentText;
    expect(text.version).toBe(1);
    expect(text.body).toMatch(/video visits/);
    // another tenant has its own texts
    expect(errorOf(await other.as.patient(CURRENT, { k: 'TELEHEALTH' })).code).toBe('NOT_FOUND');
  });

  it('is required to enter the waiting room of a video visit', async () => {
    appt = await checkedInVisit();
    const err = errorOf(await c.as.patient(WAIT, { id: appt.id }));
    expect([err.code, err.extensions.reason, err.extensions.version]).toEqual(['FORBIDDEN', 'CONSENT_REQUIRED', 1]);
    const [row] = await t.db.owner<{ status: string }[]>`select status from telehealth_appointments where id = ${appt.id}`;
    expect(row!.status).toBe('checked_in');
  });

  it('records who, when, which version and from where; only the current version; twice is once', async () => {
    const before = await consentRows(c.tenant.id);
    const outdated = errorOf(await c.as.patient(RECORD_CONSENT, { i: { kind: 'TELEHEALTH', version: 0 } }));
    expect([outdated.code, outdated.extensions.reason, outdated.extensions.currentVersion]).toEqual(['CONFLICT', 'CONSENT_VERSION_OUTDATED', 1]);
    expect(await consentRows(c.tenant.id)).toBe(before);
    const requestId = randomUUID();
    const res = await t.gql<{ recordConsent: ConsentView }>(RECORD_CONSENT, { i: { kind: 'TELEHEALTH', version } }, { ...c.patientUser.headers, 'user-agent': 'CarebaseTestBrowser/1.0', 'x-request-id': requestId });
    const consent = ok(res).recordConsent;
    expect(consent).toMatchObject({ kind: 'TELEHEALTH', version: 1, patientId: c.patientId, userId: null, onBehalf: false, recordedBy: `user:${c.patientUser.user.id}`, userAgent: 'CarebaseTestBrowser/1.0', withdrawnAt: null });
    expect(consent.ip).toMatch(/127\.0\.0\.1/);
    const again = ok(await c.as.patient<{ recordConsent: ConsentView }>(RECORD_CONSENT, { i: { kind: 'TELEHEALTH', version } })).recordConsent;
    expect(again.id).toBe(consent.id);
    expect(await consentRows(c.tenant.id)).toBe(before + 1);
    const [audit] = await t.db.owner`select action, outcome, patient_id, resource_type from audit_events where request_id = ${requestId} and resource_type = 'TelehealthConsent'`;
    expect(audit).toEqual({ action: 'create', outcome: 'allowed', patient_id: c.patientId, resource_type: 'TelehealthConsent' });
    expect(ok(await c.as.patient<{ enterWaitingRoom: AppointmentView }>(WAIT, { id: appt.id })).enterWaitingRoom.status).toBe('WAITING');
  });

  it('a new version makes earlier consents stop counting', async () => {
    const v2 = await publishConsent(c);
    expect(v2).toBe(2);
    const next = await checkedInVisit();
    expect(errorOf(await c.as.patient(WAIT, { id: next.id })).extensions).toMatchObject({ reason: 'CONSENT_REQUIRED', version: 2 });
    ok(await c.as.patient(RECORD_CONSENT, { i: { kind: 'TELEHEALTH', version: 2 } }));
    expect(ok(await c.as.patient<{ enterWaitingRoom: AppointmentView }>(WAIT, { id: next.id })).enterWaitingRoom.status).toBe('WAITING');
  });

  it('is withdrawn by the patient and then no longer counts', async () => {
    const mine = ok(await c.as.patient<{ telehealthConsents: ConsentView[] }>(LIST, {})).telehealthConsents;
    const current = mine.find((m) => m.version === 2 && !m.withdrawnAt)!;
    expect(errorOf(await other.as.patient(WITHDRAW, { id: current.id })).code).toBe('NOT_FOUND');
    ok(await c.as.patient(WITHDRAW, { id: current.id }));
    const next = await checkedInVisit();
    expect(errorOf(await c.as.patient(WAIT, { id: next.id })).extensions.reason).toBe('CONSENT_REQUIRED');
  });

  it('is recorded by staff on the patient\u2019s behalf (onBehalf), never for another tenant\u2019s patient', async () => {
    const onBehalf = ok(await c.as.frontDesk<{ recordConsent: ConsentView }>(RECORD_CONSENT, { i: { kind: 'TELEHEALTH', version: 2, patientId: c.patientId } })).recordConsent;
    expect(onBehalf).toMatchObject({ patientId: c.patientId, onBehalf: true, recordedBy: `user:${c.frontDesk.user.id}` });
    expect(errorOf(await c.as.frontDesk(RECORD_CONSENT, { i: { kind: 'TELEHEALTH', version: 2, patientId: other.patientId } })).code).toBe('NOT_FOUND');
    const own = errorOf(await c.as.patient(RECORD_CONSENT, { i: { kind: 'TELEHEALTH', version: 2, patientId: c.otherPatientId } }));
    expect([own.code, own.extensions.reason]).toEqual(['FORBIDDEN', 'PATIENT_ACCESS']);
    // staff read a patient's consents; another tenant reads none
    expect(ok(await c.as.frontDesk<{ telehealthConsents: ConsentView[] }>(LIST, { p: c.patientId })).telehealthConsents.length).toBeGreaterThanOrEqual(3);
    expect(ok(await other.as.frontDesk<{ telehealthConsents: ConsentView[] }>(LIST, { p: c.patientId })).telehealthConsents).toEqual([]);
  });

  it('staff consent for themselves; a recording consent may be limited to one visit of theirs', async () => {
    ok(await c.as.admin(PUBLISH_CONSENT, { i: { kind: 'RECORDING', title: 'Recording', body: 'I agree that this video visit may be recorded.' } }));
    const mine = ok(await c.as.provider<{ recordConsent: ConsentView }>(RECORD_CONSENT, { i: { kind: 'RECORDING', version: 1 } })).recordConsent;
    expect(mine).toMatchObject({ userId: c.provider.user.id, patientId: null, onBehalf: false });
    const appt = await checkedInVisit();
    const forVisit = ok(await c.as.patient<{ recordConsent: ConsentView & { appointmentId: string } }>(RECORD_CONSENT, { i: { kind: 'RECORDING', version: 1, appointmentId: appt.id } })).recordConsent;
    expect(forVisit.appointmentId).toBe(appt.id);
    expect(errorOf(await c.as.patient(RECORD_CONSENT, { i: { kind: 'TELEHEALTH', version: 2, appointmentId: appt.id } })).extensions.field).toBe('appointmentId');
    expect(errorOf(await c.as.frontDesk(RECORD_CONSENT, { i: { kind: 'RECORDING', version: 1, appointmentId: appt.id } })).extensions.field).toBe('appointmentId'); // not a participant
    expect(errorOf(await other.as.patient(RECORD_CONSENT, { i: { kind: 'RECORDING', version: 1, appointmentId: appt.id } })).code).toBe('NOT_FOUND');
  });
});
