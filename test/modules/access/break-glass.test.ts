import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { breakGlassRule } from '../../../src/modules/access/index.js';
import identityModule from '../../../src/modules/identity/index.js';
import accessModule from '../../../src/modules/access/index.js';
import patientsModule, { type PatientAction } from '../../../src/modules/patients/index.js';
import { createAccessScope, type AccessPrincipal } from '../../../src/platform/access/index.js';
import { permissionCatalog } from '../../../src/schema/index.js';
import { withTenant } from '../../../src/platform/db/index.js';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import type { TestTenant } from '../../helpers/auth.js';
import { accessModules, accessTestEnv, createPatient, createTenant, installTestPatients, signedIn, type TestUser } from './fixtures.js';

let clock = Date.parse('2026-11-23T10:00:00Z');
let t: TestApp;
let tenantA: TestTenant;
let tenantB: TestTenant;
let nurse: TestUser;
let patient: string;

const REASON = 'Unconscious in the ED, chart needed for allergies';
const INVOKE = `mutation Invoke($input: InvokeBreakGlassInput!) {
  invokeBreakGlass(input: $input) { id userId patientId reason createdAt expiresAt endedAt active }
}`;

interface Grant {
  id: string;
  userId: string;
  patientId: string;
  reason: string;
  createdAt: string;
  expiresAt: string;
  endedAt: string | null;
  active: boolean;
}

async function invoke(user: TestUser, input: Record<string, unknown>) {
  return t.gql<{ invokeBreakGlass: Grant }>(INVOKE, { input }, user.headers);
}

// the roles' permissions as the full app grants them (this app has no patients module: test_patients stands in)
const catalog = permissionCatalog([identityModule, accessModule, patientsModule]);
const principalOf = (u: TestUser): AccessPrincipal => ({ kind: 'user', id: u.userId, tenantId: u.tenantId, roles: u.roles, permissions: catalog.forRoles(u.roles) });
// a patient scope with only the access module's break-glass rule (the patients module puts the same rule in its scope), on the test clock
const scope = createAccessScope<PatientAction>({ resource: 'patient', permission: (a) => `patient:${a}`, rules: [breakGlassRule(() => new Date(clock))] });
const access = (u: TestUser, patientId: string, action: PatientAction) => withTenant(t.db.sql, u.tenantId, (db) => scope.check(principalOf(u), patientId, action, db));
/** The same rule as SQL: the test patients a list would show the user. */
const listed = (u: TestUser) =>
  withTenant(t.db.sql, u.tenantId, async (db) =>
    ((await db.execute(sql`select p.id from test_patients p where ${scope.where(principalOf(u), 'read', sql`p.id`) ?? sql`true`}`)) as unknown as { id: string }[]).map((r) => r.id),
  );

beforeAll(async () => {
  t = await startTestApp({ modules: accessModules(() => new Date(clock)), env: accessTestEnv });
  await installTestPatients(t.db.owner);
  tenantA = await createTenant(t);
  tenantB = await createTenant(t);
  nurse = await signedIn(t, tenantA, ['NURSE']);
  patient = await createPatient(t.db.owner, tenantA.id);
});
afterAll(async () => {
  await t?.close();
});

