import { expect } from 'vitest';
import accessModule from '../../../src/modules/access/index.js';
import auditModule from '../../../src/modules/audit/index.js';
import identityModule from '../../../src/modules/identity/index.js';
import patientsModule from '../../../src/modules/patients/index.js';
import { createTelehealthModule, type TelehealthOptions } from '../../../src/modules/telehealth/index.js';
import type { ModuleManifest } from '../../../src/schema/index.js';
import type { GqlResponse, TestApp } from '../../helpers/app.js';
import { createTenantWithAdmin, createUser, loginAs, adminSession, type AuthSession, type TestTenant } from '../../helpers/auth.js';

/** A clock the telehealth module reads (the platform keeps the real one: tokens, audit). */
export class FakeClock {
  constructor(public ms: number) {}
  now = (): number => this.ms;
  set(iso: string | number): void {
    this.ms = typeof iso === 'number' ? iso : Date.parse(iso);
  }
  advance(minutes: number): void {
    this.ms += minutes * 60_000;
  }
}

/** The modules telehealth needs, in dependency order, with telehealth on the given options (e.g. a fake clock). */
export const telehealthModules = (options: TelehealthOptions = {}): ModuleManifest[] => [identityModule, accessModule, auditModule, patientsModule, createTelehealthModule(options)];

/** Generous budgets: these suites sign in several users and fire concurrent requests from one IP. */
export const telehealthTestEnv = {
  RATE_LIMIT_AUTH_IP_PER_MINUTE: '100000',
  RATE_LIMIT_ANON_IP_PER_MINUTE: '100000',
  RATE_LIMIT_USER_PER_MINUTE: '100000',
  RATE_LIMIT_STORE: 'memory',
  LOAD_SHED_EVENT_LOOP_DELAY_MS: '0',
};

export type Gql = <T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>) => Promise<GqlResponse<T>>;

export function gqlAs(t: TestApp, headers: Record<string, string>): Gql {
  return (query, variables) => t.gql(query, variables, headers);
}

/** The data of a response that must have succeeded. */
export function ok<T>(res: GqlResponse<T>): T {
  expect(res.body.errors, JSON.stringify(res.body.errors)).toBeUndefined();
  return res.body.data as T;
}

/** The code (and extensions) of a response that must have failed. */
export function errorOf(res: GqlResponse): { code: unknown; message: string; extensions: Record<string, unknown> } {
  expect(res.body.errors?.length, JSON.stringify(res.body)).toBeGreaterThan(0);
  const e = res.body.errors![0]!;
  return { code: e.extensions?.code, message: e.message, extensions: e.extensions ?? {} };
}

export interface Clinic {
  tenant: TestTenant;
  admin: AuthSession;
  provider: AuthSession;
  frontDesk: AuthSession;
  patientUser: AuthSession;
  /** the patient record linked to patientUser */
  patientId: string;
  /** another patient of the clinic (no account) */
  otherPatientId: string;
  visitTypeId: string;
  as: { admin: Gql; provider: Gql; frontDesk: Gql; patient: Gql };
}

const CREATE_PATIENT = 'mutation($i: CreatePatientInput!) { createPatient(input: $i) { id } }';
const LINK = 'mutation($p: UUID!, $u: UUID) { linkPatientUser(patientId: $p, userId: $u) { id } }';
export const SET_AVAILABILITY = 'mutation($i: SetProviderAvailabilityInput!) { setProviderAvailability(input: $i) { providerId timeZone weeklyHours { weekday startTime endTime } } }';
export const CREATE_VISIT_TYPE = 'mutation($i: CreateVisitTypeInput!) { createVisitType(input: $i) { id code durationMinutes bufferMinutes modality active } }';

/** Every day, all day, in `timeZone`. */
export const allWeek = (startTime = '00:00', endTime = '24:00') => [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, startTime, endTime }));

/**
 * A clinic with an admin, a provider (MFA), a front-desk user, a patient with a PATIENT account and another patient,
 * a 30-minute video visit type with a 10-minute buffer, and the provider available all week in `timeZone`.
 */
