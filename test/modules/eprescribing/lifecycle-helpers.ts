import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import accessModule from '../../../src/modules/access/index.js';
import auditModule from '../../../src/modules/audit/index.js';
import { createEprescribingModule, PharmacySimulator, TEST_PHARMACIES, type EprescribingOptions, type PrescriptionSafety, type SafetyAlertRef } from '../../../src/modules/eprescribing/index.js';
import { createIdentityModule, type IdentityOptions } from '../../../src/modules/identity/index.js';
import patientsModule from '../../../src/modules/patients/index.js';
import type { ModuleManifest } from '../../../src/schema/index.js';
import { startTestApp, type GqlResponse, type TestApp } from '../../helpers/app.js';
import { adminSession, createTenantWithAdmin, createUser, loginAs, type AuthSession, type TestTenant, type TestUser } from '../../helpers/auth.js';

/** Test drugs (RxNorm SCD concepts; written to the global catalog as the owner, like the seed loader). */
export const DRUGS = {
  lisinopril: { rxcui: '314076', name: 'lisinopril 10 MG Oral Tablet', doseForm: 'Oral Tablet', route: 'oral', schedule: null },
  amoxicillin: { rxcui: '308191', name: 'amoxicillin 500 MG Oral Capsule', doseForm: 'Oral Capsule', route: 'oral', schedule: null },
  oxycodone: { rxcui: '1049621', name: 'oxycodone hydrochloride 5 MG Oral Tablet', doseForm: 'Oral Tablet', route: 'oral', schedule: 'CII' },
  alprazolam: { rxcui: '308047', name: 'alprazolam 0.25 MG Oral Tablet', doseForm: 'Oral Tablet', route: 'oral', schedule: 'CIV' },
} as const;

export async function seedDrugs(t: TestApp): Promise<void> {
  for (const d of Object.values(DRUGS)) {
    await t.db.owner`insert into rx_drugs (rxcui, name, tty, dose_form, route, dea_schedule) values (${d.rxcui}, ${d.name}, 'SCD', ${d.doseForm}, ${d.route}, ${d.schedule}) on conflict (rxcui) do nothing`;
  }
}

/**
 * The lifecycle's safety port in these tests: alerts per drug as the test
 * sets them; overrides recorded. (The module's own safety checks are tested
 * with the catalog; here the lifecycle's handling of their alerts is.)
 */
export class ScriptedSafety implements PrescriptionSafety {
  alerts = new Map<string, SafetyAlertRef[]>();
  overrides: { prescriptionId: string; key: string; reason: string | null }[] = [];
  async check(_scope: unknown, input: { drugRxcui: string }) {
    return this.alerts.get(input.drugRxcui) ?? [];
  }
  async override(_scope: unknown, input: { prescriptionId: string; alert: SafetyAlertRef; reason: string | null }) {
    this.overrides.push({ prescriptionId: input.prescriptionId, key: input.alert.key, reason: input.reason });
  }
}

export const rxModules = (options: EprescribingOptions = {}, identity: IdentityOptions = {}): ModuleManifest[] => [createIdentityModule(identity), accessModule, auditModule, patientsModule, createEprescribingModule(options)];

export const rxTestEnv = {
  RATE_LIMIT_AUTH_IP_PER_MINUTE: '100000',
  RATE_LIMIT_ANON_IP_PER_MINUTE: '100000',
  RATE_LIMIT_USER_PER_MINUTE: '100000',
  RATE_LIMIT_STORE: 'memory',
  LOAD_SHED_EVENT_LOOP_DELAY_MS: '0',
  JOB_WORKERS: 'inline',
};

export type Gql = <T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>) => Promise<GqlResponse<T>>;
export const gqlAs = (t: TestApp, headers: Record<string, string>): Gql => (query, variables) => t.gql(query, variables, headers);

export function ok<T>(res: GqlResponse<T>): T {
  expect(res.body.errors, JSON.stringify(res.body.errors)).toBeUndefined();
  return res.body.data as T;
}
export function errorOf(res: GqlResponse): { code: unknown; message: string; extensions: Record<string, unknown> } {
  expect(res.body.errors?.length, JSON.stringify(res.body)).toBeGreaterThan(0);
  const e = res.body.errors![0]!;
  return { code: e.extensions?.code, message: e.message, extensions: e.extensions ?? {} };
}

