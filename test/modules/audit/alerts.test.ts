import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import auditModule, { drainSecurityEvents, runAnomalyCheck, type PatientDirectory } from '../../../src/modules/audit/index.js';
import identityModule from '../../../src/modules/identity/index.js';
import { resourceLookupKey } from '../../../src/platform/access/index.js';
import type { ModuleManifest } from '../../../src/schema/index.js';
import { AuditWriter, auditWriterFor, principalEvent, type AuditEventInput } from '../../../src/platform/audit/index.js';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { createTenantWithAdmin, userSession, type TestTenant } from '../../helpers/auth.js';
import { patientDirectory } from '../../../src/modules/patients/directory.js';
import { QUIET_ENV, asHeader, createTenant, testAuthModule, type TestPrincipal } from './fixtures.js';

let t: TestApp;
/** the one patient this app knows (no patients module here): a module that provides the lookup by id for it */
const vip = randomUUID();
const vipDirectory: ModuleManifest = { name: 'test-vip', phase: 0, description: 'knows one patient', dependsOn: [], provides: { [resourceLookupKey('patient')]: async (_db: unknown, id: string) => id === vip } };

beforeAll(async () => {
  t = await startTestApp({ env: QUIET_ENV, modules: [identityModule, testAuthModule, auditModule, vipDirectory] });
});
afterAll(async () => {
  await t?.close();
});

