/**
 * Test-only modules for the audit tests: a header authenticator (until the
 * identity module's test/helpers/auth.ts exists) and a tiny patient-like
 * module whose fields are marked PHI, to exercise the marker end to end.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type postgres from 'postgres';
import { resourceLookupKey, type ResourceLookup } from '../../../src/platform/access/index.js';
import { auditWriterFor, principalEvent } from '../../../src/platform/audit/index.js';
import { AppError, ErrorCode, notFound } from '../../../src/platform/errors.js';
import type { ModuleManifest, Principal } from '../../../src/schema/index.js';

export const PRINCIPAL_HEADER = 'x-test-principal';

/**
 * The tests share the event loop with the app (no event-loop-lag load
 * shedding: its own tests cover it) and send many requests from one IP.
 */
export const QUIET_ENV = {
  LOAD_SHED_EVENT_LOOP_DELAY_MS: '0',
  RATE_LIMIT_AUTH_IP_PER_MINUTE: '100000',
  RATE_LIMIT_ANON_IP_PER_MINUTE: '100000',
  RATE_LIMIT_USER_PER_MINUTE: '100000',
};

export interface TestPrincipal {
  kind?: 'user' | 'apiKey';
  id: string;
  tenantId: string;
  roles: string[];
  permissions: string[];
  sessionId?: string;
  amr?: string[];
}

export function asHeader(p: TestPrincipal): Record<string, string> {
  return { [PRINCIPAL_HEADER]: Buffer.from(JSON.stringify(p)).toString('base64url') };
}

export const testAuthModule: ModuleManifest = {
  name: 'test-auth',
  phase: 0,
  description: 'test-only: principal from a header',
  dependsOn: [],
  authenticate: async (req) => {
    const h = req.headers[PRINCIPAL_HEADER];
    if (typeof h !== 'string') return undefined;
    try {
      const p = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as TestPrincipal;
      const principal: Principal = {
        kind: p.kind ?? 'user',
        id: p.id,
        tenantId: p.tenantId,
        roles: p.roles,
        permissions: new Set(p.permissions),
        sessionId: p.sessionId,
        amr: p.amr,
      };
      return principal;
    } catch {
      throw new AppError(ErrorCode.UNAUTHENTICATED, 'bad test principal');
    }
  },
};

interface FixturePatient {
  id: string;
  mrn: string;
  name: string;
  ssn: string;
}

/** A fixture patient exists when audit_fixture_patients has it in the caller's tenant (RLS). */
const fixturePatientLookup: ResourceLookup = async (db, id) => {
  const rows = await db.execute<{ id: string }>(sql`select id from audit_fixture_patients where id = ${id}::uuid`);
  return rows.length > 0;
};

export const fixturePatientsModule: ModuleManifest = {
  name: 'audit-fixture',
  phase: 0,
  description: 'test-only: a patient-like table with PHI-marked fields',
  dependsOn: [],
  // it stands in for the patients module (never loaded beside it), so it declares the permissions its fields require
  permissions: {
    permissions: { 'patient:read': 'Read fixture patients', 'patient:write': 'Rename fixture patients', 'patient:ssn:reveal': 'Reveal a fixture SSN' },
    roles: {},
  },
  phiCategories: { demographics: 'Fixture patient name', ssn: 'Fixture patient SSN' },
  // and, like the patients module, it tells other modules which ids are patients of the tenant (the audit report's
  // own event names the filter's patient only then); the table is tenant-owned, so RLS keeps the lookup in the tenant
  provides: { [resourceLookupKey('patient')]: fixturePatientLookup },
  schema: (builder) => {
    const Patient = builder.objectRef<FixturePatient>('AuditFixturePatient').implement({
      phiResource: { patientId: (p) => p.id, resourceType: 'Patient' },
      fields: (t) => ({
        id: t.exposeID('id'),
        mrn: t.exposeString('mrn'),
        name: t.exposeString('name', { phi: 'demographics' }),
        ssn: t.exposeString('ssn', { phi: 'ssn', authScopes: { permission: 'patient:ssn:reveal' } }),
      }),
    });
    builder.queryField('fixturePatients', (t) =>
      t.field({
        type: [Patient],
        authScopes: { permission: 'patient:read' },
        args: { ids: t.arg({ type: ['UUID'], required: true }) },
        resolve: async (_r, args, ctx) => {
          const sql = await ctx.tx.connection();
          return sql<FixturePatient[]>`select id, mrn, name, ssn from audit_fixture_patients where id = any(${args.ids}::uuid[]) order by mrn`;
        },
      }),
    );
    builder.queryField('fixturePatient', (t) =>
      t.field({
        type: Patient,
        authScopes: { permission: 'patient:read' },
        args: { id: t.arg({ type: 'UUID', required: true }) },
        audit: { action: 'read', resourceType: 'Patient', patientId: (args) => args.id },
        resolve: async (_r, args, ctx) => {
          const sql = await ctx.tx.connection();
          const [row] = await sql<FixturePatient[]>`select id, mrn, name, ssn from audit_fixture_patients where id = ${args.id}`;
          if (!row) throw notFound('Patient');
          return row;
        },
      }),
    );
    builder.mutationField('fixtureRenamePatient', (t) =>
      t.field({
        type: Patient,
        authScopes: { permission: 'patient:write' },
        args: { id: t.arg({ type: 'UUID', required: true }), name: t.arg.string({ required: true }) },
        audit: { action: 'update', resourceType: 'Patient', patientId: (args) => args.id, resourceId: (args) => args.id },
        resolve: async (_r, args, ctx) => {
          const sql = await ctx.tx.connection();
          const [row] = await sql<FixturePatient[]>`update audit_fixture_patients set name = ${args.name} where id = ${args.id} returning id, mrn, name, ssn`;
          if (!row) throw notFound('Patient');
          return row;
        },
      }),
    );
    builder.mutationField('fixtureRevealSsn', (t) =>
      t.field({
        type: 'String',
        authScopes: { permission: 'patient:ssn:reveal' },
        args: { id: t.arg({ type: 'UUID', required: true }) },
        audit: { action: 'reveal', resourceType: 'Patient', category: 'ssn', patientId: (args) => args.id, resourceId: (args) => args.id },
        resolve: async (_r, args, ctx) => {
          const sql = await ctx.tx.connection();
          const [row] = await sql<{ ssn: string }[]>`select ssn from audit_fixture_patients where id = ${args.id}`;
          if (!row) throw notFound('Patient');
          return row.ssn;
        },
      }),
    );
  },
};

