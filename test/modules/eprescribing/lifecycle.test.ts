import type { Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { newMessageId } from '../../../src/modules/eprescribing/network/adapter.js';
import { signScriptBody, type PharmacySimulator } from '../../../src/modules/eprescribing/index.js';
import { buildScriptMessage, type ScriptMessage } from '../../../src/modules/eprescribing/script/index.js';
import { withTenant } from '../../../src/platform/db/index.js';
import type { TestApp } from '../../helpers/app.js';
import { createUser, loginAs } from '../../helpers/auth.js';
import { connect, request, until } from '../../helpers/realtime.js';
import {
  CANCEL_RX,
  CHECK_RX,
  CREATE_RX,
  DRUGS,
  SIGN_RX,
  TRANSMIT_RX,
  ScriptedSafety,
  createRxClinic,
  draftInput,
  errorOf,
  gqlAs,
  getRx,
  ok,
  signedRx,
  startRxApp,
  type RxClinic,
  type RxView,
} from './lifecycle-helpers.js';

/**
 * The prescription lifecycle over HTTP against the pharmacy simulator (a
 * real HTTP server speaking SCRIPT 2017071 with signed posts both ways):
 * NewRx -> Status -> RxFill; renewal request -> approval/denial -> response;
 * cancel (approved before dispensing, denied after); change requests; the
 * live events a clinician sees; illegal transitions, bad input, another
 * tenant, an unsigned or malformed inbound message: typed errors, nothing
 * changed.
 */
const safety = new ScriptedSafety();
let t: TestApp;
let sim: PharmacySimulator;
let secret: string;
let c: RxClinic;
let other: RxClinic;
const open: Socket[] = [];
type Ev = { id: string; type: string; aggregateId: string; payload: Record<string, unknown> };

beforeAll(async () => {
  ({ t, sim, secret } = await startRxApp({ safety }));
  c = await createRxClinic(t);
  other = await createRxClinic(t, { npi: '1987654328' });
}, 240_000);
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});
afterAll(async () => {
  await t?.close();
  await sim?.close();
});

async function listen(token: string, room: string): Promise<Ev[]> {
  const socket = await connect(t.url, token);
  open.push(socket);
  const events: Ev[] = [];
  const seen = new Set<string>();
  socket.on('event', (e: Ev) => {
    if (!seen.has(e.id)) events.push(e);
    seen.add(e.id);
  });
  expect(await request(socket, 'room:join', { room })).toMatchObject({ ok: true });
  return events;
}

async function transmitted(over: Record<string, unknown> = {}): Promise<RxView> {
  const rx = await signedRx(c, over);
  return ok(await c.as.provider<{ transmitPrescription: RxView }>(TRANSMIT_RX, { id: rx.id })).transmitPrescription;
}

const scriptMessages = async (tenantId: string) => (await t.db.owner<{ n: number }[]>`select count(*)::int as n from rx_script_messages where tenant_id = ${tenantId}`)[0]!.n;