describe('group commit', () => {
  it('appends arriving in the same turn of the event loop share one transaction, and each resolves after it commits', async () => {
    const tenantId = await createTenant(t.db.owner);
    const writer = new AuditWriter({ sql: t.db.sql });
    const actor = { kind: 'user' as const, id: randomUUID(), tenantId, roles: ['NURSE'] };
    const events = Array.from({ length: 20 }, (_, i) =>
      principalEvent(actor, { requestId: `gc-${i}` }, { eventType: 'phi', action: 'read', outcome: 'allowed', resourceType: 'Patient', patientId: randomUUID() }),
    );
    const committed: number[] = [];
    await Promise.all(
      events.map((e, i) =>
        writer.append([e]).then(async () => {
          // visible to another connection the moment the promise settles
          const [row] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from audit_events where id = ${e.id}`;
          committed.push(row!.n);
          return i;
        }),
      ),
    );
    expect(committed).toEqual(Array(20).fill(1));
    expect(writer.stats()).toMatchObject({ batches: 1, requests: 20, events: 20, maxBatchRequests: 20, failures: 0 });
    const [head] = await t.db.owner<{ seq: string }[]>`select seq from audit_chain_heads where tenant_id = ${tenantId}`;
    expect(Number(head!.seq)).toBe(20);
    await writer.close();
    await expect(writer.append([events[0]!])).rejects.toThrow(/closed/);
  });
});

describe('with identity', () => {
  let clinic: TestTenant;
  beforeAll(async () => {
    clinic = await createTenantWithAdmin(t);
  });

  it('identity security events (sign-ins) flow into the same hash-chained log', async () => {
    const session = await userSession(t, clinic, 'NURSE');
    // the app's own drain (every 5 s) may hold the inbox rows (for update skip locked) when this one runs: this drain
    // then skips them and returns before that one commits, so drain until the event is there (bounded: 20 s)
    type Row = { action: string; outcome: string; actor_id: string; event_type: string; detail: Record<string, unknown> };
    let login: Row | undefined;
    for (let i = 0; i < 200 && !login; i++) {
      if (i) await new Promise((r) => setTimeout(r, 100));
      await drainSecurityEvents(t.db.sql);
      const rows = await t.db.owner<Row[]>`
        select action, outcome, actor_id, event_type, detail from audit_events where tenant_id = ${clinic.id} and event_type = 'security' order by seq`;
      login = rows.find((r) => r.action === 'login.success' && r.actor_id === session.user.id);
    }
    expect(login).toMatchObject({ outcome: 'allowed', event_type: 'security' });
    expect(typeof login!.detail.securityEventId).toBe('string');
    // each security event exactly once, however often the inbox is drained
    await drainSecurityEvents(t.db.sql);
    const [dup] = await t.db.owner<{ n: number }[]>`
      select count(*)::int - count(distinct id)::int as n from audit_events where tenant_id = ${clinic.id} and event_type = 'security'`;
    expect(dup!.n).toBe(0);
    const [inbox] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from audit_inbox where tenant_id = ${clinic.id}`;
    expect(inbox!.n).toBe(0);
  });

  it('a compliance user signed in with MFA pulls reports and the CSV export with the bearer token', async () => {
    const officer = await userSession(t, clinic, 'COMPLIANCE');
    const res = await t.gql<{ auditEvents: { edges: { node: { action: string } }[] } }>(
      'query { auditEvents(filter: { eventTypes: [SECURITY] }, first: 50) { edges { node { action actorId } } } }',
      undefined,
      officer.headers,
    );
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data!.auditEvents.edges.length).toBeGreaterThan(0);
    const csv = await fetch(`${t.url}/exports/audit.csv?eventType=security`, { headers: officer.headers });
    expect(csv.status).toBe(200);
    expect((await csv.text()).split('\n')[0]).toMatch(/^id,at,seq,/);
    // a clinician's token is refused
    const nurse = await userSession(t, clinic, 'NURSE');
    expect((await fetch(`${t.url}/exports/audit.csv`, { headers: nurse.headers })).status).toBe(403);
    const verify = await t.gql<{ verifyAuditIntegrity: { ok: boolean } }>('{ verifyAuditIntegrity { ok } }', undefined, officer.headers);
    expect(verify.body.data?.verifyAuditIntegrity.ok).toBe(true);
  });
});

describe('anomaly alerts', () => {
  let tenantId: string;
  const snooper = randomUUID();
  const clinician = randomUUID();
  const onTeam = randomUUID();
  const offTeam = randomUUID();
  const officer = (): TestPrincipal => ({ id: randomUUID(), tenantId, roles: ['COMPLIANCE'], permissions: ['alert:read', 'alert:manage', 'audit:read'], amr: ['pwd', 'mfa'] });

  function at(iso: string, actorId: string, patientId: string, extra: Partial<AuditEventInput> = {}): AuditEventInput {
    const e = principalEvent({ kind: 'user', id: actorId, tenantId, roles: ['NURSE'] }, { requestId: randomUUID() }, {
      eventType: 'phi', action: 'read', outcome: 'allowed', resourceType: 'Patient', patientId, fields: ['Patient.name'],
    });
    return { ...e, at: new Date(iso), ...extra };
  }

  beforeAll(async () => {
    tenantId = await createTenant(t.db.owner);
    // business hours 08:00-18:00 UTC, weekends included as business days
    await t.db.owner`update tenants set settings = ${t.db.owner.json({ audit: { volumePatientsPerHour: 20, businessHours: { start: 8, end: 18, timezone: 'UTC', weekends: true } } })} where id = ${tenantId}`;
    // the flag needs a patient of the tenant (no patients module here: test-vip provides a lookup that knows this one id)
    const flag = await t.gql('mutation F($p: UUID!) { setPatientAuditFlag(patientId: $p, flag: VIP) }', { p: vip }, asHeader(officer()));
    expect(flag.body.errors).toBeUndefined();
  });

  it('raises HIGH_VOLUME, AFTER_HOURS, BREAK_GLASS_FREQUENT, FLAGGED_PATIENT and OUTSIDE_CARE_TEAM; re-runs do not duplicate; compliance lists and acknowledges', async () => {
    const now = new Date();
    const day = new Date(now.getTime() - 86_400_000).toISOString().slice(0, 10); // yesterday (UTC)
    const events: AuditEventInput[] = [];
    // the snooper's 25 patients: 15 charts opened one by one and a search page of 10 (one event naming the 10)
    for (let i = 0; i < 15; i++) events.push(at(`${day}T10:${String(i).padStart(2, '0')}:00Z`, snooper, randomUUID()));
    const page = Array.from({ length: 10 }, () => randomUUID()).sort();
    events.push(at(`${day}T10:30:00Z`, snooper, randomUUID(), { patientId: null, patientIds: page }));
    events.push(at(`${day}T02:30:00Z`, clinician, onTeam));
    for (let i = 0; i < 4; i++) events.push(at(`${day}T11:0${i}:00Z`, clinician, randomUUID(), { purposeOfUse: 'ETREAT' }));
    // the VIP and the patient off the clinician's care team were on a page of search results
    events.push(at(`${day}T12:00:00Z`, clinician, vip, { patientId: null, patientIds: [vip, offTeam].sort() }));
    await auditWriterFor(t.db.sql).append(events);

    // the care teams a patients module would provide under PATIENT_DIRECTORY (the audit.anomalies job passes what is provided)
    const directory: PatientDirectory = {
      careTeamMembers: async (_sql, pairs) =>
        new Set(pairs.filter((p) => p.actorId === snooper || p.patientId === onTeam || p.patientId === vip).map((p) => `${p.actorId}:${p.patientId}`)),
    };
    const n = await runAnomalyCheck(t.db.sql, undefined, { now, lagMs: 0, initialLookbackMs: 3 * 86_400_000, directories: [directory] });
    expect(n).toBeGreaterThan(0);
    const LIST = `query A { auditAlerts(status: OPEN, first: 100) { edges { node { id rule actorId patientId eventCount status detail } } } }`;
    type Alerts = { auditAlerts: { edges: { node: { id: string; rule: string; actorId: string; patientId: string | null; eventCount: number; status: string; detail: Record<string, unknown> } }[] } };
    const res = await t.gql<Alerts>(LIST, undefined, asHeader(officer()));
    expect(res.body.errors).toBeUndefined();
    const alerts = res.body.data!.auditAlerts.edges.map((e) => e.node);
    const byRule = (rule: string) => alerts.filter((a) => a.rule === rule);
    expect(byRule('HIGH_VOLUME')).toEqual([expect.objectContaining({ actorId: snooper, eventCount: 25 })]);
    expect(byRule('AFTER_HOURS')).toEqual([expect.objectContaining({ actorId: clinician, eventCount: 1 })]);
    expect(byRule('BREAK_GLASS_FREQUENT')).toEqual([expect.objectContaining({ actorId: clinician, eventCount: 4 })]);
    expect(byRule('FLAGGED_PATIENT')).toEqual([expect.objectContaining({ actorId: clinician, patientId: vip, detail: { flag: 'vip' } })]);
    expect(byRule('OUTSIDE_CARE_TEAM').map((a) => a.patientId)).toContain(offTeam);
    expect(byRule('OUTSIDE_CARE_TEAM').map((a) => a.patientId)).not.toContain(onTeam);

    // each new alert is pushed to the compliance room through the outbox: ids and codes only
    const pushed = async () =>
      t.db.owner<{ aggregate_id: string; rooms: string[]; payload: Record<string, unknown> }[]>`
        select aggregate_id, rooms, payload from outbox where tenant_id = ${tenantId} and type = 'audit.alertRaised'`;
    const first = await pushed();
    expect(first.map((e) => e.aggregate_id).sort()).toEqual(alerts.map((a) => a.id).sort());
    for (const e of first) {
      expect(e.rooms).toEqual(['alerts:security']);
      expect(Object.keys(e.payload).sort()).toEqual(['alertId', 'rule', 'severity']);
    }

    // a second run over the same (already checked) window adds nothing (no alert, no push)
    await runAnomalyCheck(t.db.sql, undefined, { now, lagMs: 0, initialLookbackMs: 3 * 86_400_000 });
    const [count] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from audit_alerts where tenant_id = ${tenantId}`;
    expect(count!.n).toBe(alerts.length);
    expect(await pushed()).toHaveLength(first.length);

    // the room is for holders of alert:read only (the room type's permission, then its check)
    const room = auditModule.roomAccess!.alerts! as Exclude<NonNullable<typeof auditModule.roomAccess>[string], (...a: never[]) => unknown>;
    const canJoin = async (p: { permissions: ReadonlySet<string> }, id: string, db: never) => p.permissions.has(room.permission!) && (await room.check(p as never, id, db));
    const db = undefined as never;
    expect(await canJoin({ ...officer(), kind: 'user', permissions: new Set(['alert:read']) } as never, 'security', db)).toBe(true);
    expect(await canJoin({ ...officer(), kind: 'user', permissions: new Set(['audit:read']) } as never, 'security', db)).toBe(false);
    expect(await canJoin({ ...officer(), kind: 'user', permissions: new Set(['alert:read']) } as never, 'other', db)).toBe(false);

    const target = byRule('HIGH_VOLUME')[0]!;
    const ack = await t.gql<{ acknowledgeAuditAlert: { status: string } }>(
      'mutation Ack($id: UUID!) { acknowledgeAuditAlert(id: $id) { status acknowledgedBy } }',
      { id: target.id },
      asHeader(officer()),
    );
    expect(ack.body.data?.acknowledgeAuditAlert.status).toBe('ACKNOWLEDGED');
    const open = await t.gql<Alerts>(LIST, undefined, asHeader(officer()));
    expect(open.body.data!.auditAlerts.edges.map((e) => e.node.id)).not.toContain(target.id);

    // alerts are not for clinicians
    const denied = await t.gql(LIST, undefined, asHeader({ id: randomUUID(), tenantId, roles: ['NURSE'], permissions: ['patient:read'] }));
    expect(denied.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });
});

describe('OUTSIDE_CARE_TEAM with the patients module\'s directory', () => {
  it('flags a nurse (care-team access) outside the care team, never the front desk or billing (tenant-wide access by role)', async () => {
    const tenantId = await createTenant(t.db.owner);
    const nurse = randomUUID();
    const desk = randomUUID();
    const biller = randomUUID();
    const patient = randomUUID();
    const now = new Date();
    const hourAgo = new Date(now.getTime() - 3_600_000);
    const ev = (actorId: string, roles: string[]): AuditEventInput => ({
      ...principalEvent({ kind: 'user', id: actorId, tenantId, roles }, { requestId: randomUUID() }, { eventType: 'phi', action: 'read', outcome: 'allowed', resourceType: 'Patient', patientId: patient, fields: ['Patient.name'] }),
      at: hourAgo,
    });
    await auditWriterFor(t.db.sql).append([ev(nurse, ['NURSE']), ev(desk, ['FRONT_DESK']), ev(biller, ['BILLING', 'COMPLIANCE'])]);
    const seen: { actorId: string; roles: readonly string[] }[] = [];
    const spy: PatientDirectory = {
      careTeamMembers: async (sql, pairs) => {
        seen.push(...pairs.map((p) => ({ actorId: p.actorId, roles: p.roles })));
        return patientDirectory.careTeamMembers!(sql, pairs);
      },
    };
    await runAnomalyCheck(t.db.sql, undefined, { now, lagMs: 0, initialLookbackMs: 2 * 3_600_000, directories: [spy] });
    // the directory is told each actor's roles
    expect(seen.find((p) => p.actorId === desk)?.roles).toEqual(['FRONT_DESK']);
    expect([...(seen.find((p) => p.actorId === biller)?.roles ?? [])].sort()).toEqual(['BILLING', 'COMPLIANCE']);
    const rows = await t.db.owner<{ actor_id: string }[]>`select actor_id from audit_alerts where tenant_id = ${tenantId} and rule = 'OUTSIDE_CARE_TEAM'`;
    expect(rows.map((r) => r.actor_id)).toEqual([nurse]);
  });
});
