import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import auditModule from '../../../src/modules/audit/index.js';
import identityModule from '../../../src/modules/identity/index.js';
import { auditWriterFor, principalEvent, stageChained, verifyTenantChain } from '../../../src/platform/audit/index.js';
import { withTenant } from '../../../src/platform/db/index.js';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { holdInTransaction } from '../../helpers/locks.js';
import { asHeader, createFixtureTable, createTenant, fixturePatientsModule, seedPatients, testAuthModule, type TestPrincipal } from './fixtures.js';
import { QUIET_ENV } from './fixtures.js';

let t: TestApp;
let tenantId: string;
let patients: { id: string; name: string; ssn: string }[];

const provider = (): TestPrincipal => ({
  id: randomUUID(),
  tenantId,
  roles: ['PROVIDER'],
  permissions: ['patient:read', 'patient:write', 'patient:ssn:reveal'],
  sessionId: randomUUID(),
  amr: ['pwd'],
});
const compliance = (amr = ['pwd', 'mfa']): TestPrincipal => ({
  id: randomUUID(),
  tenantId,
  roles: ['COMPLIANCE'],
  permissions: ['audit:read', 'audit:export', 'alert:read', 'alert:manage'],
  amr,
});

interface EventRow {
  id: string;
  patient_id: string | null;
  patient_ids: string[];
  fields: string[];
  categories: string[];
  action: string;
  outcome: string;
  event_type: string;
  actor_id: string;
  actor_type: string;
  actor_roles: string[];
  session_id: string | null;
  purpose_of_use: string | null;
  resource_type: string | null;
  resource_id: string | null;
  request_id: string;
  ip: string | null;
  user_agent: string | null;
  operation_name: string | null;
  detail: Record<string, unknown>;
}

async function eventsOf(requestId: string): Promise<EventRow[]> {
  return t.db.owner<EventRow[]>`select * from audit_events where request_id = ${requestId} order by patient_id, action, outcome`;
}

function req(p: TestPrincipal, extra: Record<string, string> = {}) {
  const requestId = randomUUID();
  return { requestId, headers: { ...asHeader(p), 'x-request-id': requestId, 'user-agent': 'audit-test/1.0', ...extra } };
}

beforeAll(async () => {
  t = await startTestApp({ env: QUIET_ENV, modules: [identityModule, testAuthModule, auditModule, fixturePatientsModule] });
  await createFixtureTable(t.db.owner);
  tenantId = await createTenant(t.db.owner);
  patients = await seedPatients(t.db.owner, tenantId, 4);
});
afterAll(async () => {
  await t?.close();
});