export async function createClinic(t: TestApp, opts: { timeZone?: string; weeklyHours?: { weekday: number; startTime: string; endTime: string }[]; durationMinutes?: number; bufferMinutes?: number } = {}): Promise<Clinic> {
  const tenant = await createTenantWithAdmin(t);
  const admin = await adminSession(t, tenant);
  const provider = await loginAs(t, await createUser(t, tenant, 'PROVIDER', { displayName: 'Dr Test' }));
  const frontDesk = await loginAs(t, await createUser(t, tenant, 'FRONT_DESK'));
  const patientAccount = await createUser(t, tenant, 'PATIENT');
  const patientUser = await loginAs(t, patientAccount);
  const as = { admin: gqlAs(t, admin.headers), provider: gqlAs(t, provider.headers), frontDesk: gqlAs(t, frontDesk.headers), patient: gqlAs(t, patientUser.headers) };
  const patientId = ok(await as.frontDesk<{ createPatient: { id: string } }>(CREATE_PATIENT, { i: { givenName: 'Pat', familyName: 'Ient', dateOfBirth: '1980-05-06' } })).createPatient.id;
  ok(await as.frontDesk(LINK, { p: patientId, u: patientAccount.id }));
  const otherPatientId = ok(await as.frontDesk<{ createPatient: { id: string } }>(CREATE_PATIENT, { i: { givenName: 'Otto', familyName: 'Other', dateOfBirth: '1975-01-02' } })).createPatient.id;
  ok(await as.frontDesk(SET_AVAILABILITY, { i: { providerId: provider.user.id, timeZone: opts.timeZone ?? 'UTC', weeklyHours: opts.weeklyHours ?? allWeek() } }));
  const visitTypeId = ok(
    await as.admin<{ createVisitType: { id: string } }>(CREATE_VISIT_TYPE, {
      i: { code: 'video-30', name: 'Video visit', durationMinutes: opts.durationMinutes ?? 30, modality: 'VIDEO', bufferMinutes: opts.bufferMinutes ?? 10 },
    }),
  ).createVisitType.id;
  return { tenant, admin, provider, frontDesk, patientUser, patientId, otherPatientId, visitTypeId, as };
}

export const APPOINTMENT_FIELDS = 'id patientId providerId providerName visitTypeId modality status startsAt endsAt reason cancelReason checkedInAt waitingSince admittedAt completedAt version rescheduleCount';
export const BOOK = `mutation($i: BookAppointmentInput!) { bookAppointment(input: $i) { ${APPOINTMENT_FIELDS} } }`;

export interface AppointmentView {
  id: string;
  patientId: string;
  providerId: string;
  status: string;
  startsAt: string;
  endsAt: string;
  version: number;
  [k: string]: unknown;
}

export const PUBLISH_CONSENT = 'mutation($i: PublishConsentTextInput!) { publishConsentText(input: $i) { id kind version title } }';
export const RECORD_CONSENT = 'mutation($i: RecordConsentInput!) { recordConsent(input: $i) { id kind version patientId userId appointmentId onBehalf recordedBy ip userAgent consentedAt withdrawnAt } }';

/** The admin publishes a consent text of `kind` (TELEHEALTH or RECORDING); returns its version. */
export async function publishConsent(c: Clinic, kind: 'TELEHEALTH' | 'RECORDING' = 'TELEHEALTH'): Promise<number> {
  const body = kind === 'TELEHEALTH' ? 'I agree to receive care through video visits, and understand their limits.' : 'I agree that this video visit may be recorded and kept in my medical record.';
  return ok(await c.as.admin<{ publishConsentText: { version: number } }>(PUBLISH_CONSENT, { i: { kind, title: `${kind} consent`, body } })).publishConsentText.version;
}

/** The patient (their own account) and the provider consent to the current text of `kind`. */
export async function consentAll(c: Clinic, kind: 'TELEHEALTH' | 'RECORDING' = 'TELEHEALTH', appointmentId?: string): Promise<void> {
  const version = ok(await c.as.patient<{ currentConsentText: { version: number } }>('query($k: ConsentKind!) { currentConsentText(kind: $k) { version } }', { k: kind })).currentConsentText.version;
  ok(await c.as.patient(RECORD_CONSENT, { i: { kind, version, appointmentId } }));
  ok(await c.as.provider(RECORD_CONSENT, { i: { kind, version, appointmentId } }));
}