describe('break-glass', () => {
  it('without a grant, nothing allows a nurse to open a patient she does not care for (deny by default)', async () => {
    expect(await access(nurse, patient, 'read')).toEqual({ allowed: false, outcome: 'default' });
  });

  it('a nurse states a reason and gets 60 minutes of access to that patient only; it is recorded and alerted', async () => {
    const res = await invoke(nurse, { patientId: patient, reason: REASON });
    expect(res.body.errors).toBeUndefined();
    const g = res.body.data!.invokeBreakGlass;
    expect(g).toMatchObject({ userId: nurse.userId, patientId: patient, reason: REASON, active: true, endedAt: null });
    expect(Date.parse(g.expiresAt) - Date.parse(g.createdAt)).toBe(60 * 60_000);

    expect(await access(nurse, patient, 'read')).toEqual({ allowed: true, outcome: 'allow', rule: 'access.breakGlass', ref: g.id });
    expect((await access(nurse, patient, 'clinical:read')).allowed).toBe(true);
    // RBAC still applies: a nurse may not reveal an SSN, grant or not
    expect(await access(nurse, patient, 'ssn:reveal')).toEqual({ allowed: false, outcome: 'rbac' });
    // one patient, one user
    const otherPatient = await createPatient(t.db.owner, tenantA.id);
    expect((await access(nurse, otherPatient, 'read')).allowed).toBe(false);
    expect((await access((await signedIn(t, tenantA, ['NURSE'])), patient, 'read')).allowed).toBe(false);

    // recorded
    const [row] = await t.db.owner`select tenant_id, user_id, patient_id, reason from break_glass_grants where id = ${g.id}`;
    expect(row).toEqual({ tenant_id: tenantA.id, user_id: nurse.userId, patient_id: patient, reason: REASON });
    // alert event in the outbox (same transaction), ids only: the reason never leaves the grant row
    const events = await t.db.owner<{ type: string; aggregate_id: string; payload: Record<string, unknown>; rooms: string[]; tenant_id: string }[]>`
      select type, aggregate_id, payload, rooms, tenant_id from outbox where aggregate_id = ${g.id}`;
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'security.alertRaised', tenant_id: tenantA.id, rooms: ['alerts:security'] });
    expect(events[0]!.payload).toMatchObject({ kind: 'break_glass', severity: 'high', grantId: g.id, userId: nurse.userId, patientId: patient });
    expect(JSON.stringify(events[0])).not.toContain('Unconscious');
    expect(t.logText()).not.toContain('Unconscious');
    // and a security event for the audit chain (identity's table), ids only
    const sec = await t.db.owner<{ type: string; user_id: string; actor_id: string; details: Record<string, unknown> }[]>`
      select type, user_id, actor_id, details from security_events where type like 'break_glass.%' and details->>'grantId' = ${g.id}`;
    expect(sec).toEqual([{ type: 'break_glass.invoked', user_id: nurse.userId, actor_id: nurse.userId, details: { grantId: g.id, patientId: patient, durationMinutes: 60 } }]);
    expect(t.logs.some((l) => l.msg === 'break-glass access granted' && l.grantId === g.id)).toBe(true);

    // the grantee sees it; compliance sees it for review
    const mine = await t.gql<{ myBreakGlassGrants: { id: string }[] }>('{ myBreakGlassGrants { id } }', {}, nurse.headers);
    expect(mine.body.data?.myBreakGlassGrants.map((x) => x.id)).toEqual([g.id]);
    const compliance = (await signedIn(t, tenantA, ['COMPLIANCE']));
    const review = await t.gql<{ breakGlassGrants: { id: string; reviewedAt: string | null }[] }>('{ breakGlassGrants(unreviewedOnly: true) { id reviewedAt } }', {}, compliance.headers);
    expect(review.body.data?.breakGlassGrants.map((x) => x.id)).toContain(g.id);
    const done = await t.gql<{ reviewBreakGlassGrant: { reviewedAt: string; reviewedBy: string } }>(
      'mutation($id: UUID!) { reviewBreakGlassGrant(id: $id) { reviewedAt reviewedBy } }',
      { id: g.id },
      compliance.headers,
    );
    expect(done.body.data?.reviewBreakGlassGrant.reviewedBy).toBe(compliance.userId);
  });

  it('expires on its own after the time box', async () => {
    const p = await createPatient(t.db.owner, tenantA.id);
    const res = await invoke(nurse, { patientId: p, reason: REASON, durationMinutes: 15 });
    expect(res.body.data?.invokeBreakGlass.active).toBe(true);
    clock += 14 * 60_000;
    expect((await access(nurse, p, 'read')).allowed).toBe(true);
    // the same rule as SQL: a list shows the patient while the grant is active, and only that one
    expect(await listed(nurse)).toContain(p);
    expect(await listed(await signedIn(t, tenantA, ['NURSE']))).not.toContain(p);
    clock += 60_001;
    expect(await access(nurse, p, 'read')).toEqual({ allowed: false, outcome: 'default' });
    expect(await listed(nurse)).not.toContain(p);
    const mine = await t.gql<{ myBreakGlassGrants: { id: string; active: boolean }[] }>('{ myBreakGlassGrants(activeOnly: false) { id active } }', {}, nurse.headers);
    expect(mine.body.data?.myBreakGlassGrants.find((x) => x.id === res.body.data?.invokeBreakGlass.id)?.active).toBe(false);
    const active = await t.gql<{ myBreakGlassGrants: { id: string }[] }>('{ myBreakGlassGrants { id } }', {}, nurse.headers);
    expect(active.body.data?.myBreakGlassGrants.map((x) => x.id)).not.toContain(res.body.data?.invokeBreakGlass.id);
  });

  it('can be ended early by its holder or a reviewer, not by another clinician', async () => {
    const p = await createPatient(t.db.owner, tenantA.id);
    const g = (await invoke(nurse, { patientId: p, reason: REASON })).body.data!.invokeBreakGlass;
    const other = (await signedIn(t, tenantA, ['PROVIDER']));
    const end = 'mutation($id: UUID!) { endBreakGlass(id: $id) { endedAt active } }';
    const refused = await t.gql(end, { id: g.id }, other.headers);
    expect(refused.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect((await access(nurse, p, 'read')).allowed).toBe(true);
    const ended = await t.gql<{ endBreakGlass: { active: boolean } }>(end, { id: g.id }, nurse.headers);
    expect(ended.body.data?.endBreakGlass.active).toBe(false);
    expect((await access(nurse, p, 'read')).allowed).toBe(false);

    const g2 = (await invoke(nurse, { patientId: p, reason: REASON })).body.data!.invokeBreakGlass;
    const byCompliance = await t.gql<{ endBreakGlass: { active: boolean } }>(end, { id: g2.id }, (await signedIn(t, tenantA, ['COMPLIANCE'])).headers);
    expect(byCompliance.body.data?.endBreakGlass.active).toBe(false);
  });

  it('a deny rule wins over break-glass', async () => {
    const p = await createPatient(t.db.owner, tenantA.id);
    await invoke(nurse, { patientId: p, reason: REASON });
    const remove = scope.add({ name: 'test.deny', vote: () => ({ denyUnless: (id) => sql`${id} <> ${p}::uuid` }) });
    try {
      expect(await access(nurse, p, 'read')).toEqual({ allowed: false, outcome: 'deny', rule: 'test.deny' });
    } finally {
      remove();
    }
    expect((await access(nurse, p, 'read')).allowed).toBe(true);
  });

  it('refuses bad input, the wrong roles and anonymous callers, recording nothing', async () => {
    const count = async () => (await t.db.owner<{ n: number }[]>`select count(*)::int as n from break_glass_grants`)[0]!.n;
    const before = await count();
    const short = await invoke(nurse, { patientId: patient, reason: 'because' });
    expect(short.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.reason' });
    const blank = await invoke(nurse, { patientId: patient, reason: '              ' });
    expect(blank.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const long = await invoke(nurse, { patientId: patient, reason: REASON, durationMinutes: 600 });
    expect(long.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.durationMinutes' });
    const unknownPatient = await invoke(nurse, { patientId: '00000000-0000-4000-8000-000000000000', reason: REASON });
    expect(unknownPatient.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    for (const role of ['FRONT_DESK', 'BILLING', 'ADMIN', 'COMPLIANCE', 'PATIENT']) {
      const res = await invoke((await signedIn(t, tenantA, [role])), { patientId: patient, reason: REASON });
      expect(res.body.errors?.[0]?.extensions?.code, role).toBe('FORBIDDEN');
    }
    const anon = await t.gql(INVOKE, { input: { patientId: patient, reason: REASON } });
    expect(anon.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(await count()).toBe(before);
    expect(t.logText()).not.toContain('because');
  });

  it("another tenant's patients and grants are refused in every mutation and never listed", async () => {
    const patientB = await createPatient(t.db.owner, tenantB.id);
    const nurseB = (await signedIn(t, tenantB, ['NURSE']));
    const grantB = (await invoke(nurseB, { patientId: patientB, reason: REASON })).body.data!.invokeBreakGlass;
    const before = await t.db.owner`select * from break_glass_grants where id = ${grantB.id}`;
    const beforeCount = (await t.db.owner<{ n: number }[]>`select count(*)::int as n from break_glass_grants`)[0]!.n;

    const cross = await invoke(nurse, { patientId: patientB, reason: REASON });
    expect(cross.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    const complianceA = (await signedIn(t, tenantA, ['COMPLIANCE']));
    for (const m of ['endBreakGlass', 'reviewBreakGlassGrant']) {
      const res = await t.gql(`mutation($id: UUID!) { ${m}(id: $id) { id } }`, { id: grantB.id }, complianceA.headers);
      expect(res.body.errors?.[0]?.extensions?.code, m).toBe('NOT_FOUND');
    }
    expect(await t.db.owner`select * from break_glass_grants where id = ${grantB.id}`).toEqual(before);
    expect((await t.db.owner<{ n: number }[]>`select count(*)::int as n from break_glass_grants`)[0]!.n).toBe(beforeCount);
    const listed = await t.gql<{ breakGlassGrants: { id: string }[] }>('{ breakGlassGrants { id } }', {}, complianceA.headers);
    expect(listed.body.data?.breakGlassGrants.map((x) => x.id)).not.toContain(grantB.id);
    // a nurse of tenant A with a forged principal for tenant B's patient gets nothing either (RLS)
    expect((await access(nurse, patientB, 'read')).allowed).toBe(false);
  });
});