describe('PHI marker', () => {
  it('a query returning PHI for 3 patients records one event naming the 3 patients and the fields, durable before the response', async () => {
    const p = provider();
    const { requestId, headers } = req(p);
    const ids = patients.slice(0, 3).map((x) => x.id);
    const res = await t.gql<{ fixturePatients: { id: string; name: string; ssn: string }[] }>(
      'query ChartList($ids: [UUID!]!) { fixturePatients(ids: $ids) { id mrn name ssn } }',
      { ids },
      headers,
    );
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data?.fixturePatients).toHaveLength(3);
    // a response with PHI is never cached by a browser or proxy (errors neither)
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect((await t.gql('{ nope }', undefined, headers)).headers.get('cache-control')).toBe('no-store');
    // read immediately after the response: the event must already be committed, one row for the page
    const rows = await eventsOf(requestId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      event_type: 'phi',
      action: 'read',
      outcome: 'allowed',
      actor_type: 'user',
      actor_id: p.id,
      actor_roles: ['PROVIDER'],
      session_id: p.sessionId,
      purpose_of_use: 'TREAT',
      resource_type: 'Patient',
      operation_name: 'ChartList',
      user_agent: 'audit-test/1.0',
      patient_id: null,
      patient_ids: [...ids].sort(),
      resource_id: null,
      fields: ['AuditFixturePatient.name', 'AuditFixturePatient.ssn'],
      categories: ['demographics', 'ssn'],
    });
    expect(rows[0]!.ip).toBeTruthy();
    // one patient alone is an event about that patient, as before
    const one = req(p);
    await t.gql('query ChartList($ids: [UUID!]!) { fixturePatients(ids: $ids) { name } }', { ids: [ids[0]] }, one.headers);
    expect(await eventsOf(one.requestId)).toMatchObject([{ patient_id: ids[0], patient_ids: [], resource_id: ids[0] }]);
    // never a PHI value in the log
    const text = JSON.stringify(await t.db.owner`select * from audit_events`);
    for (const x of patients) {
      expect(text).not.toContain(x.name);
      expect(text).not.toContain(x.ssn);
    }
  });

  it('records nothing when no PHI field is selected', async () => {
    const { requestId, headers } = req(provider());
    const res = await t.gql('query { fixturePatients(ids: []) { id mrn } }', undefined, headers);
    expect(res.body.errors).toBeUndefined();
    const res2 = await t.gql('query Q($ids: [UUID!]!) { fixturePatients(ids: $ids) { id mrn } }', { ids: [patients[0]!.id] }, headers);
    expect(res2.body.errors).toBeUndefined();
    expect(await eventsOf(requestId)).toEqual([]);
  });

  it('logs a refused PHI field as denied (and the allowed ones as allowed)', async () => {
    const p = { ...provider(), roles: ['FRONT_DESK'], permissions: ['patient:read'] };
    const { requestId, headers } = req(p);
    const res = await t.gql<{ fixturePatient: { name: string; ssn: string | null } | null }>(
      'query One($id: UUID!) { fixturePatient(id: $id) { name ssn } }',
      { id: patients[0]!.id },
      headers,
    );
    expect(res.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const rows = await eventsOf(requestId);
    const denied = rows.find((r) => r.outcome === 'denied');
    expect(denied).toMatchObject({ patient_id: patients[0]!.id, fields: ['AuditFixturePatient.ssn'], categories: ['ssn'], purpose_of_use: 'HOPERAT' });
    expect(denied?.detail).toEqual({ reason: 'FORBIDDEN' });
    expect(rows.find((r) => r.outcome === 'allowed')?.fields).toEqual(['AuditFixturePatient.name']);
  });

  it('logs a refused root field as denied for the patient it names', async () => {
    const p = { ...provider(), roles: ['BILLING'], permissions: ['billing:read'] };
    const { requestId, headers } = req(p);
    const res = await t.gql('query One($id: UUID!) { fixturePatient(id: $id) { name } }', { id: patients[1]!.id }, headers);
    expect(res.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect(res.body.data?.fixturePatient ?? null).toBeNull();
    const rows = await eventsOf(requestId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ patient_id: patients[1]!.id, outcome: 'denied', action: 'read', purpose_of_use: 'HPAYMT' });
  });

  it('takes the purpose of use from X-Purpose-Of-Use and refuses an unknown one', async () => {
    const { requestId, headers } = req(provider(), { 'x-purpose-of-use': 'hpaymt' });
    const res = await t.gql('query { fixturePatients(ids: []) { id } }', undefined, headers);
    expect(res.body.errors).toBeUndefined();
    const ok = await t.gql('query One($id: UUID!) { fixturePatient(id: $id) { name } }', { id: patients[0]!.id }, headers);
    expect(ok.body.errors).toBeUndefined();
    expect((await eventsOf(requestId)).map((r) => r.purpose_of_use)).toEqual(['HPAYMT']);

    const bad = req(provider(), { 'x-purpose-of-use': 'CURIOSITY' });
    const res2 = await t.gql('query One($id: UUID!) { fixturePatient(id: $id) { name } }', { id: patients[0]!.id }, bad.headers);
    expect(res2.status).toBe(400);
    expect(res2.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'X-Purpose-Of-Use' });
    expect(res2.body.data ?? null).toBeNull();
  });

  it('records a mutation with its action in the request transaction, and a reveal with its category', async () => {
    const p = provider();
    const { requestId, headers } = req(p);
    const res = await t.gql('mutation Rename($id: UUID!) { fixtureRenamePatient(id: $id, name: "Renamed Person") { id name } }', { id: patients[3]!.id }, headers);
    expect(res.body.errors).toBeUndefined();
    const rows = await eventsOf(requestId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ action: 'update', outcome: 'allowed', patient_id: patients[3]!.id, resource_id: patients[3]!.id });
    expect(rows[0]!.fields).toEqual(['AuditFixturePatient.name', 'Patient.name']);

    const r2 = req(p);
    const rev = await t.gql<{ fixtureRevealSsn: string }>('mutation Reveal($id: UUID!) { fixtureRevealSsn(id: $id) }', { id: patients[2]!.id }, r2.headers);
    expect(rev.body.data?.fixtureRevealSsn).toBe(patients[2]!.ssn);
    const rows2 = await eventsOf(r2.requestId);
    expect(rows2).toHaveLength(1);
    expect(rows2[0]).toMatchObject({ action: 'reveal', categories: ['ssn'], fields: ['Mutation.fixtureRevealSsn'] });
  });

  it('returns AUDIT_UNAVAILABLE and no PHI when the audit write fails; a mutation then changes nothing', async () => {
    // reads append through the group writer; a write stages its events in its own transaction (audit_staged)
    await t.db.owner`revoke insert on audit_events from carebase_app`;
    await t.db.owner`revoke insert on audit_staged from carebase_app`;
    try {
      const { requestId, headers } = req(provider());
      const res = await t.gql('query Q($ids: [UUID!]!) { fixturePatients(ids: $ids) { name ssn } }', { ids: [patients[0]!.id] }, headers);
      expect(res.status).toBe(503);
      expect(res.body.data ?? null).toBeNull();
      expect(res.body.errors).toEqual([{ message: expect.any(String), extensions: { code: 'AUDIT_UNAVAILABLE', requestId } }]);
      const raw = JSON.stringify(res.body);
      expect(raw).not.toContain(patients[0]!.name);
      expect(raw).not.toContain(patients[0]!.ssn);

      const m = req(provider());
      const mut = await t.gql('mutation { fixtureRenamePatient(id: "' + patients[0]!.id + '", name: "Should Not Stick") { name } }', undefined, m.headers);
      expect(mut.body.errors?.[0]?.extensions?.code).toBe('AUDIT_UNAVAILABLE');
      expect(JSON.stringify(mut.body)).not.toContain('Should Not Stick');
    } finally {
      await t.db.owner`grant insert on audit_events to carebase_app`;
      await t.db.owner`grant insert on audit_staged to carebase_app`;
    }
    const [row] = await t.db.owner<{ name: string }[]>`select name from audit_fixture_patients where id = ${patients[0]!.id}`;
    expect(row?.name).toBe(patients[0]!.name);
    expect(t.logText()).not.toContain(patients[0]!.name);
  });
});

