import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { withTenant } from '../../src/platform/db/index.js';
import { enqueueJob } from '../../src/platform/jobs/index.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { connect, createTenant, request, signTestToken, testAuthModule, until } from '../helpers/realtime.js';
import scopeFixture, { FIXTURE_PERMISSION, jobRuns } from '../fixtures/scope-module.js';

/**
 * The request scope at every door, through the fixture module: a module route
 * (HTTP), a socket handler (real socket.io client), a job (real BullMQ worker
 * on the PostgreSQL backend) and a GraphQL field. Tenant A has a note, tenant
 * B is another clinic, tenant C's plan lacks the fixture module.
 */
let t: TestApp;
let tenantA: string;
let tenantB: string;
let tenantC: string;
const noteA = randomUUID();
const noteC = randomUUID();
const patientA = randomUUID();
const patientC = randomUUID();
const open: Socket[] = [];

const userOf = (tenantId: string, permissions = [FIXTURE_PERMISSION]) => ({ userId: randomUUID(), tenantId, permissions });
const bearer = async (who: ReturnType<typeof userOf>) => ({ authorization: `Bearer ${await signTestToken(who)}` });

async function auditRows(requestId: string) {
  return t.db.owner<{ actor_type: string; actor_id: string; patient_id: string; fields: string[]; action: string; outcome: string; operation_name: string | null }[]>`
    select actor_type, actor_id, patient_id, fields, action, outcome, operation_name from audit_events where request_id = ${requestId}`;
}

