import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditWriter, principalEvent, verifyTenantChain, type AuditEventInput } from '../../../src/platform/audit/index.js';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { createTenantWithAdmin, userSession, type AuthSession, type TestTenant } from '../../helpers/auth.js';
import { basePatient, CREATE, GET, ok, patientModules, patientTestEnv } from '../patients/helpers.js';

/**
 * Issue 18 item 3: one tenant's hostile audit filter (a NUL byte or a lone
 * surrogate, which PostgreSQL refuses in text/jsonb) must never fail another
 * request's audit trail, and the denied attempt itself is recorded.
 */
let t: TestApp;
let attacker: AuthSession;
let reader: AuthSession;
let patientId: string;
let tenantA: string;
let clinicA: TestTenant;
beforeAll(async () => {
  t = await startTestApp({ modules: patientModules, env: patientTestEnv });
  const [a, b] = await Promise.all([createTenantWithAdmin(t), createTenantWithAdmin(t)]);
  tenantA = a.id;
  clinicA = a;
  // a signed-in user without audit:read
  attacker = await userSession(t, a, 'NURSE');
  reader = await userSession(t, b, 'FRONT_DESK');
  patientId = ok(await t.gql<{ createPatient: { id: string } }>(CREATE, { input: basePatient() }, reader.headers)).createPatient.id;
});
afterAll(async () => {
  await t?.close();
});

const BAD_FILTER = 'query Hostile($v: String) { auditEvents(filter: { actorId: $v }) { edges { cursor } } }';

/** Runs `n` tasks, `width` at a time. */
async function pool<T>(n: number, width: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await task(i);
      }
    }),
  );
  return out;
}

describe('a NUL or lone-surrogate audit filter from one tenant', () => {
  it('fails no read of another tenant, and the denied attempt is audited', async () => {
    const attempts = 40;
    const [reads, hostile] = await Promise.all([
      pool(240, 12, () => t.gql(GET, { id: patientId }, reader.headers)),
      pool(attempts, 2, (i) => t.gql(BAD_FILTER, { v: i % 2 ? 'a\u0000b' : '\ud800' }, attacker.headers)),
    ]);
    const failed = reads.filter((r) => r.status !== 200 || r.body.errors?.length);
    expect(failed.map((r) => r.body.errors?.[0]?.extensions?.code)).toEqual([]);
    for (const r of hostile) {
      expect(r.status).toBe(400);
      expect(r.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    }
    // every hostile attempt left its denied row (the argument, never the value)
    const rows = await t.db.owner<{ action: string; detail: Record<string, unknown> }[]>`
      select action, detail from audit_events where tenant_id = ${tenantA} and actor_id = ${attacker.user.id} and outcome = 'denied'`;
    expect(rows).toHaveLength(attempts);
    expect(JSON.stringify(rows)).not.toMatch(/\\u0000|\\ud800/);
    const reads200 = await t.db.owner<{ n: number }[]>`
      select count(*)::int as n from audit_events where patient_id = ${patientId} and action = 'read' and outcome = 'allowed'`;
    expect(reads200[0]!.n).toBeGreaterThanOrEqual(240);
  });
});

describe('the same filter on the CSV export route (REST)', () => {
  it('is BAD_USER_INPUT before it reaches SQL, and exports still work', async () => {
    const compliance = await userSession(t, clinicA, 'COMPLIANCE');
    const get = (query: string) => fetch(`${t.url}/exports/audit.csv${query}`, { headers: compliance.headers });
    const bad = await get('?actorId=a%00b');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions.code).toBe('BAD_USER_INPUT');
    const good = await get(`?actorId=${attacker.user.id}`);
    expect(good.status).toBe(200);
    expect(await good.text()).toContain(attacker.user.id);
  });
});

describe('the audit writer', () => {
  const actor = (tenantId: string) => ({ kind: 'user' as const, id: randomUUID(), tenantId, roles: ['NURSE'] });
  const event = (tenantId: string, over: Partial<AuditEventInput> = {}): AuditEventInput => ({
    ...principalEvent(actor(tenantId), { requestId: `req-${randomUUID()}` }, { eventType: 'audit', action: 'read', outcome: 'denied', resourceType: 'AuditLog' }),
    ...over,
  });

  it('stores client strings PostgreSQL would refuse with U+FFFD instead, and the chain still verifies', async () => {
    const writer = new AuditWriter({ sql: t.db.sql });
    const e = event(tenantA, { userAgent: 'agent\ud800', detail: { actorFilter: 'a\u0000b', ['k\udc00']: '\udbff!' } });
    await writer.append([e]);
    await writer.close();
    const [row] = await t.db.owner<{ user_agent: string; detail: Record<string, string> }[]>`select user_agent, detail from audit_events where id = ${e.id}`;
    expect(row!.user_agent).toBe('agent\ufffd');
    expect(row!.detail).toEqual({ actorFilter: 'a\ufffdb', 'k\ufffd': '\ufffd!' });
    const report = await verifyTenantChain(t.db.owner, tenantA, new Map());
    expect(report.ok).toBe(true);
  });

  it('a batch PostgreSQL refuses because of one event commits every other request, and fails only that one', async () => {
    const writer = new AuditWriter({ sql: t.db.sql });
    const good = [event(tenantA), event(reader.user.tenantId), event(tenantA), event(reader.user.tenantId)];
    // patient_id is a uuid column: no sanitising makes this event storable
    const bad = event(tenantA, { patientId: 'not-a-uuid' });
    // appended in one turn of the event loop: one group-commit batch
    const settled = await Promise.allSettled([writer.append([good[0]!]), writer.append([good[1]!]), writer.append([bad]), writer.append([good[2]!, good[3]!])]);
    await writer.close();
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    const stored = await t.db.owner<{ id: string }[]>`select id from audit_events where id = any(${[...good, bad].map((e) => e.id)}::uuid[])`;
    expect(stored.map((r) => r.id).sort()).toEqual(good.map((e) => e.id).sort());
  });
});
