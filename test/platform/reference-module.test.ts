import { randomUUID } from 'node:crypto';
import { eq, sql } from 'drizzle-orm';
import type { Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { withTenant } from '../../src/platform/db/index.js';
import { enqueueJob } from '../../src/platform/jobs/index.js';
import { permissionCatalog } from '../../src/schema/index.js';
import reference, { applyReferenceMigration, COUNT_WORDS_JOB, REFERENCE_ENTITLEMENT, referenceNotes, SWEEP_JOB } from '../fixtures/reference-module/index.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { connect, createTenant, request, signTestToken, testAuthModule, until } from '../helpers/realtime.js';

/**
 * The reference module (test/fixtures/reference-module) tested like a real
 * module, at every extension point: GraphQL over HTTP, its REST route, its
 * socket handler and room type (real socket.io client), its job and its
 * schedule (real BullMQ worker on the PostgreSQL backend). Each one
 * authenticates (or runs as its principal), denies another tenant (the query
 * filters by tenant, and RLS alone hides the row), records PHI access durably
 * before it answers, and answers FEATURE_NOT_ENTITLED to a tenant whose plan
 * lacks the module. Tenant A has notes, B is another clinic, C's plan lacks
 * the module.
 */
let db: TestDatabase;
let t: TestApp;
let tenantA: string;
let tenantB: string;
let tenantC: string;
const noteA = randomUUID();
const noteC = randomUUID();
const pendingA = randomUUID(); // no word count yet: the schedule picks it up
const patientA = randomUUID();
const patientC = randomUUID();
const open: Socket[] = [];

type Who = { userId: string; tenantId: string; permissions: string[] };
const userOf = (tenantId: string, permissions = ['note:read', 'note:write']): Who => ({ userId: randomUUID(), tenantId, permissions });
const bearer = async (who: Who) => ({ authorization: `Bearer ${await signTestToken(who)}` });
const code = (body: unknown) => (body as { errors?: { extensions?: { code?: string } }[] }).errors?.[0]?.extensions?.code;

async function auditRows(requestId: string) {
  return t.db.owner<{ actor_type: string; actor_id: string; patient_id: string; fields: string[]; action: string; outcome: string; operation_name: string | null }[]>`
    select actor_type, actor_id, patient_id, fields, action, outcome, operation_name from audit_events where request_id = ${requestId} order by seq`;
}

async function note(id: string) {
  const [row] = await t.db.owner<{ word_count: number | null; view_count: number }[]>`select word_count, view_count from reference_notes where id = ${id}`;
  return row!;
}

beforeAll(async () => {
  // the module's migration, in this test's own database, before the app (and its schedule) starts
  db = await createTestDatabase();
  await applyReferenceMigration(db.owner);
  tenantA = await createTenant(db.sql);
  tenantB = await createTenant(db.sql);
  tenantC = await createTenant(db.sql);
  const insert = (tenantId: string, id: string, patientId: string, body: string, wordCount: number | null) =>
    withTenant(db.sql, tenantId, (tx) => tx.insert(referenceNotes).values({ id, patientId, body, wordCount }));
  await insert(tenantA, noteA, patientA, 'note of A', 3);
  await insert(tenantA, pendingA, patientA, 'four words of A', null);
  await insert(tenantC, noteC, patientC, 'note of C', null); // pending too, but C is not entitled
  // tenant C's plan: core modules only (no row = every enabled module)
  await db.owner`insert into tenant_entitlements (tenant_id, modules) values (${tenantC}, '{}')`;
  t = await startTestApp({
    db,
    modules: [testAuthModule, reference],
    env: { JOB_WORKERS: 'inline', RATE_LIMIT_USER_PER_MINUTE: '100000', JOB_SCHEDULE_INTERVALS: `${SWEEP_JOB}=300` },
  });
}, 60_000);

afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

afterAll(async () => {
  await t?.close();
  await db?.drop();
});

describe('vocabulary and tables', () => {
  it('declares its permissions with role grants', () => {
    const catalog = permissionCatalog([reference]);
    expect(catalog.isPermission('note:read')).toBe(true);
    expect([...catalog.forRoles(['NURSE'])]).toEqual(expect.arrayContaining(['note:read', 'note:write']));
    expect(catalog.forRoles(['FRONT_DESK']).has('note:read')).toBe(false);
  });

  it('has ENABLE + FORCE row level security: RLS alone hides another tenant\'s row (no tenant filter in the query)', async () => {
    const [rls] = await t.db.owner<{ enabled: boolean; forced: boolean }[]>`
      select relrowsecurity as enabled, relforcerowsecurity as forced from pg_class where relname = 'reference_notes'`;
    expect(rls).toEqual({ enabled: true, forced: true });
    const byId = (tenantId: string) => withTenant(t.db.sql, tenantId, (tx) => tx.select({ id: referenceNotes.id }).from(referenceNotes).where(eq(referenceNotes.id, noteA)));
    expect(await byId(tenantA)).toEqual([{ id: noteA }]);
    expect(await byId(tenantB)).toEqual([]);
    // the app role cannot delete (migration.sql revokes it)
    const err = await withTenant(t.db.sql, tenantA, (tx) => tx.execute(sql`delete from reference_notes where id = ${noteA}`)).catch((e: unknown) => e);
    expect((err as { cause?: { code?: string } }).cause?.code).toBe('42501'); // insufficient_privilege
  });
});

describe('GraphQL field (over HTTP)', () => {
  const q = 'query ($id: ID!) { referenceNote(id: $id) { id patientId body } }';

  it('authenticates, answers with the PHI access of the marked field already durable', async () => {
    const anonymous = await t.gql(q, { id: noteA });
    expect(['UNAUTHENTICATED', 'FORBIDDEN']).toContain(code(anonymous.body));
    const who = userOf(tenantA);
    const requestId = randomUUID();
    const ok = await t.gql<{ referenceNote: { body: string } }>(q, { id: noteA }, { ...(await bearer(who)), 'x-request-id': requestId });
    expect(ok.body.data?.referenceNote).toEqual({ id: noteA, patientId: patientA, body: 'note of A' });
    expect(await auditRows(requestId)).toEqual([
      expect.objectContaining({ actor_type: 'user', actor_id: who.userId, patient_id: patientA, fields: ['ReferenceNote.body'], action: 'read', outcome: 'allowed' }),
    ]);
  });

  it('denies another tenant, a caller without the permission, and a tenant without the entitlement', async () => {
    expect(code((await t.gql(q, { id: noteA }, await bearer(userOf(tenantB)))).body)).toBe('NOT_FOUND');
    expect(code((await t.gql(q, { id: noteA }, await bearer(userOf(tenantA, [])))).body)).toBe('FORBIDDEN');
    const denied = await t.gql(q, { id: noteC }, await bearer(userOf(tenantC)));
    expect(code(denied.body)).toBe('FEATURE_NOT_ENTITLED');
    expect(denied.body.data ?? null).toBeNull();
    expect(code((await t.gql(q, { id: 'not-a-uuid' }, await bearer(userOf(tenantA)))).body)).toBe('BAD_USER_INPUT');
  });
});

describe('REST route', () => {
  const get = (id: string, headers: Record<string, string>) => fetch(`${t.url}/reference/notes/${id}`, { headers });

  it('authenticates, commits its write and records the PHI access before the response', async () => {
    expect((await get(noteA, {})).status).toBe(401);
    const who = userOf(tenantA);
    const requestId = randomUUID();
    const before = (await note(noteA)).view_count;
    const res = await get(noteA, { ...(await bearer(who)), 'x-request-id': requestId });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id: noteA, patientId: patientA, body: 'note of A' });
    // when the response arrived: the write is committed and the audit event durable
    expect((await note(noteA)).view_count).toBeGreaterThan(before);
    expect(await auditRows(requestId)).toEqual([
      { actor_type: 'user', actor_id: who.userId, patient_id: patientA, fields: ['ReferenceNote.body'], action: 'read', outcome: 'allowed', operation_name: 'GET /reference/notes/:id' },
    ]);
  });

  it('denies another tenant (404), a caller without the permission (403) and a tenant without the entitlement', async () => {
    const other = await get(noteA, await bearer(userOf(tenantB)));
    expect([other.status, code(await other.json())]).toEqual([404, 'NOT_FOUND']);
    const noPermission = await get(noteA, await bearer(userOf(tenantA, [])));
    expect([noPermission.status, code(await noPermission.json())]).toEqual([403, 'FORBIDDEN']);
    const notEntitled = await get(noteC, await bearer(userOf(tenantC)));
    expect(notEntitled.status).toBe(403);
    expect(((await notEntitled.json()) as { errors: { extensions: unknown }[] }).errors[0]!.extensions).toMatchObject({ code: 'FEATURE_NOT_ENTITLED', feature: REFERENCE_ENTITLEMENT });
    const bad = await get('nope', await bearer(userOf(tenantA)));
    expect([bad.status, code(await bad.json())]).toEqual([400, 'BAD_USER_INPUT']);
  });
});

