import type postgres from 'postgres';
import { sql } from 'drizzle-orm';
import { createAccessModule } from '../../../src/modules/access/index.js';
import identityModule from '../../../src/modules/identity/index.js';
import { PATIENT_PERMISSIONS } from '../../../src/modules/patients/index.js';
import { resourceLookupKey, type ResourceLookup } from '../../../src/platform/access/index.js';
import type { ModuleManifest } from '../../../src/schema/index.js';
import type { TestApp } from '../../helpers/app.js';
import { adminSession, createTenantWithAdmin, userSession, type TestTenant } from '../../helpers/auth.js';
import { enableTenantRls } from '../../helpers/rls.js';

/** Generous budgets: these suites sign in many users from one IP. */
export const accessTestEnv = {
  RATE_LIMIT_AUTH_IP_PER_MINUTE: '100000',
  RATE_LIMIT_ANON_IP_PER_MINUTE: '100000',
  RATE_LIMIT_USER_PER_MINUTE: '100000',
  // event-loop lag from argon2 sign-ins on a busy test machine must not turn into SERVER_BUSY here
  LOAD_SHED_EVENT_LOOP_DELAY_MS: '0',
};

/** A test patient exists when test_patients has it (in the caller's tenant: RLS). */
const testPatientLookup: ResourceLookup = async (db, patientId) => {
  const rows = await db.execute<{ id: string }>(sql`select id from test_patients where id = ${patientId}::uuid`);
  return rows.length > 0;
};

/**
 * The patients module's vocabulary without the module (test_patients stands in for its table): API keys and roles
 * grant patient:* as in the full app, and break-glass finds test patients by id (installTestPatients makes the table).
 */
export const patientVocabularyModule: ModuleManifest = {
  name: 'test-patient-vocabulary',
  phase: 0,
  description: 'patient permissions',
  dependsOn: [],
  permissions: PATIENT_PERMISSIONS,
  provides: { [resourceLookupKey('patient')]: testPatientLookup },
};

/** identity + access, with the access module on the given clock. */
export const accessModules = (now?: () => Date): ModuleManifest[] => [identityModule, createAccessModule({ now }), patientVocabularyModule];

export interface TestUser {
  tenantId: string;
  userId: string;
  roles: string[];
  headers: Record<string, string>;
}

/** A user of the tenant with these roles, signed in over HTTP (real invitation, password, MFA when required). */
export async function signedIn(t: TestApp, tenant: TestTenant, roles: string[]): Promise<TestUser> {
  const s = roles.length === 1 && roles[0] === 'ADMIN' ? await adminSession(t, tenant) : await userSession(t, tenant, roles);
  return { tenantId: tenant.id, userId: s.user.id, roles: s.user.roles, headers: s.headers };
}

export async function createTenant(t: TestApp): Promise<TestTenant> {
  return createTenantWithAdmin(t);
}

/**
 * A minimal tenant-owned patients table standing in for the patients module
 * (RLS like every tenant table); patientVocabularyModule provides its lookup.
 */
export async function installTestPatients(owner: postgres.Sql): Promise<void> {
  await owner`create table if not exists test_patients (id uuid primary key default gen_random_uuid(), tenant_id uuid not null default carebase_current_tenant() references tenants(id))`;
  await enableTenantRls(owner, 'test_patients');
  await owner`grant select, insert on test_patients to carebase_app`;
}

export async function createPatient(owner: postgres.Sql, tenantId: string): Promise<string> {
  const [row] = await owner<{ id: string }[]>`insert into test_patients (tenant_id) values (${tenantId}) returning id`;
  return row!.id;
}
