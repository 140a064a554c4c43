import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PharmacySimulator } from '../../../src/modules/eprescribing/index.js';
import type { TestApp } from '../../helpers/app.js';
import { CHECK_RX, CREATE_RX, createRxClinic, draftInput, errorOf, ok, startRxApp, type RxClinic, type RxView } from './lifecycle-helpers.js';

/**
 * The module's own safety checks over the curated catalog seed (loaded at boot), through GraphQL: the medication list
 * and allergies a clinic records, medicationSafetyCheck, and the lifecycle's check step with the default safety
 * checks (no test double).
 */
let t: TestApp;
let sim: PharmacySimulator;
let c: RxClinic;
let other: RxClinic;

const RX = {
  warfarin5: '855332',
  fluconazole150: '197698',
  sildenafil20: '312950',
  nitroglycerin04: '198039',
  amoxicillin500: '308191',
  cephalexin500: '197454',
  lisinopril10: '314076',
  amlodipine5: '197361',
  ibuprofen400: '197805',
  ibuprofen600: '197806',
  acetaminophen325: '313782',
  apapCodeine: '993781',
};
const PENICILLIN_CLASS = 'penicillins';

const CREATE_PATIENT = 'mutation($i: CreatePatientInput!) { createPatient(input: $i) { id } }';
const ASSIGN = 'mutation($p: UUID!, $u: UUID!, $r: CareTeamRole!) { assignCareTeamMember(patientId: $p, userId: $u, role: $r) { userId } }';
const ADD_MED = 'mutation($i: PatientMedicationInput!) { addPatientMedication(input: $i) { id version status drug { rxcui name } frequencyPerDay } }';
const SET_MED = 'mutation($id: UUID!, $v: Int!, $s: MedicationStatus!) { setPatientMedicationStatus(id: $id, version: $v, status: $s) { id version status stoppedOn } }';
const MEDS = 'query($p: UUID!, $all: Boolean) { patientMedications(patientId: $p, includeInactive: $all) { id status drug { rxcui } } }';
const ADD_ALLERGY = 'mutation($i: PatientAllergyInput!) { addPatientAllergy(input: $i) { id version allergenName severity status } }';
const SET_ALLERGY = 'mutation($id: UUID!, $v: Int!, $s: AllergyStatus!) { setPatientAllergyStatus(id: $id, version: $v, status: $s) { id version status } }';
const ALLERGIES = 'query($p: UUID!) { patientAllergies(patientId: $p) { id allergenKind allergenCode allergenName severity } }';
const CHECK = 'query($p: UUID!, $d: String!, $a: Float, $f: Int) { medicationSafetyCheck(patientId: $p, drugRxcui: $d, doseAmount: $a, frequencyPerDay: $f) { key kind severity message management codes } }';
const DRUGS_Q = 'query($s: String!) { drugs(search: $s) { rxcui name controlledSchedule } }';

interface Alert {
  key: string;
  kind: string;
  severity: string;
  message: string;
  management: string | null;
  codes: string[];
}

beforeAll(async () => {
  ({ t, sim } = await startRxApp());
  c = await createRxClinic(t);
  other = await createRxClinic(t, { npi: '1987654328' });
}, 240_000);
afterAll(async () => {
  await t?.close();
  await sim?.close();
});

/** A new patient of clinic `c` with its provider on the care team. */
async function patient(dateOfBirth = '1958-02-03'): Promise<string> {
  const id = ok(
    await c.as.admin<{ createPatient: { id: string } }>(CREATE_PATIENT, {
      i: { givenName: 'Sam', familyName: `Safety${'abcdefghij'.split('').sort(() => Math.random() - 0.5).join('')}`, dateOfBirth, sexAtBirth: 'MALE', phones: [{ use: 'MOBILE', number: '+12175550111' }], address: { line1: '1 Main St', city: 'Springfield', state: 'IL', postalCode: '62701', country: 'US' } },
    }),
  ).createPatient.id;
  ok(await c.as.admin(ASSIGN, { p: id, u: c.providerUser.id, r: 'PRIMARY_PROVIDER' }));
  return id;
}