/** Creates the fixture table (tenant-owned, RLS like every tenant table) in a test database. */
export async function createFixtureTable(owner: postgres.Sql) {
  await owner.unsafe(`
    create table if not exists audit_fixture_patients (
      id uuid primary key default gen_random_uuid(),
      tenant_id uuid not null default carebase_current_tenant() references tenants(id),
      mrn text not null,
      name text not null,
      ssn text not null
    );
    grant select, insert, update on audit_fixture_patients to carebase_app;
    -- this table only: carebase_enforce_tenant_rls() alters every tenant table and can deadlock with the running app
    alter table audit_fixture_patients enable row level security;
    alter table audit_fixture_patients force row level security;
    do $$ begin
      if not exists (select 1 from pg_policies where tablename = 'audit_fixture_patients' and policyname = 'tenant_isolation') then
        create policy tenant_isolation on audit_fixture_patients using (tenant_id = carebase_current_tenant()) with check (tenant_id = carebase_current_tenant());
      end if;
    end $$;`);
}

export async function createTenant(owner: postgres.Sql, slug = `t-${randomUUID().slice(0, 8)}`): Promise<string> {
  const [row] = await owner<{ id: string }[]>`insert into tenants (slug, name) values (${slug}, ${slug}) returning id`;
  return row!.id;
}

export async function seedPatients(owner: postgres.Sql, tenantId: string, n: number): Promise<{ id: string; name: string; ssn: string }[]> {
  const out: { id: string; name: string; ssn: string }[] = [];
  for (let i = 0; i < n; i++) {
    const name = `Zebulon Quaxley-${randomUUID().slice(0, 6)}`;
    const ssn = `9${String(Math.floor(Math.random() * 1e8)).padStart(8, '0')}`;
    const [row] = await owner<{ id: string }[]>`
      insert into audit_fixture_patients (tenant_id, mrn, name, ssn) values (${tenantId}, ${`MRN-${i}`}, ${name}, ${ssn}) returning id`;
    out.push({ id: row!.id, name, ssn });
  }
  return out;
}

/** Appends n PHI-read events to a tenant's chain through the writer (`app`: the app role's pool). */
export async function appendEvents(app: postgres.Sql, tenantId: string, n: number): Promise<void> {
  const actor = { kind: 'user' as const, id: randomUUID(), tenantId, roles: ['PROVIDER'] };
  const writer = auditWriterFor(app);
  for (let i = 0; i < n; i++) {
    await writer.append([
      principalEvent(actor, { requestId: `req-${i}` }, { eventType: 'phi', action: 'read', outcome: 'allowed', resourceType: 'Patient', patientId: randomUUID(), fields: ['Patient.name'] }),
    ]);
  }
}

/** Runs fn as a DBA who bypasses the append-only triggers (superuser: session_replication_role = replica). */
export async function asDba(owner: postgres.Sql, tenantId: string, fn: (tx: postgres.Sql) => Promise<unknown>): Promise<void> {
  await owner.begin(async (tx) => {
    await tx`set local session_replication_role = replica`;
    await tx`select set_config('app.tenant_id', ${tenantId}, true)`;
    await fn(tx as unknown as postgres.Sql);
  });
}