async function reads(via: string): Promise<number> {
  const [row] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from scope_fixture_reads where via = ${via}`;
  return row!.n;
}

beforeAll(async () => {
  t = await startTestApp({ modules: [testAuthModule, scopeFixture], env: { JOB_WORKERS: 'inline', RATE_LIMIT_USER_PER_MINUTE: '100000' } });
  tenantA = await createTenant(t.db.sql);
  tenantB = await createTenant(t.db.sql);
  tenantC = await createTenant(t.db.sql);
  await t.db.owner`create table scope_fixture_notes (id uuid primary key, patient_id uuid not null, body text not null,
                    tenant_id uuid not null default carebase_current_tenant() references tenants(id))`;
  await t.db.owner`create table scope_fixture_reads (note_id uuid not null, via text not null,
                    tenant_id uuid not null default carebase_current_tenant() references tenants(id))`;
  await t.db.owner`select carebase_enforce_tenant_rls()`;
  await t.db.owner`grant select, insert on scope_fixture_notes, scope_fixture_reads to carebase_app`;
  await withTenant(t.db.sql, tenantA, (db) => db.execute(sql`insert into scope_fixture_notes (id, patient_id, body) values (${noteA}, ${patientA}, 'note of A')`));
  await withTenant(t.db.sql, tenantC, (db) => db.execute(sql`insert into scope_fixture_notes (id, patient_id, body) values (${noteC}, ${patientC}, 'note of C')`));
  // tenant C's plan: core modules only (an empty list; no row = every enabled module)
  await t.db.owner`insert into tenant_entitlements (tenant_id, modules) values (${tenantC}, '{}')`;
});

afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

afterAll(async () => {
  await t?.close();
});

describe('module route on the scope adapter', () => {
  const get = (id: string, headers: Record<string, string>) => fetch(`${t.url}/fixture/notes/${id}`, { headers });

  it('authenticates, reads through the tenant transaction, commits and records the PHI access before the response', async () => {
    expect((await get(noteA, {})).status).toBe(401);
    const requestId = randomUUID();
    const who = userOf(tenantA);
    const before = await reads('route');
    const res = await get(noteA, { ...(await bearer(who)), 'x-request-id': requestId });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id: noteA, body: 'note of A' });
    // at the time the response arrived: the write is committed and the audit event durable
    expect(await reads('route')).toBe(before + 1);
    expect(await auditRows(requestId)).toEqual([
      { actor_type: 'user', actor_id: who.userId, patient_id: patientA, fields: ['Note.body'], action: 'read', outcome: 'allowed', operation_name: 'GET /fixture/notes/:id' },
    ]);
  });

  it('denies another tenant (RLS: the note is not found) and a caller without the permission', async () => {
    const other = await get(noteA, await bearer(userOf(tenantB)));
    expect(other.status).toBe(404);
    expect(((await other.json()) as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions.code).toBe('NOT_FOUND');
    const noPermission = await get(noteA, await bearer(userOf(tenantA, [])));
    expect(noPermission.status).toBe(403);
    expect(((await noPermission.json()) as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions.code).toBe('FORBIDDEN');
  });

  it('answers FEATURE_NOT_ENTITLED to a tenant whose plan lacks the module', async () => {
    const res = await get(noteC, await bearer(userOf(tenantC)));
    expect(res.status).toBe(403);
    expect(((await res.json()) as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions).toMatchObject({ code: 'FEATURE_NOT_ENTITLED', feature: 'scope-fixture' });
  });
});

describe('GraphQL field of a module', () => {
  it('serves an entitled tenant and answers FEATURE_NOT_ENTITLED to one without the entitlement', async () => {
    const q = 'query ($id: String!) { scopeFixtureNote(id: $id) }';
    const ok = await t.gql<{ scopeFixtureNote: string }>(q, { id: noteA }, await bearer(userOf(tenantA)));
    expect(ok.body.data?.scopeFixtureNote).toBe('note of A');
    const denied = await t.gql(q, { id: noteC }, await bearer(userOf(tenantC)));
    expect(denied.body.errors?.[0]?.extensions?.code).toBe('FEATURE_NOT_ENTITLED');
    expect(denied.body.data ?? null).toBeNull();
  });
});

describe('socket handler in a scope', () => {
  async function client(who: ReturnType<typeof userOf>) {
    const s = await connect(t.url, await signTestToken(who));
    open.push(s);
    return s;
  }

  it('acks only after the scope committed, with the PHI access recorded', async () => {
    const who = userOf(tenantA);
    const s = await client(who);
    const before = await reads('socket');
    const ack = await request<{ ok: boolean; result?: { body: string } }>(s, 'scopeFixture:read', { id: noteA });
    expect(ack).toEqual({ ok: true, result: { body: 'note of A' } });
    expect(await reads('socket')).toBe(before + 1);
    const [ev] = await t.db.owner<{ actor_id: string; patient_id: string; operation_name: string; outcome: string }[]>`
      select actor_id, patient_id, operation_name, outcome from audit_events where actor_id = ${who.userId} and operation_name = 'scopeFixture:read'`;
    expect(ev).toEqual({ actor_id: who.userId, patient_id: patientA, operation_name: 'scopeFixture:read', outcome: 'allowed' });
  });

  it('denies another tenant (RLS) and answers FEATURE_NOT_ENTITLED without the entitlement', async () => {
    const b = await client(userOf(tenantB));
    expect(await request(b, 'scopeFixture:read', { id: noteA })).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    const c = await client(userOf(tenantC));
    expect(await request(c, 'scopeFixture:read', { id: noteC })).toMatchObject({ ok: false, error: { code: 'FEATURE_NOT_ENTITLED' } });
  });
});

describe('job in a scope (real BullMQ worker)', () => {
  const enqueue = (tenantId: string, payload: Record<string, unknown>) =>
    withTenant(t.db.sql, tenantId, (db) => enqueueJob(db, { job: 'scopeFixture.read', tenantId, aggregateId: String(payload.noteId), payload }));

  it('runs as the named system principal, or on behalf of the user named in the payload; its PHI access is audited', async () => {
    const asSystem = await enqueue(tenantA, { noteId: noteA });
    const run = await until(() => jobRuns.find((r) => r.jobId === asSystem));
    expect(run).toMatchObject({ actorType: 'system', actorId: 'system:scopeFixture.read', body: 'note of A' });
    // the job completes after its scope commits: the event is there by then
    expect(await until(async () => (await auditRows(asSystem))[0])).toMatchObject({ actor_type: 'system', actor_id: 'system:scopeFixture.read', patient_id: patientA, operation_name: 'scopeFixture.read' });

    const userId = randomUUID();
    const onBehalf = await enqueue(tenantA, { noteId: noteA, onBehalfOf: userId });
    await until(() => jobRuns.find((r) => r.jobId === onBehalf));
    expect(await until(async () => (await auditRows(onBehalf))[0])).toMatchObject({ actor_type: 'user', actor_id: userId, patient_id: patientA });
  });

  it('cannot read another tenant\'s note (RLS), and fails for good without the entitlement', async () => {
    const jobs = t.app.background.jobs;
    const other = await enqueue(tenantB, { noteId: noteA });
    const notEntitled = await enqueue(tenantC, { noteId: noteC });
    const failed = async (tenantId: string, id: string) => (await jobs.deadLetters(tenantId, { queue: 'scopeFixture.read' })).find((d) => d.id === id);
    expect((await until(() => failed(tenantB, other))).failedReason).toMatch(/^NOT_FOUND/);
    expect((await until(() => failed(tenantC, notEntitled))).failedReason).toMatch(/^FEATURE_NOT_ENTITLED/);
    expect(jobRuns.some((r) => r.jobId === other || r.jobId === notEntitled)).toBe(false);
  });
});