describe('reports', () => {
  let reader: TestPrincipal;
  let other: TestPrincipal;
  beforeAll(async () => {
    reader = provider();
    other = { ...provider(), roles: ['FRONT_DESK'], permissions: ['patient:read'] };
    for (let i = 0; i < 3; i++) {
      await t.gql('query R($id: UUID!) { fixturePatient(id: $id) { name } }', { id: patients[0]!.id }, req(reader).headers);
    }
    await t.gql('query R($id: UUID!) { fixturePatient(id: $id) { ssn } }', { id: patients[0]!.id }, req(other).headers);
  });

  const REPORT = `query Report($filter: AuditEventFilter, $first: Int, $after: String) {
    auditEvents(filter: $filter, first: $first, after: $after) {
      edges { cursor node { id at patientId patientIds actorId action outcome purposeOfUse fields eventType } }
      pageInfo { hasNextPage endCursor }
    } }`;
  type Report = {
    auditEvents: {
      edges: { cursor: string; node: { id: string; at: string; patientId: string; patientIds: string[]; actorId: string; action: string; outcome: string; fields: string[]; eventType: string } }[];
      pageInfo: { hasNextPage: boolean; endCursor: string | null };
    };
  };

  it('by patient: every access to the patient, newest first, with denied ones', async () => {
    const res = await t.gql<Report>(REPORT, { filter: { patientId: patients[0]!.id, eventTypes: ['PHI'] }, first: 100 }, req(compliance()).headers);
    expect(res.body.errors).toBeUndefined();
    const nodes = res.body.data!.auditEvents.edges.map((e) => e.node);
    expect(nodes.every((n) => n.patientIds.includes(patients[0]!.id))).toBe(true);
    expect(nodes.filter((n) => n.actorId === reader.id)).toHaveLength(3);
    // with the lists that named it among other patients (one event per page: patientId null)
    const lists = nodes.filter((n) => n.patientId === null);
    expect(lists.length).toBeGreaterThan(0);
    for (const n of lists) expect(n.patientIds.length).toBeGreaterThan(1);
    const [all] = await t.db.owner<{ n: number }[]>`
      select count(*)::int as n from audit_events where event_type = 'phi' and (patient_id = ${patients[0]!.id} or ${patients[0]!.id} = any(patient_ids))`;
    expect(nodes).toHaveLength(all!.n);
    expect(nodes.find((n) => n.actorId === other.id && n.outcome === 'DENIED')?.fields).toEqual(['AuditFixturePatient.ssn']);
    const times = nodes.map((n) => Date.parse(n.at));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
  });

  it('by user, paged with keyset cursors', async () => {
    const c = compliance();
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 5; page++) {
      const res: Awaited<ReturnType<typeof t.gql<Report>>> = await t.gql<Report>(REPORT, { filter: { actorId: reader.id }, first: 2, after }, req(c).headers);
      expect(res.body.errors).toBeUndefined();
      const conn = res.body.data!.auditEvents;
      seen.push(...conn.edges.map((e) => e.node.id));
      for (const e of conn.edges) expect(e.node.actorId).toBe(reader.id);
      if (!conn.pageInfo.hasNextPage) break;
      after = conn.pageInfo.endCursor;
    }
    expect(seen).toHaveLength(3);
    expect(new Set(seen).size).toBe(3);
  });

  it('a list of actions or purposes pages through exactly the matching events, newest first', async () => {
    const c = compliance();
    // bounded by `to`, so the reports' own audit events (written while paging) stay out
    const to = new Date();
    const filters: { actions?: string[]; purposes?: string[] }[] = [{ actions: ['read', 'reveal', 'update'] }, { purposes: ['TREAT', 'HOPERAT'] }, { actions: ['read'], purposes: ['TREAT', 'HOPERAT'] }];
    for (const f of filters) {
      const filter = { ...f, to: to.toISOString() };
      const seen: string[] = [];
      let after: string | null = null;
      for (let page = 0; page < 200; page++) {
        const res: Awaited<ReturnType<typeof t.gql<Report>>> = await t.gql<Report>(REPORT, { filter, first: 2, after }, req(c).headers);
        expect(res.body.errors).toBeUndefined();
        const conn = res.body.data!.auditEvents;
        seen.push(...conn.edges.map((e) => e.node.id));
        if (!conn.pageInfo.hasNextPage) break;
        after = conn.pageInfo.endCursor;
      }
      const actions = f.actions ?? null;
      const purposes = f.purposes ?? null;
      const expected = await t.db.owner<{ id: string }[]>`
        select id from audit_events
         where tenant_id = ${tenantId} and at < ${to}
           and (${actions}::text[] is null or action = any(${actions}::text[]))
           and (${purposes}::text[] is null or purpose_of_use = any(${purposes}::text[]))
         order by at desc, id desc`;
      expect(expected.length).toBeGreaterThan(2);
      expect(seen).toEqual(expected.map((r) => r.id));
    }
  });

  it('denied accesses and date ranges', async () => {
    const res = await t.gql<Report>(REPORT, { filter: { outcome: 'DENIED', from: new Date(Date.now() - 3_600_000).toISOString(), to: new Date(Date.now() + 60_000).toISOString() } }, req(compliance()).headers);
    expect(res.body.errors).toBeUndefined();
    const nodes = res.body.data!.auditEvents.edges.map((e) => e.node);
    expect(nodes.length).toBeGreaterThan(0);
    expect(nodes.every((n) => n.outcome === 'DENIED')).toBe(true);
    const none = await t.gql<Report>(REPORT, { filter: { outcome: 'DENIED', to: '2001-01-01T00:00:00Z' } }, req(compliance()).headers);
    expect(none.body.data!.auditEvents.edges).toEqual([]);
  });

  it('the report is itself audited', async () => {
    const c = compliance();
    const r = req(c);
    await t.gql(REPORT, { filter: { patientId: patients[0]!.id } }, r.headers);
    const rows = await eventsOf(r.requestId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ event_type: 'audit', action: 'read', resource_type: 'AuditLog', patient_id: patients[0]!.id, purpose_of_use: 'HCOMPL', fields: ['AuditLog.patientId'] });
    expect(rows[0]!.detail).toMatchObject({ patientFilter: patients[0]!.id });
  });

  it("a report filtered by an id that is no patient of the tenant (another tenant's, a random one) names no patient, keeps the id in detail, and answers the same every time", async () => {
    const otherTenant = await createTenant(t.db.owner);
    const [foreign] = await seedPatients(t.db.owner, otherTenant, 1);
    for (const id of [foreign!.id, randomUUID()]) {
      for (let i = 0; i < 3; i++) {
        const r = req(compliance());
        const res = await t.gql<Report>(REPORT, { filter: { patientId: id } }, r.headers);
        expect(res.body.errors).toBeUndefined();
        expect(res.body.data!.auditEvents.edges).toEqual([]);
        const rows = await eventsOf(r.requestId);
        expect(rows).toHaveLength(1);
        expect(rows[0]).toMatchObject({ event_type: 'audit', resource_type: 'AuditLog', patient_id: null, fields: ['AuditLog.patientId'], detail: { patientFilter: id } });
      }
    }
    // nothing in this tenant's log names the other tenant's patient
    const [n] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from audit_events where tenant_id = ${tenantId} and patient_id = ${foreign!.id}`;
    expect(n!.n).toBe(0);
  });

  it('requires MFA, refuses API keys and users without audit:read, and logs the refusals', async () => {
    const noMfa = req(compliance(['pwd']));
    const res = await t.gql(REPORT, {}, noMfa.headers);
    expect(res.body.errors?.[0]?.extensions).toMatchObject({ code: 'FORBIDDEN', reason: 'MFA_REQUIRED' });
    expect(res.body.data?.auditEvents ?? null).toBeNull();
    expect((await eventsOf(noMfa.requestId))[0]).toMatchObject({ event_type: 'audit', outcome: 'denied' });

    const key = req({ ...compliance(['mfa']), kind: 'apiKey' });
    const res2 = await t.gql(REPORT, {}, key.headers);
    expect(res2.body.errors?.[0]?.extensions).toMatchObject({ code: 'FORBIDDEN', reason: 'API_KEY_NOT_ALLOWED' });

    const clinician = req(provider());
    const res3 = await t.gql(REPORT, {}, clinician.headers);
    expect(res3.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect((await eventsOf(clinician.requestId))[0]).toMatchObject({ outcome: 'denied', resource_type: 'AuditLog' });
  });

  it('rejects bad filters with a typed error', async () => {
    const res = await t.gql(REPORT, { filter: { actions: ['DROP TABLE'] } }, req(compliance()).headers);
    expect(res.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT' });
    const res2 = await t.gql(REPORT, { after: 'not-a-cursor' }, req(compliance()).headers);
    expect(res2.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
  });

  it('verifyAuditIntegrity reports an intact chain', async () => {
    const res = await t.gql<{ verifyAuditIntegrity: { ok: boolean; checked: number; headSeq: number; brokenAt: unknown } }>(
      '{ verifyAuditIntegrity { ok checked headSeq brokenAt { seq reason } } }',
      undefined,
      req(compliance()).headers,
    );
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data?.verifyAuditIntegrity.ok).toBe(true);
    expect(res.body.data?.verifyAuditIntegrity.brokenAt).toBeNull();
    expect(res.body.data?.verifyAuditIntegrity.checked).toBe(res.body.data?.verifyAuditIntegrity.headSeq);
    expect(res.body.data?.verifyAuditIntegrity.checked).toBeGreaterThan(10);
  });
});

describe('writes stage their events and the group writer chains them', () => {
  it("a write commits while the tenant's chain head is held; its events are chained once the head is free, before the response", async () => {
    // as a long append of the same tenant would (the chain head row, locked until its COMMIT)
    const release = await holdInTransaction(t.db.owner, async (sql) => {
      await sql`select set_config('app.tenant_id', ${tenantId}, true)`;
      await sql`select 1 from audit_chain_heads where tenant_id = ${tenantId} for update`;
    });
    const m = req(provider());
    const pending = t.gql('mutation { fixtureRenamePatient(id: "' + patients[2]!.id + '", name: "Staged Person") { name } }', undefined, m.headers);
    // the change and its staged event commit without the head: visible while the head is still held
    await expect
      .poll(async () => (await t.db.owner<{ name: string }[]>`select name from audit_fixture_patients where id = ${patients[2]!.id}`)[0]?.name, { timeout: 5_000 })
      .toBe('Staged Person');
    expect(await t.db.owner`select 1 from audit_staged where tenant_id = ${tenantId}`).toHaveLength(1);
    await release();
    const res = await pending;
    expect(res.body.errors).toBeUndefined();
    // answered only once the event is in the chain
    expect(await eventsOf(m.requestId)).toHaveLength(1);
    expect(await t.db.owner`select 1 from audit_staged where tenant_id = ${tenantId}`).toHaveLength(0);
    const report = await verifyTenantChain(t.db.owner, tenantId, new Map());
    expect(report.ok).toBe(true);
  });

  it('events a crash left staged (committed, not chained) are chained by the next sweep, in order, and the chain verifies', async () => {
    const before = (await verifyTenantChain(t.db.owner, tenantId, new Map())).headSeq;
    const events = [0, 1, 2].map((i) =>
      principalEvent({ kind: 'user', id: `crashed-${i}`, tenantId, roles: ['PROVIDER'] }, { requestId: `crash-${i}` }, {
        eventType: 'phi',
        action: 'update',
        outcome: 'allowed',
        resourceType: 'Patient',
        patientId: patients[3]!.id,
        resourceId: patients[3]!.id,
        fields: ['Patient.name'],
      }),
    );
    // staged and committed by the app role, as a write does, and never chained (the process died)
    await withTenant(t.db.sql, tenantId, async (_db, sql) => {
      await stageChained(sql, tenantId, events);
    });
    expect(await t.db.owner`select 1 from audit_staged where tenant_id = ${tenantId}`).toHaveLength(3);
    expect(await auditWriterFor(t.db.sql).chainAllStaged()).toBeGreaterThanOrEqual(1);
    const rows = await t.db.owner<{ request_id: string; seq: string }[]>`select request_id, seq from audit_events where tenant_id = ${tenantId} and request_id like 'crash-%' order by seq`;
    expect(rows.map((r) => r.request_id)).toEqual(['crash-0', 'crash-1', 'crash-2']);
    expect(Number(rows[0]!.seq)).toBe(before + 1);
    expect(await t.db.owner`select 1 from audit_staged where tenant_id = ${tenantId}`).toHaveLength(0);
    expect((await verifyTenantChain(t.db.owner, tenantId, new Map())).ok).toBe(true);
  });

  it('the app role can stage events but not read, change or delete staged ones', async () => {
    for (const statement of ['select * from audit_staged', 'delete from audit_staged', 'update audit_staged set before = before']) {
      const err = await withTenant(t.db.sql, tenantId, async (_db, sql) => sql.unsafe(statement)).catch((e) => e);
      expect(err?.code).toBe('42501'); // insufficient_privilege
    }
  });
});

// last in this file: the detached partition leaves the fixture tenant's chain with a gap
describe('a missing monthly partition', () => {
  it('a mutation is saved with its events staged; chaining them creates the partition; later reads are audited', async () => {
    const now = new Date();
    const part = `audit_events_${now.getUTCFullYear()}${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
    const detached = `detached_${part}_${Date.now()}`;
    // as an operator who detached this month's partition (its rows stay in the detached table)
    await t.db.owner.unsafe(`alter table audit_events detach partition audit_partitions.${part}`);
    await t.db.owner.unsafe(`alter table audit_partitions.${part} rename to ${detached}`);

    const m = req(provider());
    const mut = await t.gql('mutation { fixtureRenamePatient(id: "' + patients[1]!.id + '", name: "Partitioned Person") { name } }', undefined, m.headers);
    // the write and its staged events commit together (staging is not partitioned); the chaining that follows meets
    // the missing partition, creates it and chains the events before the response
    expect(mut.body.errors).toBeUndefined();
    const [renamed] = await t.db.owner<{ name: string }[]>`select name from audit_fixture_patients where id = ${patients[1]!.id}`;
    expect(renamed?.name).toBe('Partitioned Person');
    expect((await t.db.owner`select to_regclass(${`audit_partitions.${part}`}) as r`)[0]!.r).not.toBeNull();
    expect(await eventsOf(m.requestId)).toHaveLength(1);
    expect(await t.db.owner`select 1 from audit_staged`).toHaveLength(0);

    const { requestId, headers } = req(provider());
    const res = await t.gql('query One($id: UUID!) { fixturePatient(id: $id) { name } }', { id: patients[1]!.id }, headers);
    expect(res.body.errors).toBeUndefined();
    expect(await eventsOf(requestId)).toHaveLength(1);
  });
});