const takes = async (p: string, rxcui: string, over: Record<string, unknown> = {}) => ok(await c.as.provider<{ addPatientMedication: { id: string; version: number } }>(ADD_MED, { i: { patientId: p, drugRxcui: rxcui, sig: 'as directed', ...over } })).addPatientMedication;
const check = async (p: string, rxcui: string, a?: number, f?: number) => ok(await c.as.provider<{ medicationSafetyCheck: Alert[] }>(CHECK, { p, d: rxcui, a, f })).medicationSafetyCheck;

describe('medication catalog (the curated seed)', () => {
  it('finds drugs by generic name prefix; refuses a search too short; patients have no catalog access', async () => {
    const found = ok(await c.as.provider<{ drugs: { rxcui: string; name: string }[] }>(DRUGS_Q, { s: 'warf' })).drugs;
    expect(found.map((d) => d.rxcui)).toEqual(expect.arrayContaining([RX.warfarin5]));
    expect(found.every((d) => d.name.startsWith('warfarin'))).toBe(true);
    expect(ok(await c.as.provider<{ drugs: { controlledSchedule: string }[] }>(DRUGS_Q, { s: 'oxycodone' })).drugs[0]?.controlledSchedule).toBe('CII');
    expect(errorOf(await c.as.provider(DRUGS_Q, { s: 'w' })).code).toBe('BAD_USER_INPUT');
    expect(errorOf(await c.as.patient(DRUGS_Q, { s: 'warf' })).code).toBe('FORBIDDEN');
  });
});