describe('NewRx -> Status -> RxFill', () => {
  it('draft, check, sign, transmit (accepted by the pharmacy), then dispensed and refilled; a clinician hears each step live', async () => {
    const queue = await listen(c.provider.token, `rxQueue:${c.providerUser.id}`);
    const draft = ok(await c.as.provider<{ createPrescription: RxView }>(CREATE_RX, { i: draftInput(c) })).createPrescription;
    expect(draft).toMatchObject({ status: 'DRAFT', drugDescription: DRUGS.lisinopril.name, quantityUnit: 'TABLET', refills: 2, refillsRemaining: 2 });
    expect(draft.orderNumber).toMatch(/^[0-9a-f]{32}$/);
    const roomEvents = await listen(c.provider.token, `prescription:${draft.id}`);

    // transmitting a draft is an illegal transition: typed, nothing changed
    const early = errorOf(await c.as.provider(TRANSMIT_RX, { id: draft.id }));
    expect(early).toMatchObject({ code: 'INVALID_STATE_TRANSITION', extensions: { from: 'draft', action: 'transmit' } });
    // signing before the check too
    expect(errorOf(await c.as.provider(SIGN_RX, { id: draft.id })).code).toBe('INVALID_STATE_TRANSITION');

    const check = ok(await c.as.provider<{ checkPrescription: { prescription: RxView; alerts: unknown[]; blocking: string[] } }>(CHECK_RX, { id: draft.id })).checkPrescription;
    expect(check).toMatchObject({ prescription: { status: 'CHECKED' }, alerts: [], blocking: [] });
    // the nurse may draft and check, not sign
    expect(errorOf(await c.as.nurse(SIGN_RX, { id: draft.id })).code).toBe('FORBIDDEN');
    const signed = ok(await c.as.provider<{ signPrescription: RxView }>(SIGN_RX, { id: draft.id })).signPrescription;
    expect(signed).toMatchObject({ status: 'SIGNED', epcs: false });
    const sent = ok(await c.as.provider<{ transmitPrescription: RxView }>(TRANSMIT_RX, { id: draft.id })).transmitPrescription;
    expect(sent).toMatchObject({ status: 'ACCEPTED' });
    expect(sent.transmittedAt).toBeTruthy();

    // the pharmacy has it, with everything NewRx carries
    const atPharmacy = sim.prescriptions.get(draft.orderNumber)!;
    expect(atPharmacy.newRx).toMatchObject({
      header: { to: { qualifier: 'P', id: '1234567' }, from: { qualifier: 'D', id: '1234567893' }, prescriberOrderNumber: draft.orderNumber },
      patient: { name: { last: 'Testpatient', first: 'Avery' }, gender: 'F', birthDate: '1961-04-12', phone: '2175550100' },
      prescriber: { npi: '1234567893', name: { last: 'Prescriber' } },
      medication: { description: DRUGS.lisinopril.name, rxnorm: { code: DRUGS.lisinopril.rxcui, qualifier: 'SCD' }, quantity: { value: '30', unitCode: 'C48542' }, numberOfRefills: 2, substitutions: '0' },
    });

    // RxFill: dispensed, one fill
    const fill = await sim.fill(draft.orderNumber);
    expect(fill).toMatchObject({ status: 200, answer: { type: 'Status', code: '010' } });
    let rx = await getRx(c.as.provider, draft.id);
    expect(rx).toMatchObject({ status: 'DISPENSED', fills: 1, refillsRemaining: 2, pharmacyRxNumber: atPharmacy.rxReferenceNumber });
    // a refill
    await sim.fill(draft.orderNumber);
    rx = await getRx(c.as.provider, draft.id);
    expect(rx).toMatchObject({ status: 'DISPENSED', fills: 2, refillsRemaining: 1 });
    expect(rx.history.map((h) => h.action)).toEqual(['create', 'check', 'sign', 'transmit', 'accept', 'fill', 'fill']);
    expect(rx.history.filter((h) => h.action === 'fill').every((h) => h.actor === 'system:pharmacy-network')).toBe(true);
    expect(rx.messages.map((m) => [m.direction, m.messageType, m.answerType])).toEqual([
      ['outbound', 'NewRx', 'Status'],
      ['inbound', 'RxFill', 'Status'],
      ['inbound', 'RxFill', 'Status'],
    ]);

    await until(() => roomEvents.filter((e) => e.type === 'prescription.dispensed').length === 2);
    expect(roomEvents.map((e) => e.type)).toEqual(['prescription.checked', 'prescription.signed', 'prescription.transmitted', 'prescription.accepted', 'prescription.dispensed', 'prescription.dispensed']);
    await until(() => queue.some((e) => e.type === 'prescription.transmitted' && e.aggregateId === draft.id));
    for (const e of roomEvents) expect(JSON.stringify(e.payload)).not.toMatch(/lisinopril|Testpatient|tablet by mouth/i);

    // the patient reads their own prescription; PHI reads are audited
    expect((await getRx(c.as.patient, draft.id)).status).toBe('DISPENSED');
    const audited = await t.db.owner<{ n: number }[]>`select count(*)::int as n from audit_events where tenant_id = ${c.tenant.id} and resource_type = 'Prescription' and resource_id = ${draft.id}`;
    expect(audited[0]!.n).toBeGreaterThan(5);
    // the stored SCRIPT XML is encrypted
    const raw = await t.db.owner<{ xml: Buffer }[]>`select xml from rx_script_messages where prescription_id = ${draft.id}`;
    for (const r of raw) expect(r.xml.toString('latin1')).not.toContain('Testpatient');
  }, 60_000);

  it('an Error from the network puts the prescription in ERROR; it can be transmitted again', async () => {
    const rx = await signedRx(c);
    const events = await listen(c.provider.token, `prescription:${rx.id}`);
    sim.failNext({ code: '900', descriptionCode: '008', description: 'Patient not found' });
    const failed = ok(await c.as.provider<{ transmitPrescription: RxView }>(TRANSMIT_RX, { id: rx.id })).transmitPrescription;
    expect(failed).toMatchObject({ status: 'ERROR', errorCode: '900' });
    await until(() => events.some((e) => e.type === 'prescription.error'));
    const again = ok(await c.as.provider<{ transmitPrescription: RxView }>(TRANSMIT_RX, { id: rx.id })).transmitPrescription;
    expect(again).toMatchObject({ status: 'ACCEPTED', errorCode: null });
  });

  it('no answer from the network: PROVIDER_UNAVAILABLE and nothing changed; the retry is the same NewRx', async () => {
    const rx = await signedRx(c);
    const before = await scriptMessages(c.tenant.id);
    sim.outageNext(503);
    expect(errorOf(await c.as.provider(TRANSMIT_RX, { id: rx.id })).code).toBe('PROVIDER_UNAVAILABLE');
    expect((await getRx(c.as.provider, rx.id)).status).toBe('SIGNED');
    expect(await scriptMessages(c.tenant.id)).toBe(before);
    expect(ok(await c.as.provider<{ transmitPrescription: RxView }>(TRANSMIT_RX, { id: rx.id })).transmitPrescription.status).toBe('ACCEPTED');
  });
});