/** A pharmacy simulator and an app whose PHARMACY_NETWORK_URL points at it (and the simulator back at the app). */
export async function startRxApp(options: EprescribingOptions = {}, identity: IdentityOptions = {}): Promise<{ t: TestApp; sim: PharmacySimulator; secret: string }> {
  const secret = randomBytes(32).toString('base64url');
  const sim = await PharmacySimulator.start({ secret });
  const t = await startTestApp({ modules: rxModules(options, identity), env: { ...rxTestEnv, PHARMACY_NETWORK_URL: sim.url, PHARMACY_NETWORK_SECRET: secret } });
  sim.callbackUrl = `${t.url}/eprescribing/network/inbound`;
  await seedDrugs(t);
  return { t, sim, secret };
}

export interface RxClinic {
  tenant: TestTenant;
  admin: AuthSession;
  provider: AuthSession;
  providerUser: TestUser;
  nurse: AuthSession;
  patientUser: AuthSession;
  patientId: string;
  prescriberId: string;
  pharmacyId: string;
  as: { admin: Gql; provider: Gql; nurse: Gql; patient: Gql };
}

const CREATE_PATIENT = 'mutation($i: CreatePatientInput!) { createPatient(input: $i) { id } }';
const LINK = 'mutation($p: UUID!, $u: UUID) { linkPatientUser(patientId: $p, userId: $u) { id } }';
const ASSIGN = 'mutation($p: UUID!, $u: UUID!, $r: CareTeamRole!) { assignCareTeamMember(patientId: $p, userId: $u, role: $r) { userId } }';
export const REGISTER_PRESCRIBER = 'mutation($i: PrescriberInput!) { registerPrescriber(input: $i) { id userId npi } }';
export const CREATE_PHARMACY = 'mutation($i: PharmacyInput!) { createPharmacy(input: $i) { id ncpdpId version } }';

export const practice = { addressLine1: '5 Clinic Way', city: 'Springfield', state: 'IL', postalCode: '62702', phone: '2175550199' };

/** A clinic: admin, a provider registered as prescriber (on the patient's care team), a nurse, a patient with an account, a pharmacy of the simulator. */
export async function createRxClinic(t: TestApp, opts: { npi?: string; ncpdpId?: string; now?: () => number } = {}): Promise<RxClinic> {
  const tenant = await createTenantWithAdmin(t);
  const admin = await adminSession(t, tenant);
  const providerUser = await createUser(t, tenant, 'PROVIDER', { displayName: 'Dr Rx' });
  const provider = await loginAs(t, providerUser, { now: opts.now });
  const nurseUser = await createUser(t, tenant, 'NURSE');
  const nurse = await loginAs(t, nurseUser, { now: opts.now });
  const patientAccount = await createUser(t, tenant, 'PATIENT');
  const patientUser = await loginAs(t, patientAccount, { now: opts.now });
  const as = { admin: gqlAs(t, admin.headers), provider: gqlAs(t, provider.headers), nurse: gqlAs(t, nurse.headers), patient: gqlAs(t, patientUser.headers) };
  const patientId = ok(
    await as.admin<{ createPatient: { id: string } }>(CREATE_PATIENT, {
      i: {
        givenName: 'Avery',
        familyName: 'Testpatient',
        dateOfBirth: '1961-04-12',
        sexAtBirth: 'FEMALE',
        phones: [{ use: 'MOBILE', number: '+12175550100' }],
        address: { line1: '12 Elm St', city: 'Springfield', state: 'IL', postalCode: '62701', country: 'US' },
      },
    }),
  ).createPatient.id;
  ok(await as.admin(LINK, { p: patientId, u: patientAccount.id }));
  ok(await as.admin(ASSIGN, { p: patientId, u: providerUser.id, r: 'PRIMARY_PROVIDER' }));
  ok(await as.admin(ASSIGN, { p: patientId, u: nurseUser.id, r: 'NURSE' }));
  const prescriberId = ok(
    await as.admin<{ registerPrescriber: { id: string } }>(REGISTER_PRESCRIBER, { i: { userId: providerUser.id, npi: opts.npi ?? '1234567893', firstName: 'Morgan', lastName: 'Prescriber', stateLicenseNumber: 'IL-036-1', ...practice } }),
  ).registerPrescriber.id;
  const ph = TEST_PHARMACIES[0]!;
  const pharmacyId = ok(
    await as.admin<{ createPharmacy: { id: string } }>(CREATE_PHARMACY, {
      i: { ncpdpId: opts.ncpdpId ?? ph.ncpdpId, npi: ph.npi, name: ph.businessName, addressLine1: ph.address!.line1, city: ph.address!.city, state: ph.address!.state, postalCode: ph.address!.postalCode, phone: ph.phone },
    }),
  ).createPharmacy.id;
  return { tenant, admin, provider, providerUser, nurse, patientUser, patientId, prescriberId, pharmacyId, as };
}