describe('medication list and allergies', () => {
  it('records, lists and stops medications; versions guard concurrent changes; bad input changes nothing', async () => {
    const p = await patient();
    const med = await takes(p, RX.warfarin5, { doseAmount: 1, frequencyPerDay: 1 });
    expect(ok(await c.as.provider<{ patientMedications: { drug: { rxcui: string } }[] }>(MEDS, { p })).patientMedications.map((m) => m.drug.rxcui)).toEqual([RX.warfarin5]);
    expect(errorOf(await c.as.provider(ADD_MED, { i: { patientId: p, drugRxcui: '999999999' } })).code).toBe('NOT_FOUND');
    expect(errorOf(await c.as.provider(ADD_MED, { i: { patientId: p, drugRxcui: RX.amlodipine5, frequencyPerDay: 99 } })).code).toBe('BAD_USER_INPUT');
    expect(errorOf(await c.as.provider(ADD_MED, { i: { patientId: p, drugRxcui: RX.amlodipine5, startedOn: '2026-02-31' } })).code).toBe('BAD_USER_INPUT');
    expect(errorOf(await c.as.provider(SET_MED, { id: med.id, v: med.version + 1, s: 'STOPPED' })).code).toBe('CONFLICT');
    const stopped = ok(await c.as.provider<{ setPatientMedicationStatus: { status: string; version: number; stoppedOn: string } }>(SET_MED, { id: med.id, v: med.version, s: 'STOPPED' })).setPatientMedicationStatus;
    expect(stopped).toMatchObject({ status: 'STOPPED', version: 2 });
    expect(stopped.stoppedOn).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(ok(await c.as.provider<{ patientMedications: unknown[] }>(MEDS, { p })).patientMedications).toEqual([]);
    expect(ok(await c.as.provider<{ patientMedications: unknown[] }>(MEDS, { p, all: true })).patientMedications).toHaveLength(1);
  });

  it('records a medication the catalog does not have as free text; exactly one of drugRxcui and drugText', async () => {
    const p = await patient();
    const Q = 'mutation($i: PatientMedicationInput!) { addPatientMedication(input: $i) { id drug { rxcui } drugText source } }';
    const entry = ok(await c.as.provider<{ addPatientMedication: { drug: unknown; drugText: string; source: string } }>(Q, { i: { patientId: p, drugText: 'Ashwagandha root 300 mg', sig: 'daily', source: 'REPORTED' } })).addPatientMedication;
    expect(entry).toMatchObject({ drug: null, drugText: 'Ashwagandha root 300 mg' });
    expect(errorOf(await c.as.provider(Q, { i: { patientId: p } })).code).toBe('BAD_USER_INPUT');
    expect(errorOf(await c.as.provider(Q, { i: { patientId: p, drugRxcui: RX.warfarin5, drugText: 'warfarin' } })).code).toBe('BAD_USER_INPUT');
    const list = ok(await c.as.provider<{ patientMedications: { drug: unknown }[] }>('query($p: UUID!) { patientMedications(patientId: $p) { drug { rxcui } drugText } }', { p })).patientMedications;
    expect(list).toEqual([{ drug: null, drugText: 'Ashwagandha root 300 mg' }]);
    // free text is not matched by the safety checks
    expect(await check(p, RX.fluconazole150)).toEqual([]);
  });

  it("another tenant's patient or entry is NOT_FOUND; a patient reads only their own list", async () => {
    const p = await patient();
    const med = await takes(p, RX.amlodipine5);
    expect(errorOf(await other.as.provider(MEDS, { p })).code).toBe('NOT_FOUND');
    expect(errorOf(await other.as.provider(ADD_MED, { i: { patientId: p, drugRxcui: RX.amlodipine5 } })).code).toBe('NOT_FOUND');
    expect(errorOf(await other.as.provider(SET_MED, { id: med.id, v: 1, s: 'STOPPED' })).code).toBe('NOT_FOUND');
    expect(errorOf(await other.as.provider(CHECK, { p, d: RX.amlodipine5 })).code).toBe('NOT_FOUND');
    // the clinic's patient account is linked to c.patientId, not to p
    expect(errorOf(await c.as.patient(MEDS, { p })).code).toBe('FORBIDDEN');
    ok(await c.as.patient(MEDS, { p: c.patientId }));
    expect(errorOf(await c.as.patient(ADD_MED, { i: { patientId: c.patientId, drugRxcui: RX.amlodipine5 } })).code).toBe('FORBIDDEN');
    // the list is unchanged by the refusals
    expect(ok(await c.as.provider<{ patientMedications: unknown[] }>(MEDS, { p })).patientMedications).toHaveLength(1);
  });

  it('records drug, ingredient and class allergies by catalog code; a duplicate is CONFLICT, an unknown code BAD_USER_INPUT', async () => {
    const p = await patient();
    const a = ok(await c.as.provider<{ addPatientAllergy: { id: string; version: number; allergenName: string } }>(ADD_ALLERGY, { i: { patientId: p, allergenKind: 'CLASS', allergenCode: PENICILLIN_CLASS, reaction: 'hives', severity: 'MODERATE' } })).addPatientAllergy;
    expect(a.allergenName).toBe('Penicillins');
    expect(errorOf(await c.as.provider(ADD_ALLERGY, { i: { patientId: p, allergenKind: 'CLASS', allergenCode: PENICILLIN_CLASS, severity: 'MILD' } })).code).toBe('CONFLICT');
    expect(errorOf(await c.as.provider(ADD_ALLERGY, { i: { patientId: p, allergenKind: 'INGREDIENT', allergenCode: '99999999', severity: 'MILD' } })).code).toBe('BAD_USER_INPUT');
    expect(ok(await c.as.provider<{ patientAllergies: unknown[] }>(ALLERGIES, { p })).patientAllergies).toHaveLength(1);
    ok(await c.as.provider(SET_ALLERGY, { id: a.id, v: a.version, s: 'ENTERED_IN_ERROR' }));
    expect(ok(await c.as.provider<{ patientAllergies: unknown[] }>(ALLERGIES, { p })).patientAllergies).toHaveLength(0);
    expect(await check(p, RX.amoxicillin500)).toEqual([]);
  });
});

