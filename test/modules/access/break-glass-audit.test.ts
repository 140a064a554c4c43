import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { adminSession, createTenantWithAdmin, userSession, type AuthSession, type TestTenant } from '../../helpers/auth.js';
import { basePatient, CREATE, GET, ok, patientModules, patientTestEnv } from '../patients/helpers.js';

/**
 * The audit trail of break-glass, end to end with the real patients module:
 * a read opened by a grant carries that grant, and the compliance filter
 * `breakGlass: true` lists the invocation itself next to the reads.
 */

let t: TestApp;
let clinic: TestTenant;
let desk: AuthSession;
let provider: AuthSession;
let compliance: AuthSession;

const AUDIT = `query($filter: AuditEventFilter) { auditEvents(filter: $filter, first: 100) {
  edges { node { action eventType outcome patientId resourceType resourceId purposeOfUse actorId detail } } } }`;
type Ev = { action: string; eventType: string; outcome: string; patientId: string | null; resourceType: string | null; resourceId: string | null; purposeOfUse: string | null; actorId: string; detail: Record<string, unknown> };

beforeAll(async () => {
  t = await startTestApp({ modules: patientModules, env: patientTestEnv });
  clinic = await createTenantWithAdmin(t);
  await adminSession(t, clinic); // signed in once (TOTP enrolment) before the parallel invitations
  [desk, provider, compliance] = await Promise.all([userSession(t, clinic, 'FRONT_DESK'), userSession(t, clinic, 'PROVIDER'), userSession(t, clinic, 'COMPLIANCE')]);
}, 120_000);
afterAll(async () => {
  await t?.close();
});

describe('break-glass in the audit log', () => {
  it('a read opened by a grant names the grant; filter breakGlass lists the invocation and the read', async () => {
    const p = ok(await t.gql<{ createPatient: { id: string } }>(CREATE, { input: basePatient({ givenName: 'Glass' }) }, desk.headers)).createPatient;
    const grant = ok(
      await t.gql<{ invokeBreakGlass: { id: string } }>('mutation($input: InvokeBreakGlassInput!) { invokeBreakGlass(input: $input) { id } }', { input: { patientId: p.id, reason: 'unconscious patient in the emergency room' } }, provider.headers),
    ).invokeBreakGlass;
    ok(await t.gql(GET, { id: p.id }, provider.headers));

    // the read: purpose ETREAT and the grant that opened it
    const [read] = await t.db.owner<{ purpose_of_use: string; detail: Record<string, unknown> }[]>`
      select purpose_of_use, detail from audit_events
       where patient_id = ${p.id} and action = 'read' and outcome = 'allowed' and actor_id = ${provider.user.id} order by seq desc limit 1`;
    expect(read).toMatchObject({ purpose_of_use: 'ETREAT', detail: { breakGlassGrantId: grant.id } });

    // compliance: the break-glass report holds the invocation (with its grant) and the access it opened
    const report = ok(await t.gql<{ auditEvents: { edges: { node: Ev }[] } }>(AUDIT, { filter: { breakGlass: true } }, compliance.headers)).auditEvents.edges.map((e) => e.node);
    const invocation = report.find((e) => e.action === 'break-glass');
    expect(invocation).toMatchObject({
      eventType: 'PHI',
      outcome: 'ALLOWED',
      patientId: p.id,
      resourceType: 'BreakGlassGrant',
      resourceId: grant.id,
      purposeOfUse: 'ETREAT',
      actorId: provider.user.id,
      detail: { breakGlassGrantId: grant.id },
    });
    expect(report.find((e) => e.action === 'read' && e.patientId === p.id)?.detail).toMatchObject({ breakGlassGrantId: grant.id });
    // and nothing that is not break-glass
    expect(report.every((e) => e.action === 'break-glass' || e.purposeOfUse === 'ETREAT')).toBe(true);
    // the reason text stays in the grant row: never in the audit log
    expect(JSON.stringify(report)).not.toContain('unconscious');
  });
});