export const RX_FIELDS = 'id patientId status drugRxcui drugDescription controlledSchedule quantity quantityUnit refills refillsRemaining fills sig orderNumber pharmacyRxNumber epcs errorCode version signedAt transmittedAt acceptedAt dispensedAt cancelledAt renewalOf';
export const CREATE_RX = `mutation($i: CreatePrescriptionInput!) { createPrescription(input: $i) { ${RX_FIELDS} } }`;
export const CHECK_RX = `mutation($id: UUID!, $o: [PrescriptionAlertOverrideInput!]) { checkPrescription(id: $id, overrides: $o) { prescription { ${RX_FIELDS} } alerts { key kind severity overridden needsReason } blocking } }`;
export const SIGN_RX = `mutation($id: UUID!, $e: EpcsSignatureInput) { signPrescription(id: $id, epcs: $e) { ${RX_FIELDS} } }`;
export const TRANSMIT_RX = `mutation($id: UUID!) { transmitPrescription(id: $id) { ${RX_FIELDS} } }`;
export const CANCEL_RX = `mutation($id: UUID!, $r: String) { cancelPrescription(id: $id, reason: $r) { ${RX_FIELDS} } }`;
export const GET_RX = `query($id: UUID!) { prescription(id: $id) { ${RX_FIELDS} history { fromStatus toStatus action actor } messages { direction messageType answerType answerCode } renewalRequests { id status newPrescriptionId } changeRequests { id status requestCode } } }`;

export interface RxView {
  id: string;
  status: string;
  orderNumber: string;
  version: number;
  refills: number;
  refillsRemaining: number;
  fills: number;
  [k: string]: unknown;
}

export function draftInput(c: RxClinic, over: Record<string, unknown> = {}) {
  return { patientId: c.patientId, pharmacyId: c.pharmacyId, drugRxcui: DRUGS.lisinopril.rxcui, quantity: '30', quantityUnit: 'TABLET', daysSupply: 30, refills: 2, sig: 'Take 1 tablet by mouth once daily', ...over };
}

/** draft -> checked -> signed (non-controlled), by the clinic's provider. */
export async function signedRx(c: RxClinic, over: Record<string, unknown> = {}): Promise<RxView> {
  const rx = ok(await c.as.provider<{ createPrescription: RxView }>(CREATE_RX, { i: draftInput(c, over) })).createPrescription;
  ok(await c.as.provider(CHECK_RX, { id: rx.id }));
  return ok(await c.as.provider<{ signPrescription: RxView }>(SIGN_RX, { id: rx.id })).signPrescription;
}

export async function getRx(gql: Gql, id: string) {
  return ok(await gql<{ prescription: RxView & { history: { action: string; toStatus: string; actor: string }[]; messages: { direction: string; messageType: string; answerType: string | null }[]; renewalRequests: { id: string; status: string; newPrescriptionId: string | null }[]; changeRequests: { id: string; status: string; requestCode: string }[] } }>(GET_RX, { id })).prescription;
}
