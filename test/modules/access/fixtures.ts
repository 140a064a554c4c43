import { randomUUID } from 'node:crypto';
import type postgres from 'postgres';
import { permissionsForRoles, registerPatientLookup } from '../../../src/platform/access/index.js';
import { AppError, ErrorCode } from '../../../src/platform/errors.js';
import type { ModuleManifest, Principal } from '../../../src/schema/index.js';
import { sql } from 'drizzle-orm';

/**
 * Test principals until the identity module's test/helpers/auth.ts lands:
 * a stand-in "identity" manifest whose authenticate reads the test-only
 * header x-test-principal (tenant, user id, roles). It is never part of
 * src/modules/index.ts.
 */
export const testIdentity: ModuleManifest = {
  name: 'identity',
  phase: 0,
  description: 'test-only principals from the x-test-principal header',
  dependsOn: [],
  async authenticate(req) {
    const h = req.headers['x-test-principal'];
    if (typeof h !== 'string') return undefined;
    try {
      const p = JSON.parse(h) as { tenantId: string; userId: string; roles: string[] };
      return { kind: 'user', id: p.userId, tenantId: p.tenantId, roles: p.roles, permissions: permissionsForRoles(p.roles) } satisfies Principal;
    } catch {
      throw new AppError(ErrorCode.UNAUTHENTICATED, 'bad test principal');
    }
  },
};

export interface TestUser {
  tenantId: string;
  userId: string;
  roles: string[];
  headers: Record<string, string>;
}

export function userHeaders(tenantId: string, roles: string[], userId: string = randomUUID()): TestUser {
  return { tenantId, userId, roles, headers: { 'x-test-principal': JSON.stringify({ tenantId, userId, roles }) } };
}

export async function createTenant(owner: postgres.Sql, slug = `t-${randomUUID().slice(0, 8)}`): Promise<string> {
  const [row] = await owner<{ id: string }[]>`insert into tenants (slug, name) values (${slug}, 'Test clinic') returning id`;
  return row!.id;
}

/**
 * A minimal tenant-owned patients table standing in for the patients module
 * (RLS like every tenant table), with the lookup break-glass needs.
 */
export async function installTestPatients(owner: postgres.Sql): Promise<() => void> {
  await owner`create table if not exists test_patients (id uuid primary key default gen_random_uuid(), tenant_id uuid not null default carebase_current_tenant() references tenants(id))`;
  await owner`select carebase_enforce_tenant_rls()`;
  await owner`grant select, insert on test_patients to carebase_app`;
  return registerPatientLookup('test.patients', async (db, patientId) => {
    const rows = await db.execute<{ id: string }>(sql`select id from test_patients where id = ${patientId}::uuid`);
    return rows.length > 0;
  });
}

export async function createPatient(owner: postgres.Sql, tenantId: string): Promise<string> {
  const [row] = await owner<{ id: string }[]>`insert into test_patients (tenant_id) values (${tenantId}) returning id`;
  return row!.id;
}