describe('REST route with an Idempotency-Key', () => {
  const post = (id: string, headers: Record<string, string>, body?: unknown) =>
    fetch(`${t.url}/reference/notes/${id}/word-count`, {
      method: 'POST',
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const jobsOf = async (id: string) => (await t.db.owner<{ n: number }[]>`select count(*)::int as n from outbox where aggregate_id = ${id}`)[0]!.n;

  it('runs once: a retry with the key replays the first answer and enqueues nothing more', async () => {
    const who = userOf(tenantA);
    const headers = { ...(await bearer(who)), 'idempotency-key': `ref-${randomUUID()}` };
    const before = await jobsOf(noteA);
    const first = await post(noteA, headers);
    expect(first.status).toBe(200);
    const { jobId } = (await first.json()) as { jobId: string };
    expect(jobId).toBeTruthy();
    const again = await post(noteA, headers);
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await again.json()).toEqual({ jobId });
    expect(await jobsOf(noteA)).toBe(before + 1);
    // without a key, each request runs
    await post(noteA, await bearer(who));
    expect(await jobsOf(noteA)).toBe(before + 2);
  });

  it('refuses the key for another request, a malformed key, and replays a deterministic refusal', async () => {
    const who = userOf(tenantA);
    const key = `ref-${randomUUID()}`;
    const headers = { ...(await bearer(who)), 'idempotency-key': key };
    expect((await post(noteA, headers, { n: 1 })).status).toBe(200);
    const reused = await post(noteA, headers, { n: 2 });
    expect([reused.status, code(await reused.json())]).toEqual([422, 'IDEMPOTENCY_KEY_REUSED']);
    const malformed = await post(noteA, { ...(await bearer(who)), 'idempotency-key': 'x' });
    expect([malformed.status, code(await malformed.json())]).toEqual([400, 'BAD_USER_INPUT']);
    // another tenant's note: NOT_FOUND, stored and replayed (the key is the caller's, in the caller's tenant)
    const other = { ...(await bearer(userOf(tenantB))), 'idempotency-key': `ref-${randomUUID()}` };
    const before = await jobsOf(noteA);
    const notFound = await post(noteA, other);
    expect([notFound.status, code(await notFound.json())]).toEqual([404, 'NOT_FOUND']);
    const replayed = await post(noteA, other);
    expect([replayed.status, replayed.headers.get('idempotent-replayed'), code(await replayed.json())]).toEqual([404, 'true', 'NOT_FOUND']);
    expect(await jobsOf(noteA)).toBe(before);
  });
});

describe('socket handler and room type (real socket.io client)', () => {
  async function client(who: Who) {
    const s = await connect(t.url, await signTestToken(who));
    open.push(s);
    return s;
  }

  it('refuses a handshake without a credential', async () => {
    await expect(connect(t.url, undefined)).rejects.toThrow();
  });

  it('acks only after the scope committed, with the PHI access durable', async () => {
    const who = userOf(tenantA);
    const s = await client(who);
    const before = (await note(noteA)).view_count;
    const ack = await request<{ ok: boolean; result?: unknown }>(s, 'reference:readNote', { id: noteA });
    expect(ack).toEqual({ ok: true, result: { id: noteA, body: 'note of A' } });
    expect((await note(noteA)).view_count).toBeGreaterThan(before);
    const events = await t.db.owner<{ actor_id: string; patient_id: string; outcome: string }[]>`
      select actor_id, patient_id, outcome from audit_events where actor_id = ${who.userId} and operation_name = 'reference:readNote'`;
    expect(events).toEqual([{ actor_id: who.userId, patient_id: patientA, outcome: 'allowed' }]);
  });

  it('denies another tenant, a caller without the permission, and a tenant without the entitlement', async () => {
    expect(await request(await client(userOf(tenantB)), 'reference:readNote', { id: noteA })).toMatchObject({ ok: false, error: { code: 'NOT_FOUND' } });
    expect(await request(await client(userOf(tenantA, [])), 'reference:readNote', { id: noteA })).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await request(await client(userOf(tenantC)), 'reference:readNote', { id: noteC })).toMatchObject({ ok: false, error: { code: 'FEATURE_NOT_ENTITLED' } });
  });

  it('joins a note room of its own tenant only; not without note:read; FEATURE_NOT_ENTITLED without the entitlement', async () => {
    const join = async (who: Who, id: string) => request(await client(who), 'room:join', { room: `note:${id}` });
    expect(await join(userOf(tenantA), noteA)).toMatchObject({ ok: true, room: `note:${noteA}` });
    expect(await join(userOf(tenantB), noteA)).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } }); // the check runs under B's RLS
    expect(await join(userOf(tenantA, []), noteA)).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect(await join(userOf(tenantC), noteC)).toMatchObject({ ok: false, error: { code: 'FEATURE_NOT_ENTITLED' } });
  });
});

