import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EPCS_ATTESTATION_SHA256, EPCS_TENANT_REPORT_JOB, type PharmacySimulator } from '../../../src/modules/eprescribing/index.js';
import { fanOutDailyReports } from '../../../src/modules/eprescribing/epcs.js';
import type { TestApp } from '../../helpers/app.js';
import { createUser, loginAs, nextTotpCode, type AuthSession } from '../../helpers/auth.js';
import { until } from '../../helpers/realtime.js';
import { CHECK_RX, CREATE_RX, DRUGS, ScriptedSafety, SIGN_RX, TRANSMIT_RX, createRxClinic, draftInput, errorOf, getRx, gqlAs, ok, startRxApp, type Gql, type RxClinic, type RxView } from './lifecycle-helpers.js';

/**
 * EPCS (21 CFR 1311) over HTTP: a controlled substance is refused without a
 * DEA registration for its schedule, without logical access granted by two
 * different administrators, without the attestation, without both factors
 * (password + a never-used TOTP code); accepted with them. The signature
 * verifies, a change to the signed content is detected, the NewRx carries it;
 * every refusal is logged durably; the daily report counts it all; no
 * refills on schedule II.
 */

/** The identity clock: real time plus an offset, so each signature can use a fresh TOTP step. */
const clock = { offset: 0, now: () => Date.now() + clock.offset };
const identityNow = () => new Date(clock.now());

let t: TestApp;
let sim: PharmacySimulator;
let c: RxClinic;
let admin2: AuthSession;
let as2: Gql;

beforeAll(async () => {
  ({ t, sim } = await startRxApp({ safety: new ScriptedSafety() }, { now: identityNow }));
  c = await createRxClinic(t);
  admin2 = await loginAs(t, await createUser(t, c.tenant, 'ADMIN'));
  as2 = gqlAs(t, admin2.headers);
}, 240_000);
afterAll(async () => {
  await t?.close();
  await sim?.close();
});

const ADD_DEA = 'mutation($i: DeaRegistrationInput!) { addDeaRegistration(input: $i) { id deaNumber schedules } }';
const APPROVE = 'mutation($p: UUID!) { approveEpcsAccess(prescriberId: $p) { id status firstApproverId secondApproverId } }';
const REVOKE = 'mutation($p: UUID!) { revokeEpcsAccess(prescriberId: $p) { status } }';
const VERIFY = 'query($id: UUID!) { verifyPrescriptionSignature(id: $id) { valid reason keyFingerprint signedAt } }';
const ATTESTATION = 'query { epcsAttestation { text sha256 } }';
const STATUS = 'query($p: UUID!) { epcsStatus(prescriberId: $p) { access { status } registrations { deaNumber schedules } signingKeyFingerprint } }';

/** Two factors of the provider: the password and the TOTP code of a step never used (the identity clock moves one step on). */
function factors(over: { password?: string; totpCode?: string; attestationSha256?: string } = {}) {
  clock.offset += 30_000;
  const code = nextTotpCode(c.providerUser, clock.now());
  return { password: c.providerUser.password, totpCode: code, attestationSha256: EPCS_ATTESTATION_SHA256, ...over };
}

async function checked(drug: (typeof DRUGS)[keyof typeof DRUGS], refills = 0): Promise<RxView> {
  const rx = ok(await c.as.provider<{ createPrescription: RxView }>(CREATE_RX, { i: draftInput(c, { drugRxcui: drug.rxcui, refills, quantity: '12' }) })).createPrescription;
  return ok(await c.as.provider<{ checkPrescription: { prescription: RxView } }>(CHECK_RX, { id: rx.id })).checkPrescription.prescription;
}

const refusals = async () => (await t.db.owner<{ reason: string }[]>`select detail->>'reason' as reason from rx_epcs_log where tenant_id = ${c.tenant.id} and outcome = 'denied' and event = 'sign_refused' order by at, id`).map((r) => r.reason);