describe('renewals', () => {
  const PENDING = 'query { myPrescriptionRequests { renewals { id prescriptionId status } changes { id requestCode status options { description quantity } } } }';
  const APPROVE = 'mutation($id: UUID!, $r: Int!) { approvePrescriptionRenewal(id: $id, refills: $r) { id status refillsApproved newPrescriptionId } }';
  const DENY = 'mutation($id: UUID!, $c: PrescriptionDenialReason!, $r: String) { denyPrescriptionRenewal(id: $id, reasonCode: $c, reason: $r) { id status denialCode } }';

  it('the pharmacy asks, the prescriber hears it live and approves: a new prescription, sent as RxRenewalResponse, then filled', async () => {
    const rx = await transmitted({ refills: 0 });
    await sim.fill(rx.orderNumber);
    const queue = await listen(c.provider.token, `rxQueue:${c.providerUser.id}`);
    const delivery = await sim.requestRenewal(rx.orderNumber);
    expect(delivery).toMatchObject({ status: 200, answer: { type: 'Status', code: '010' } });
    await until(() => queue.some((e) => e.type === 'prescription.renewalRequested' && e.aggregateId === rx.id));

    const pending = ok(await c.as.provider<{ myPrescriptionRequests: { renewals: { id: string; prescriptionId: string }[] } }>(PENDING)).myPrescriptionRequests.renewals;
    const req = pending.find((r) => r.prescriptionId === rx.id)!;
    expect(req).toBeTruthy();
    const approved = ok(await c.as.provider<{ approvePrescriptionRenewal: { status: string; newPrescriptionId: string } }>(APPROVE, { id: req.id, r: 3 })).approvePrescriptionRenewal;
    expect(approved).toMatchObject({ status: 'APPROVED', refillsApproved: 3 });
    const renewed = await getRx(c.as.provider, approved.newPrescriptionId);
    expect(renewed).toMatchObject({ status: 'ACCEPTED', renewalOf: rx.id, refills: 3, drugRxcui: DRUGS.lisinopril.rxcui });
    expect(renewed.messages.map((m) => [m.messageType, m.answerType])).toEqual([['RxRenewalResponse', 'Verify']]);
    // the pharmacy holds the renewal under the new order number and fills it
    expect(sim.prescriptions.get(renewed.orderNumber)).toMatchObject({ fillsRemaining: 3 });
    await sim.fill(renewed.orderNumber);
    expect((await getRx(c.as.provider, renewed.id)).status).toBe('DISPENSED');
    // answered once
    expect(errorOf(await c.as.provider(APPROVE, { id: req.id, r: 1 })).extensions.reason).toBe('ALREADY_ANSWERED');
    const original = await getRx(c.as.provider, rx.id);
    expect(original.renewalRequests).toEqual([{ id: req.id, status: 'APPROVED', newPrescriptionId: renewed.id }]);
  }, 60_000);

  it('a denial goes back as RxRenewalResponse Denied with its reason code; only the prescriber answers', async () => {
    const rx = await transmitted();
    await sim.requestRenewal(rx.orderNumber);
    const req = (await getRx(c.as.provider, rx.id)).renewalRequests[0]!;
    expect(errorOf(await c.as.nurse(DENY, { id: req.id, c: 'AM' })).code).toBe('FORBIDDEN');
    const denied = ok(await c.as.provider<{ denyPrescriptionRenewal: { status: string; denialCode: string } }>(DENY, { id: req.id, c: 'AM', r: 'Needs a visit' })).denyPrescriptionRenewal;
    expect(denied).toMatchObject({ status: 'DENIED', denialCode: 'AM' });
    const sent = sim.received.at(-1)!;
    expect(sent).toMatchObject({ type: 'RxRenewalResponse', response: { status: 'Denied', reasonCode: 'AM' }, header: { relatesToMessageId: expect.any(String) } });
  });
});