describe('job (real BullMQ worker)', () => {
  const jobs = () => t.app.background.jobs;
  const failed = async (tenantId: string, id: string) => (await jobs().deadLetters(tenantId, { queue: COUNT_WORDS_JOB })).find((d) => d.id === id);
  const enqueue = (tenantId: string, noteId: string) =>
    withTenant(t.db.sql, tenantId, (tx) => enqueueJob(tx, { job: COUNT_WORDS_JOB, tenantId, aggregateId: noteId, payload: { noteId } }));

  it('runs on behalf of the user whose mutation enqueued it; its write and its PHI access commit together', async () => {
    const who = userOf(tenantA);
    const m = await t.gql<{ requestReferenceWordCount: string }>('mutation ($id: ID!) { requestReferenceWordCount(id: $id) }', { id: noteA }, await bearer(who));
    const jobId = m.body.data!.requestReferenceWordCount;
    expect(jobId).toMatch(/^[0-9a-f-]{36}$/);
    // completion = the job's scope committed: the audit event is there by then
    const [ev] = await until(async () => ((await auditRows(jobId)).length > 0 ? auditRows(jobId) : undefined));
    expect(ev).toMatchObject({ actor_type: 'user', actor_id: who.userId, patient_id: patientA, operation_name: COUNT_WORDS_JOB, outcome: 'allowed' });
  });

  it('runs as its named system principal when nobody caused it', async () => {
    const jobId = await enqueue(tenantA, noteA);
    const [ev] = await until(async () => ((await auditRows(jobId)).length > 0 ? auditRows(jobId) : undefined));
    expect(ev).toMatchObject({ actor_type: 'system', actor_id: `system:${COUNT_WORDS_JOB}`, patient_id: patientA });
  });

  it("cannot read another tenant's note (RLS), and fails for good without the entitlement", async () => {
    const other = await enqueue(tenantB, noteA);
    const notEntitled = await enqueue(tenantC, noteC);
    expect((await until(() => failed(tenantC, notEntitled))).failedReason).toMatch(/^FEATURE_NOT_ENTITLED/);
    expect((await until(() => failed(tenantB, other), 30_000)).failedReason).toMatch(/^NOT_FOUND/);
    expect(await auditRows(notEntitled)).toEqual([]);
    expect((await note(noteC)).word_count).toBeNull();
  }, 40_000);
});

describe('schedule (BullMQ job scheduler)', () => {
  it("fans out per tenant, as the job's system principal, for entitled tenants only", async () => {
    expect((await t.app.background.jobs.schedules()).map((s) => s.queue)).toContain(SWEEP_JOB);
    // a run of the schedule enqueued the pending note of A; the job counted it in A's scope, audited
    const counted = await until(async () => (await note(pendingA)).word_count);
    expect(counted).toBe(4);
    const [ev] = await t.db.owner<{ actor_type: string; actor_id: string; tenant_id: string }[]>`
      select actor_type, actor_id, tenant_id from audit_events where resource_id = ${pendingA} and operation_name = ${COUNT_WORDS_JOB} limit 1`;
    expect(ev).toEqual({ actor_type: 'system', actor_id: `system:${COUNT_WORDS_JOB}`, tenant_id: tenantA });
    // C's pending note is never enqueued (not entitled): no run, no dead letter from the schedule
    const [runs] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from outbox where tenant_id = ${tenantC} and aggregate_id = ${noteC}`;
    expect(runs!.n).toBeLessThanOrEqual(1); // the one enqueued by hand in the job test, none by the schedule
    expect((await note(noteC)).word_count).toBeNull();
  });
});