describe('safety checks (medicationSafetyCheck)', () => {
  it('warfarin + fluconazole: a major interaction, found by ingredient', async () => {
    const p = await patient();
    await takes(p, RX.warfarin5);
    const alerts = await check(p, RX.fluconazole150);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ kind: 'interaction', severity: 'major', codes: expect.arrayContaining(['11289', '4450']) });
    expect(alerts[0]!.message).toContain('CYP2C9');
    expect(alerts[0]!.management).toBeTruthy();
  });

  it('sildenafil + nitroglycerin: contraindicated, whichever is prescribed second', async () => {
    const p = await patient();
    await takes(p, RX.nitroglycerin04);
    expect((await check(p, RX.sildenafil20)).map((a) => [a.kind, a.severity])).toEqual([['interaction', 'contraindicated']]);
    const q = await patient();
    await takes(q, RX.sildenafil20);
    expect((await check(q, RX.nitroglycerin04)).map((a) => [a.kind, a.severity])).toEqual([['interaction', 'contraindicated']]);
  });

  it('a penicillin allergy: amoxicillin alerts (class), cephalexin a lower cross-sensitivity alert, lisinopril nothing', async () => {
    const p = await patient();
    ok(await c.as.provider(ADD_ALLERGY, { i: { patientId: p, allergenKind: 'CLASS', allergenCode: PENICILLIN_CLASS, reaction: 'hives', severity: 'MODERATE' } }));
    const amox = await check(p, RX.amoxicillin500);
    expect(amox.map((a) => [a.key, a.kind, a.severity])).toEqual([[`allergy:${PENICILLIN_CLASS}:${RX.amoxicillin500}`, 'allergy', 'major']]);
    const keflex = await check(p, RX.cephalexin500);
    expect(keflex.map((a) => [a.kind, a.severity])).toEqual([['allergy', 'moderate']]);
    expect(keflex[0]!.message).toContain('cross-sensitivity');
    expect(await check(p, RX.lisinopril10)).toEqual([]);
    // a life-threatening reaction makes the same drug contraindicated
    const q = await patient();
    ok(await c.as.provider(ADD_ALLERGY, { i: { patientId: q, allergenKind: 'INGREDIENT', allergenCode: '723', reaction: 'anaphylaxis', severity: 'LIFE_THREATENING' } }));
    expect((await check(q, RX.amoxicillin500)).map((a) => a.severity)).toEqual(['contraindicated']);
  });

  it('a safe pair raises nothing; duplicate therapy (same ingredient) is major', async () => {
    const p = await patient();
    await takes(p, RX.amlodipine5);
    expect(await check(p, RX.lisinopril10)).toEqual([]);
    await takes(p, RX.ibuprofen400);
    expect((await check(p, RX.ibuprofen600)).map((a) => [a.kind, a.severity])).toEqual([['duplicate_therapy', 'major']]);
  });

  it('dose: acetaminophen above 4 g a day; age: codeine for a child under 12 is contraindicated', async () => {
    const p = await patient();
    expect(await check(p, RX.acetaminophen325, 2, 4)).toEqual([]); // 2,600 mg
    expect((await check(p, RX.acetaminophen325, 4, 4)).map((a) => [a.kind, a.severity])).toEqual([['dose', 'major']]); // 5,200 mg
    const child = await patient('2018-06-01');
    const alerts = await check(child, RX.apapCodeine, 1, 4);
    expect(alerts.map((a) => [a.kind, a.severity])).toEqual([['age', 'contraindicated']]);
    expect(errorOf(await c.as.provider(CHECK, { p, d: RX.acetaminophen325, a: -1, f: 4 })).code).toBe('BAD_USER_INPUT');
  });

  it('dose: warfarin above 10 mg a day is moderate, above 15 mg a day major', async () => {
    const p = await patient();
    expect(await check(p, RX.warfarin5, 2, 1)).toEqual([]); // 10 mg
    expect((await check(p, RX.warfarin5, 3, 1)).map((a) => [a.kind, a.severity])).toEqual([['dose', 'moderate']]); // 15 mg
    expect((await check(p, RX.warfarin5, 2, 2)).map((a) => [a.kind, a.severity])).toEqual([['dose', 'major']]); // 20 mg
  });
});

