import { expect } from 'vitest';
import accessModule from '../../../src/modules/access/index.js';
import auditModule from '../../../src/modules/audit/index.js';
import identityModule from '../../../src/modules/identity/index.js';
import patientsModule from '../../../src/modules/patients/index.js';
import type { ModuleManifest } from '../../../src/schema/index.js';
import type { GqlResponse, TestApp } from '../../helpers/app.js';

/** The modules the patients module needs, in dependency order (also before they are listed in src/modules/index.ts). */
export const patientModules: ModuleManifest[] = [identityModule, accessModule, auditModule, patientsModule];

/** Generous budgets: the suites sign in many users from one IP. */
export const patientTestEnv = {
  RATE_LIMIT_AUTH_IP_PER_MINUTE: '100000',
  RATE_LIMIT_ANON_IP_PER_MINUTE: '100000',
  RATE_LIMIT_USER_PER_MINUTE: '100000',
  RATE_LIMIT_STORE: 'memory',
  // argon2 sign-ins of many users lag the event loop on a small CI machine: no load shedding in these functional tests
  LOAD_SHED_EVENT_LOOP_DELAY_MS: '0',
};

export const PATIENT_FIELDS = `
  id mrn givenName familyName preferredName dateOfBirth birthYear sexAtBirth genderIdentity email
  phones { use number } address { line1 line2 city state postalCode country } language
  emergencyContact { name relationship phone } insurance { payerName planName memberId groupNumber }
  hasSsn ssnLast4 ssnMasked status deceasedDate mergedInto linkedUserId version
  careTeam { userId role displayName }
  masking { field level }`;

export const CREATE = `mutation Create($input: CreatePatientInput!) { createPatient(input: $input) { ${PATIENT_FIELDS} } }`;
export const UPDATE = `mutation Update($id: UUID!, $version: Int!, $input: UpdatePatientInput!) { updatePatient(id: $id, version: $version, input: $input) { ${PATIENT_FIELDS} } }`;
export const GET = `query Get($id: UUID!) { patient(id: $id) { ${PATIENT_FIELDS} } }`;
export const SEARCH = `query Search($filter: PatientSearchInput, $first: Int, $after: String) {
  patients(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id mrn givenName familyName dateOfBirth } }
    pageInfo { hasNextPage endCursor }
  } }`;
export const REVEAL = `mutation Reveal($patientId: UUID!, $purpose: SsnRevealPurpose, $reason: String) {
  revealPatientSsn(patientId: $patientId, purpose: $purpose, reason: $reason) { revealId patientId ssn revealedAt } }`;
export const ASSIGN = `mutation Assign($patientId: UUID!, $userId: UUID!, $role: CareTeamRole!) {
  assignCareTeamMember(patientId: $patientId, userId: $userId, role: $role) { userId role } }`;

export type Errors = GqlResponse['body']['errors'];

/** The data of a response that must have succeeded. */
export function ok<T>(res: GqlResponse<T>): T {
  expect(res.body.errors, JSON.stringify(res.body.errors)).toBeUndefined();
  return res.body.data as T;
}

/** The first error of a response that must have failed. */
export function firstError(res: GqlResponse): { message: string; extensions?: Record<string, unknown> } {
  expect(res.body.errors?.length, JSON.stringify(res.body)).toBeGreaterThan(0);
  return res.body.errors![0]!;
}

export function gqlAs(t: TestApp, headers: Record<string, string>) {
  return <T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>) => t.gql<T>(query, variables, headers);
}

export const basePatient = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  givenName: 'Zoë',
  familyName: 'Ångström',
  dateOfBirth: '1984-02-29',
  sexAtBirth: 'FEMALE',
  genderIdentity: 'woman',
  email: 'zoe.angstrom@example.test',
  phones: [{ use: 'MOBILE', number: '(415) 555-0134' }],
  address: { line1: '12 Harbor Way', city: 'Oakland', state: 'CA', postalCode: '94607' },
  language: 'en',
  emergencyContact: { name: 'Mia Angstrom', relationship: 'sister', phone: '+14155550188' },
  insurance: { payerName: 'Acme Health', planName: 'Gold PPO', memberId: 'XJ4455221', groupNumber: 'G-100' },
  ...over,
});