describe('cancel', () => {
  it('before dispensing: CancelRx, CANCEL_REQUESTED, then CANCELLED by the pharmacy’s CancelRxResponse; no fill afterwards', async () => {
    const rx = await transmitted();
    const events = await listen(c.provider.token, `prescription:${rx.id}`);
    const requested = ok(await c.as.provider<{ cancelPrescription: RxView }>(CANCEL_RX, { id: rx.id, r: 'Wrong strength' })).cancelPrescription;
    expect(requested.status).toBe('CANCEL_REQUESTED');
    await sim.idle();
    expect((await getRx(c.as.provider, rx.id)).status).toBe('CANCELLED');
    await until(() => events.some((e) => e.type === 'prescription.cancelled'));
    // an RxFill for a cancelled prescription is refused (SCRIPT Error, 409) and changes nothing
    const atPharmacy = sim.prescriptions.get(rx.orderNumber)!;
    const fill: ScriptMessage = {
      type: 'RxFill',
      header: { to: atPharmacy.newRx.header.from, from: atPharmacy.newRx.header.to, messageId: newMessageId(), sentTime: new Date().toISOString(), prescriberOrderNumber: rx.orderNumber },
      fillStatus: { status: 'Dispensed' },
      patient: atPharmacy.newRx.patient,
      pharmacy: atPharmacy.newRx.pharmacy,
      prescriber: atPharmacy.newRx.prescriber,
      medicationDispensed: atPharmacy.medication,
    };
    const refused = await sim.deliver(fill);
    expect(refused).toMatchObject({ status: 409, answer: { type: 'Error', code: '900' } });
    expect(await getRx(c.as.provider, rx.id)).toMatchObject({ status: 'CANCELLED', fills: 0 });
  });

  it('after dispensing the pharmacy denies: back to DISPENSED; a never-sent prescription is cancelled at once', async () => {
    const rx = await transmitted();
    await sim.fill(rx.orderNumber);
    expect(ok(await c.as.provider<{ cancelPrescription: RxView }>(CANCEL_RX, { id: rx.id })).cancelPrescription.status).toBe('CANCEL_REQUESTED');
    await sim.idle();
    expect((await getRx(c.as.provider, rx.id)).status).toBe('DISPENSED');
    const draft = ok(await c.as.provider<{ createPrescription: RxView }>(CREATE_RX, { i: draftInput(c) })).createPrescription;
    expect(ok(await c.as.provider<{ cancelPrescription: RxView }>(CANCEL_RX, { id: draft.id })).cancelPrescription.status).toBe('CANCELLED');
    expect(errorOf(await c.as.provider(CANCEL_RX, { id: draft.id })).code).toBe('INVALID_STATE_TRANSITION');
  });
});