describe('the lifecycle check step with the module’s own safety checks', () => {
  it('blocks a fluconazole prescription for a warfarin patient until overridden with a reason, recorded and audited', async () => {
    const p = await patient();
    await takes(p, RX.warfarin5);
    const rx = ok(await c.as.provider<{ createPrescription: RxView }>(CREATE_RX, { i: draftInput(c, { patientId: p, drugRxcui: RX.fluconazole150, quantity: '1', refills: 0, sig: 'Take 1 tablet by mouth once' }) })).createPrescription;
    const blocked = ok(await c.as.provider<{ checkPrescription: { prescription: RxView; alerts: { key: string; severity: string }[]; blocking: string[] } }>(CHECK_RX, { id: rx.id })).checkPrescription;
    expect(blocked.prescription.status).toBe('DRAFT');
    expect(blocked.blocking).toHaveLength(1);
    const key = blocked.blocking[0]!;
    expect(key).toMatch(/^interaction:/);
    expect(errorOf(await c.as.provider(CHECK_RX, { id: rx.id, o: [{ alertKey: key }] })).extensions.reason).toBe('OVERRIDE_REASON_REQUIRED');
    const reason = 'Single 150 mg dose; INR check booked in 3 days';
    const checked = ok(await c.as.provider<{ checkPrescription: { prescription: RxView } }>(CHECK_RX, { id: rx.id, o: [{ alertKey: key, reason }] })).checkPrescription;
    expect(checked.prescription.status).toBe('CHECKED');
    const rows = await t.db.owner<{ alert_key: string; severity: string; reason: string }[]>`select alert_key, severity, reason from rx_alert_overrides where prescription_id = ${rx.id}`;
    expect(rows).toEqual([{ alert_key: key, severity: 'major', reason }]);
    const audit = await t.db.owner<{ detail: Record<string, unknown> }[]>`select detail from audit_events where resource_type = 'SafetyAlertOverride' and resource_id = ${rx.id}`;
    expect(audit).toHaveLength(1);
    expect(JSON.stringify(audit[0]!.detail)).not.toContain('INR'); // the reason stays in its table
  });

  it('a moderate alert (cephalosporin with a penicillin allergy) does not block; acknowledging it needs no reason and is recorded', async () => {
    // one patient per prescription: a checked cephalexin is in flight and would make a second one a duplicate
    const draft = async () => {
      const p = await patient();
      ok(await c.as.provider(ADD_ALLERGY, { i: { patientId: p, allergenKind: 'CLASS', allergenCode: PENICILLIN_CLASS, reaction: 'rash', severity: 'MILD' } }));
      return c.as.provider<{ createPrescription: RxView }>(CREATE_RX, { i: draftInput(c, { patientId: p, drugRxcui: RX.cephalexin500, quantity: '28', refills: 0, sig: 'Take 1 capsule by mouth 4 times a day for 7 days' }) });
    };
    const plain = ok(await draft()).createPrescription;
    const res = ok(await c.as.provider<{ checkPrescription: { prescription: RxView; alerts: { key: string; severity: string; needsReason: boolean; overridden: boolean }[]; blocking: string[] } }>(CHECK_RX, { id: plain.id })).checkPrescription;
    expect(res.prescription.status).toBe('CHECKED');
    expect(res.blocking).toEqual([]);
    expect(res.alerts.map((a) => [a.severity, a.needsReason, a.overridden])).toEqual([['moderate', false, false]]);
    const acked = ok(await draft()).createPrescription;
    const key = res.alerts[0]!.key; // keys name codes, not the patient
    const ack = ok(await c.as.provider<{ checkPrescription: { prescription: RxView; alerts: { overridden: boolean }[] } }>(CHECK_RX, { id: acked.id, o: [{ alertKey: key }] })).checkPrescription;
    expect(ack.prescription.status).toBe('CHECKED');
    expect(ack.alerts.map((a) => a.overridden)).toEqual([true]);
    const rows = await t.db.owner<{ alert_key: string; severity: string; reason: string | null }[]>`select alert_key, severity, reason from rx_alert_overrides where prescription_id = ${acked.id}`;
    expect(rows).toEqual([{ alert_key: key, severity: 'moderate', reason: null }]);
  });
});