describe('EPCS', () => {
  it('refused without DEA schedule, without two-admin access, without attestation or two factors; accepted with them; the signature verifies and travels with the NewRx', async () => {
    const attestation = ok(await c.as.provider<{ epcsAttestation: { text: string; sha256: string } }>(ATTESTATION)).epcsAttestation;
    expect(attestation.text).toMatch(/^By completing the two-factor authentication protocol/);
    expect(attestation.sha256).toBe(EPCS_ATTESTATION_SHA256);

    const rx = await checked(DRUGS.alprazolam, 2);
    expect(rx).toMatchObject({ status: 'CHECKED', controlledSchedule: 'CIV' });
    // no DEA registration
    expect(errorOf(await c.as.provider(SIGN_RX, { id: rx.id, e: factors() }))).toMatchObject({ code: 'FORBIDDEN', extensions: { reason: 'EPCS_NO_DEA_SCHEDULE' } });
    // a registration that does not cover schedule IV
    ok(await c.as.admin(ADD_DEA, { i: { prescriberId: c.prescriberId, deaNumber: 'BP1234563', schedules: ['CII'], state: 'IL', expiresOn: '2031-01-31' } }));
    expect(errorOf(await c.as.provider(SIGN_RX, { id: rx.id, e: factors() })).extensions.reason).toBe('EPCS_NO_DEA_SCHEDULE');
    ok(await c.as.admin(ADD_DEA, { i: { prescriberId: c.prescriberId, deaNumber: 'AP1234563', schedules: ['CIII', 'CIV', 'CV'], state: 'IL', expiresOn: '2031-01-31' } }));
    // bad registrations are refused
    expect(errorOf(await c.as.admin(ADD_DEA, { i: { prescriberId: c.prescriberId, deaNumber: 'AP1234564', schedules: ['CIV'], state: 'IL', expiresOn: '2031-01-31' } })).extensions.reason).toBe('INVALID_DEA_NUMBER');
    expect(errorOf(await c.as.admin(ADD_DEA, { i: { prescriberId: c.prescriberId, deaNumber: 'AB1234563', schedules: ['CIV'], state: 'IL', expiresOn: '2031-01-31' } })).extensions.reason).toBe('DEA_NAME_MISMATCH');

    // access not granted (then only one administrator)
    expect(errorOf(await c.as.provider(SIGN_RX, { id: rx.id, e: factors() })).extensions.reason).toBe('EPCS_ACCESS_NOT_GRANTED');
    expect(errorOf(await c.as.provider(APPROVE, { p: c.prescriberId })).code).toBe('FORBIDDEN');
    expect(ok(await c.as.admin<{ approveEpcsAccess: { status: string } }>(APPROVE, { p: c.prescriberId })).approveEpcsAccess.status).toBe('PENDING');
    expect(errorOf(await c.as.admin(APPROVE, { p: c.prescriberId })).extensions.reason).toBe('SAME_APPROVER');
    expect(errorOf(await c.as.provider(SIGN_RX, { id: rx.id, e: factors() })).extensions.reason).toBe('EPCS_ACCESS_NOT_GRANTED');
    const active = ok(await as2<{ approveEpcsAccess: { status: string; firstApproverId: string; secondApproverId: string } }>(APPROVE, { p: c.prescriberId })).approveEpcsAccess;
    expect(active).toMatchObject({ status: 'ACTIVE', firstApproverId: c.tenant.admin.id, secondApproverId: admin2.user.id });

    // the attestation and both factors
    expect(errorOf(await c.as.provider(SIGN_RX, { id: rx.id })).extensions.reason).toBe('EPCS_TWO_FACTOR_REQUIRED');
    expect(errorOf(await c.as.provider(SIGN_RX, { id: rx.id, e: factors({ attestationSha256: '0'.repeat(64) }) })).extensions.reason).toBe('EPCS_ATTESTATION_REQUIRED');
    expect(errorOf(await c.as.provider(SIGN_RX, { id: rx.id, e: factors({ password: 'not-the-password-at-all' }) })).extensions.reason).toBe('EPCS_TWO_FACTOR_FAILED');
    expect(errorOf(await c.as.provider(SIGN_RX, { id: rx.id, e: factors({ totpCode: '000000' }) })).extensions.reason).toBe('EPCS_TWO_FACTOR_FAILED');
    // an ordinary prescription needs no second factor
    ok(await c.as.provider(SIGN_RX, { id: (await checked(DRUGS.lisinopril)).id }));
    expect((await getRx(c.as.provider, rx.id)).status).toBe('CHECKED');

    const signed = ok(await c.as.provider<{ signPrescription: RxView }>(SIGN_RX, { id: rx.id, e: factors() })).signPrescription;
    expect(signed).toMatchObject({ status: 'SIGNED', epcs: true });
    expect(errorOf(await c.as.provider(SIGN_RX, { id: rx.id, e: factors() })).code).toBe('INVALID_STATE_TRANSITION');

    // every refusal is in the EPCS log although its request rolled back, and in the audit trail
    expect(await refusals()).toEqual([
      'EPCS_NO_DEA_SCHEDULE',
      'EPCS_NO_DEA_SCHEDULE',
      'EPCS_ACCESS_NOT_GRANTED',
      'EPCS_ACCESS_NOT_GRANTED',
      'EPCS_TWO_FACTOR_REQUIRED',
      'EPCS_ATTESTATION_REQUIRED',
      'EPCS_TWO_FACTOR_FAILED',
      'EPCS_TWO_FACTOR_FAILED',
    ]);
    const audited = await t.db.owner<{ n: number }[]>`select count(*)::int as n from audit_events where tenant_id = ${c.tenant.id} and action = 'epcs_sign_refused' and outcome = 'denied'`;
    expect(audited[0]!.n).toBe(8);
    const reauthFailures = await t.db.owner<{ n: number }[]>`select count(*)::int as n from security_events where tenant_id = ${c.tenant.id} and type = 'reauth.failed'`;
    expect(reauthFailures[0]!.n).toBe(2);

    // the signature verifies with the prescriber's public key; the private key is stored encrypted
    const check = ok(await c.as.provider<{ verifyPrescriptionSignature: { valid: boolean; keyFingerprint: string } }>(VERIFY, { id: rx.id })).verifyPrescriptionSignature;
    expect(check).toMatchObject({ valid: true, reason: null });
    const status = ok(await c.as.admin<{ epcsStatus: { access: { status: string }; signingKeyFingerprint: string } }>(STATUS, { p: c.prescriberId })).epcsStatus;
    expect(status).toMatchObject({ access: { status: 'ACTIVE' }, signingKeyFingerprint: check.keyFingerprint });
    const keys = await t.db.owner<{ private_key: Buffer; public_key: string }[]>`select private_key, public_key from rx_signing_keys where tenant_id = ${c.tenant.id}`;
    expect(keys).toHaveLength(1);
    expect(keys[0]!.public_key).toContain('BEGIN PUBLIC KEY');
    expect(keys[0]!.private_key.toString('latin1')).not.toContain('PRIVATE KEY');

    // transmitted with its digital signature and the DEA number of the registration used
    const sent = ok(await c.as.provider<{ transmitPrescription: RxView }>(TRANSMIT_RX, { id: rx.id })).transmitPrescription;
    expect(sent.status).toBe('ACCEPTED');
    const newRx = sim.prescriptions.get(rx.orderNumber)!.newRx;
    expect(newRx.header.digitalSignature).toMatchObject({ indicator: true, digestMethod: 'SHA256', signatureValue: expect.any(String), digestValue: expect.any(String) });
    expect(newRx.prescriber.deaNumber).toBe('AP1234563');
    expect(newRx.medication.deaSchedule).toBe('CIV');
  }, 120_000);

  it('tampering with the signed content or the signature is detected', async () => {
    const rx = await checked(DRUGS.alprazolam);
    const once = factors();
    ok(await c.as.provider(SIGN_RX, { id: rx.id, e: once }));
    // the same one-time code again (another prescription) is refused: codes are single use
    const second = await checked(DRUGS.alprazolam);
    expect(errorOf(await c.as.provider(SIGN_RX, { id: second.id, e: once })).extensions.reason).toBe('EPCS_TWO_FACTOR_FAILED');
    expect(ok(await c.as.provider<{ verifyPrescriptionSignature: { valid: boolean } }>(VERIFY, { id: rx.id })).verifyPrescriptionSignature.valid).toBe(true);
    await t.db.owner`update rx_prescriptions set quantity = '120' where id = ${rx.id}`;
    expect(ok(await c.as.provider(VERIFY, { id: rx.id }))).toEqual({ verifyPrescriptionSignature: { valid: false, reason: 'DIGEST_MISMATCH', keyFingerprint: expect.any(String), signedAt: expect.any(String) } });
    await t.db.owner`update rx_prescriptions set quantity = '12' where id = ${rx.id}`;
    expect(ok(await c.as.provider<{ verifyPrescriptionSignature: { valid: boolean } }>(VERIFY, { id: rx.id })).verifyPrescriptionSignature.valid).toBe(true);
    // a signature made with another key, or altered
    const [other] = await t.db.owner<{ signature: string }[]>`select signature from rx_prescriptions where epcs and id <> ${rx.id} limit 1`;
    await t.db.owner`update rx_prescriptions set signature = ${other!.signature} where id = ${rx.id}`;
    expect(ok(await c.as.provider<{ verifyPrescriptionSignature: { reason: string } }>(VERIFY, { id: rx.id })).verifyPrescriptionSignature).toMatchObject({ valid: false, reason: 'SIGNATURE_INVALID' });
    const log = await t.db.owner<{ event: string }[]>`select event from rx_epcs_log where prescription_id = ${rx.id} order by at, id`;
    expect(log.map((l) => l.event)).toEqual(['signed', 'signature_verified', 'signature_invalid', 'signature_verified', 'signature_invalid']);
  }, 60_000);

  it('schedule II: no refills (at writing and at signing); signed with a CII registration', async () => {
    expect(errorOf(await c.as.provider(CREATE_RX, { i: draftInput(c, { drugRxcui: DRUGS.oxycodone.rxcui, refills: 1 }) })).extensions.reason).toBe('SCHEDULE_II_REFILLS');
    const rx = await checked(DRUGS.oxycodone, 0);
    const signed = ok(await c.as.provider<{ signPrescription: RxView }>(SIGN_RX, { id: rx.id, e: factors() })).signPrescription;
    expect(signed).toMatchObject({ status: 'SIGNED', epcs: true, refills: 0 });
    ok(await c.as.provider(TRANSMIT_RX, { id: rx.id }));
    expect(sim.prescriptions.get(rx.orderNumber)!.newRx.prescriber.deaNumber).toBe('BP1234563');
    // the database refuses a schedule II refill too
    await expect(t.db.owner`update rx_prescriptions set refills = 1, refills_remaining = 1 where id = ${rx.id}`).rejects.toThrow(/rx_prescriptions_cii_refills_check/);
  }, 60_000);

  it('revoked access stops signing at once; the daily report counts the day', async () => {
    const rx = await checked(DRUGS.alprazolam);
    expect(ok(await as2<{ revokeEpcsAccess: { status: string } }>(REVOKE, { p: c.prescriberId })).revokeEpcsAccess.status).toBe('REVOKED');
    expect(errorOf(await c.as.provider(SIGN_RX, { id: rx.id, e: factors() })).extensions.reason).toBe('EPCS_ACCESS_NOT_GRANTED');

    const day = new Date().toISOString().slice(0, 10);
    const report = ok(
      await c.as.admin<{ epcsActivityReport: { counts: Record<string, number>; signed: { schedule: string }[]; refusals: number; entries: unknown[] } }>(
        'query($d: String!) { epcsActivityReport(day: $d) { counts signed { prescriptionId schedule } refusals entries { event outcome } } }',
        { d: day },
      ),
    ).epcsActivityReport;
    expect(report.counts).toMatchObject({ 'signed:allowed': 3, 'access_activated:allowed': 1, 'access_revoked:allowed': 1, 'dea_registered:allowed': 2, 'key_created:allowed': 1, 'sign_refused:denied': 10 });
    expect(report.signed.map((s) => s.schedule).sort()).toEqual(['CII', 'CIV', 'CIV']);
    expect(errorOf(await c.as.provider('query($d: String!) { epcsActivityReport(day: $d) { refusals } }', { d: day })).code).toBe('FORBIDDEN');
    expect(errorOf(await c.as.admin('query($d: String!) { epcsActivityReport(day: $d) { refusals } }', { d: '2026-02-30' })).code).toBe('BAD_USER_INPUT');

    // the schedule's fan-out: one tenant job per tenant with activity, run by the inline worker in the tenant's scope
    expect(await fanOutDailyReports(t.app.database, day)).toBeGreaterThanOrEqual(1);
    await until(async () => (await t.db.owner`select 1 from rx_epcs_reports where tenant_id = ${c.tenant.id} and day = ${day}`).length === 1, 20_000);
    const stored = ok(await c.as.admin<{ epcsDailyReports: { refusals: number; counts: Record<string, number> }[] }>('query($f: String!, $t: String!) { epcsDailyReports(from: $f, to: $t) { day refusals counts generatedAt } }', { f: day, t: day })).epcsDailyReports;
    expect(stored).toHaveLength(1);
    expect(stored[0]!.refusals).toBeGreaterThanOrEqual(10);
    const jobAudit = await t.db.owner<{ actor_type: string; actor_id: string }[]>`select actor_type, actor_id from audit_events where tenant_id = ${c.tenant.id} and resource_type = 'EpcsReport' and action = 'create'`;
    expect(jobAudit).toEqual([{ actor_type: 'system', actor_id: `system:${EPCS_TENANT_REPORT_JOB}` }]);
  }, 60_000);
});