describe('change requests', () => {
  const APPROVE = 'mutation($id: UUID!, $o: Int) { approvePrescriptionChange(id: $id, option: $o) { id status chosenIndex } }';
  it('a generic substitution: the prescriber picks a proposed medication, the prescription follows it', async () => {
    const rx = await transmitted();
    const atPharmacy = sim.prescriptions.get(rx.orderNumber)!;
    await sim.requestChange(rx.orderNumber, 'G', [{ ...atPharmacy.medication, description: 'lisinopril 10 MG Oral Tablet (generic B)', ndc: '68180051301', quantity: { ...atPharmacy.medication.quantity, value: '90' }, daysSupply: 90 }]);
    const req = (await getRx(c.as.provider, rx.id)).changeRequests[0]!;
    expect(req).toMatchObject({ status: 'PENDING', requestCode: 'G' });
    expect(errorOf(await c.as.provider(APPROVE, { id: req.id })).extensions.reason).toBe('OPTION_REQUIRED');
    expect(ok(await c.as.provider<{ approvePrescriptionChange: { status: string } }>(APPROVE, { id: req.id, o: 0 })).approvePrescriptionChange).toMatchObject({ status: 'APPROVED', chosenIndex: 0 });
    expect(await getRx(c.as.provider, rx.id)).toMatchObject({ quantity: '90', drugDescription: 'lisinopril 10 MG Oral Tablet (generic B)' });
    expect(sim.prescriptions.get(rx.orderNumber)!.medication.quantity.value).toBe('90');
  });
});

describe('safety alerts before signing', () => {
  it('a major alert blocks the check until it is overridden with a reason; the override is recorded', async () => {
    safety.alerts.set(DRUGS.amoxicillin.rxcui, [
      { key: 'allergy:penicillins:308191', kind: 'allergy', severity: 'major' },
      { key: 'interaction:1:2', kind: 'interaction', severity: 'minor' },
    ]);
    const rx = ok(await c.as.provider<{ createPrescription: RxView }>(CREATE_RX, { i: draftInput(c, { drugRxcui: DRUGS.amoxicillin.rxcui, quantityUnit: 'CAPSULE' }) })).createPrescription;
    const blocked = ok(await c.as.provider<{ checkPrescription: { prescription: RxView; blocking: string[] } }>(CHECK_RX, { id: rx.id })).checkPrescription;
    expect(blocked).toMatchObject({ prescription: { status: 'DRAFT' }, blocking: ['allergy:penicillins:308191'] });
    const noReason = errorOf(await c.as.provider(CHECK_RX, { id: rx.id, o: [{ alertKey: 'allergy:penicillins:308191' }] }));
    expect(noReason).toMatchObject({ code: 'BAD_USER_INPUT', extensions: { reason: 'OVERRIDE_REASON_REQUIRED' } });
    expect(errorOf(await c.as.provider(CHECK_RX, { id: rx.id, o: [{ alertKey: 'made-up', reason: 'x' }] })).extensions.reason).toBe('UNKNOWN_ALERT');
    expect(safety.overrides).toEqual([]);
    const checked = ok(await c.as.provider<{ checkPrescription: { prescription: RxView; blocking: string[] } }>(CHECK_RX, { id: rx.id, o: [{ alertKey: 'allergy:penicillins:308191', reason: 'Tolerated amoxicillin in 2024 without reaction' }] })).checkPrescription;
    expect(checked).toMatchObject({ prescription: { status: 'CHECKED' }, blocking: [] });
    expect(safety.overrides).toEqual([{ prescriptionId: rx.id, key: 'allergy:penicillins:308191', reason: 'Tolerated amoxicillin in 2024 without reaction' }]);
    safety.alerts.delete(DRUGS.amoxicillin.rxcui);
  });
});

describe('bad input and isolation', () => {
  it('unknown drug or patient, a dose outside the drug’s forms, schedule II refills: typed errors', async () => {
    expect(errorOf(await c.as.provider(CREATE_RX, { i: draftInput(c, { drugRxcui: '999999999' }) })).code).toBe('NOT_FOUND');
    expect(errorOf(await c.as.provider(CREATE_RX, { i: draftInput(c, { patientId: '00000000-0000-4000-8000-000000000000' }) })).code).toBe('NOT_FOUND');
    expect(errorOf(await c.as.provider(CREATE_RX, { i: draftInput(c, { quantityUnit: 'MILLILITER' }) })).extensions.reason).toBe('DOSE_FORM_MISMATCH');
    expect(errorOf(await c.as.provider(CREATE_RX, { i: draftInput(c, { drugRxcui: DRUGS.oxycodone.rxcui, refills: 1 }) })).extensions.reason).toBe('SCHEDULE_II_REFILLS');
    expect(errorOf(await c.as.provider(CREATE_RX, { i: draftInput(c, { quantity: '-3' }) })).extensions.reason).toBe('INVALID_QUANTITY');
  });

  it('an id naming no row of the tenant is NOT_FOUND before the patient-access rule answers FORBIDDEN', async () => {
    // a provider of the clinic who is not on the patient's care team
    const outsider = gqlAs(t, (await loginAs(t, await createUser(t, c.tenant, 'PROVIDER'))).headers);
    const random = '00000000-0000-4000-8000-000000000001';
    for (const over of [{ pharmacyId: other.pharmacyId }, { pharmacyId: random }, { prescriberId: other.prescriberId }, { encounterId: random }, { patientId: other.patientId }]) {
      expect(errorOf(await outsider(CREATE_RX, { i: draftInput(c, over) })).code, JSON.stringify(over)).toBe('NOT_FOUND');
    }
    expect(errorOf(await outsider(CREATE_RX, { i: draftInput(c) }))).toMatchObject({ code: 'FORBIDDEN', extensions: { reason: 'PATIENT_ACCESS' } });
    const draft = ok(await c.as.provider<{ createPrescription: RxView }>(CREATE_RX, { i: draftInput(c) })).createPrescription;
    const UPDATE = 'mutation($id: UUID!, $v: Int!, $i: UpdatePrescriptionInput!) { updatePrescription(id: $id, version: $v, input: $i) { id version } }';
    expect(errorOf(await outsider(UPDATE, { id: draft.id, v: draft.version, i: { pharmacyId: other.pharmacyId } })).code).toBe('NOT_FOUND');
    expect(errorOf(await outsider(UPDATE, { id: draft.id, v: draft.version, i: { pharmacyId: c.pharmacyId } }))).toMatchObject({ code: 'FORBIDDEN', extensions: { reason: 'PATIENT_ACCESS' } });
    expect(errorOf(await c.as.provider(UPDATE, { id: draft.id, v: draft.version, i: { pharmacyId: other.pharmacyId } })).code).toBe('NOT_FOUND');
    expect((await getRx(c.as.provider, draft.id)).version).toBe(draft.version);
    expect(errorOf(await outsider('query($p: UUID!) { prescriptions(patientId: $p) { items { id } } }', { p: other.patientId })).code).toBe('NOT_FOUND');
  });

  it('another tenant’s patient, prescription or pharmacy is not found; RLS alone hides the rows', async () => {
    const mine = await signedRx(c);
    expect(errorOf(await other.as.provider(`query($id: UUID!) { prescription(id: $id) { id } }`, { id: mine.id })).code).toBe('NOT_FOUND');
    expect(errorOf(await other.as.provider(TRANSMIT_RX, { id: mine.id })).code).toBe('NOT_FOUND');
    expect(errorOf(await other.as.provider(CREATE_RX, { i: draftInput(other, { patientId: c.patientId }) })).code).toBe('NOT_FOUND');
    expect(errorOf(await other.as.provider(CREATE_RX, { i: draftInput(other, { pharmacyId: c.pharmacyId }) })).code).toBe('NOT_FOUND');
    const seen = await withTenant(t.db.sql, other.tenant.id, async (_db, sql) => sql`select id from rx_prescriptions where id = ${mine.id}`);
    expect(seen).toHaveLength(0);
    const pharmacies = await withTenant(t.db.sql, other.tenant.id, async (_db, sql) => sql`select id from rx_pharmacies where id = ${c.pharmacyId}`);
    expect(pharmacies).toHaveLength(0);
  });

  it('an unsigned, forged or malformed inbound message is refused with 4xx and changes nothing', async () => {
    const rx = await transmitted();
    const atPharmacy = sim.prescriptions.get(rx.orderNumber)!;
    const before = await scriptMessages(c.tenant.id);
    const msg: ScriptMessage = {
      type: 'RxFill',
      header: { to: atPharmacy.newRx.header.from, from: atPharmacy.newRx.header.to, messageId: newMessageId(), sentTime: new Date().toISOString(), prescriberOrderNumber: rx.orderNumber },
      fillStatus: { status: 'Dispensed' },
      patient: atPharmacy.newRx.patient,
      pharmacy: atPharmacy.newRx.pharmacy,
      prescriber: atPharmacy.newRx.prescriber,
      medicationDispensed: atPharmacy.medication,
    };
    const xml = buildScriptMessage(msg);
    const post = (body: string, headers: Record<string, string>) => fetch(`${t.url}/eprescribing/network/inbound`, { method: 'POST', headers: { 'content-type': 'application/xml', ...headers }, body });
    const unsigned = await post(xml, {});
    expect(unsigned.status).toBe(401);
    expect(((await unsigned.json()) as { errors: { extensions: unknown }[] }).errors[0]!.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'SIGNATURE_MISSING' });
    expect((await post(xml, { 'x-script-signature': signScriptBody(xml, 'a-forged-secret-that-is-long-enough-000') })).status).toBe(401);
    expect((await post(xml, { 'x-script-signature': signScriptBody(xml, secret, Date.now() - 3_600_000) })).status).toBe(401);
    const broken = xml.replace(/<Sig>.*?<\/Sig>/, '');
    const malformed = await post(broken, { 'x-script-signature': signScriptBody(broken, secret) });
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { errors: { extensions: unknown }[] }).errors[0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', reason: 'SCRIPT_INVALID' });
    const notXml = '{"hello":1}';
    expect((await fetch(`${t.url}/eprescribing/network/inbound`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-script-signature': signScriptBody(notXml, secret) }, body: notXml })).status).toBeGreaterThanOrEqual(400);
    const unknown = buildScriptMessage({ ...msg, header: { ...msg.header, prescriberOrderNumber: 'ffffffffffffffffffffffffffffffff' } });
    expect((await post(unknown, { 'x-script-signature': signScriptBody(unknown, secret) })).status).toBe(404);
    expect(await scriptMessages(c.tenant.id)).toBe(before);
    expect((await getRx(c.as.provider, rx.id)).status).toBe('ACCEPTED');
    // the same message signed: accepted once; a redelivery gets the same answer and changes nothing more
    const good = await post(xml, { 'x-script-signature': signScriptBody(xml, secret) });
    expect(good.status).toBe(200);
    expect(good.headers.get('content-type')).toContain('application/xml');
    const again = await post(xml, { 'x-script-signature': signScriptBody(xml, secret) });
    expect(again.status).toBe(200);
    expect(await getRx(c.as.provider, rx.id)).toMatchObject({ status: 'DISPENSED', fills: 1 });
  });
});
