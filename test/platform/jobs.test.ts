import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTenant } from '../../src/platform/db/index.js';
import { emitEvent, enqueueJob } from '../../src/platform/jobs/index.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createTenant, signTestToken, testAuthModule, until } from '../helpers/realtime.js';
import { calls, jobsModule, poison } from './fixtures/jobs-module.js';
import { enableTenantRls } from '../helpers/rls.js';

/**
 * Jobs on BullMQ's PostgreSQL backend (no REDIS_URL), workers in-process
 * (JOB_WORKERS=inline): outbox -> relay -> queue -> handler.
 */
let t: TestApp;
let tenantA: string;
let tenantB: string;
let adminA: string;
let adminB: string;

async function effects(jobId: string): Promise<number> {
  const [row] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from test_effects where job_id = ${jobId}`;
  return row!.n;
}

beforeAll(async () => {
  t = await startTestApp({ modules: [testAuthModule, jobsModule], env: { JOB_WORKERS: 'inline' } });
  tenantA = await createTenant(t.db.sql);
  tenantB = await createTenant(t.db.sql);
  await t.db.owner`create table test_effects (job_id text not null, queue text not null, patient_id text not null, tenant_id uuid not null default carebase_current_tenant() references tenants(id))`;
  await enableTenantRls(t.db.owner, 'test_effects');
  await t.db.owner`grant select, insert on test_effects to carebase_app`;
  adminA = await signTestToken({ userId: randomUUID(), tenantId: tenantA, permissions: ['jobs:manage'] });
  adminB = await signTestToken({ userId: randomUUID(), tenantId: tenantB, permissions: ['jobs:manage'] });
});

afterAll(async () => {
  await t?.close();
});

describe('outbox to handler (PostgreSQL backend)', () => {
  it('runs on the PostgreSQL backend when REDIS_URL is unset', () => {
    expect(t.app.background.jobs.kind).toBe('postgres');
    expect(t.app.background.jobs.jobNames).toContain('testJobs.recordEffect');
  });

  it('delivers a committed event once, with the outbox id as job id and ids-only payload', async () => {
    const patientId = randomUUID();
    const id = await withTenant(t.db.sql, tenantA, (db) => emitEvent(db, { type: 'patient.updated', tenantId: tenantA, aggregateId: patientId, payload: { patientId } }));
    await until(() => calls.some((c) => c.jobId === id && c.job === 'testJobs.recordEffect'));
    const call = calls.find((c) => c.jobId === id)!;
    expect(call).toMatchObject({ attempt: 1, payload: { patientId }, applied: true });
    expect(await effects(id)).toBe(1);
    // publishing the same outbox row again (a relay that crashed before its commit) adds nothing
    const [row] = await t.db.owner`select id, seq, tenant_id, type, aggregate_id, payload, rooms, jobs, created_at from outbox where id = ${id}`;
    await t.app.background.jobs.publish([
      { id, type: 'patient.updated', tenantId: tenantA, aggregateId: patientId, payload: row!.payload, rooms: [], jobs: [], occurredAt: new Date() },
    ]);
    await new Promise((r) => setTimeout(r, 500));
    expect(calls.filter((c) => c.jobId === id)).toHaveLength(1);
    expect(await effects(id)).toBe(1);
  });

  it('never runs a job for an event whose transaction rolled back', async () => {
    const patientId = randomUUID();
    let rolledBackId = '';
    await expect(
      withTenant(t.db.sql, tenantA, async (db) => {
        rolledBackId = await emitEvent(db, { type: 'patient.updated', tenantId: tenantA, aggregateId: patientId, payload: { patientId } });
        throw new Error('rollback');
      }),
    ).rejects.toThrow('rollback');
    // a later committed event is processed, so the relay has passed the rolled back one
    const later = await withTenant(t.db.sql, tenantA, (db) => emitEvent(db, { type: 'patient.updated', tenantId: tenantA, aggregateId: patientId, payload: { patientId } }));
    await until(() => calls.some((c) => c.jobId === later));
    expect(calls.some((c) => c.jobId === rolledBackId)).toBe(false);
    expect(await effects(rolledBackId)).toBe(0);
    const [row] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from outbox where id = ${rolledBackId}`;
    expect(row!.n).toBe(0);
  });

  it('enqueues a job directly through the outbox', async () => {
    const patientId = randomUUID();
    const id = await withTenant(t.db.sql, tenantA, (db) => enqueueJob(db, { job: 'testJobs.recordEffect', tenantId: tenantA, aggregateId: patientId, payload: { patientId } }));
    await until(async () => (await effects(id)) === 1);
  });

  it('refuses free text in event payloads (ids only) and malformed events', async () => {
    await expect(
      withTenant(t.db.sql, tenantA, (db) => emitEvent(db, { type: 'patient.updated', tenantId: tenantA, aggregateId: randomUUID(), payload: { name: 'Jane Doe' } })),
    ).rejects.toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'payload.name' } });
    await expect(withTenant(t.db.sql, tenantA, (db) => emitEvent(db, { type: 'PatientUpdated', tenantId: tenantA, aggregateId: 'x' }))).rejects.toMatchObject({
      extensions: { code: 'BAD_USER_INPUT', field: 'type' },
    });
    await expect(
      withTenant(t.db.sql, tenantA, (db) => emitEvent(db, { type: 'patient.updated', tenantId: tenantA, aggregateId: 'x', rooms: ['t:other:patient:1'] })),
    ).rejects.toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'rooms' } });
  });

  it('cannot write an event into another tenant (RLS on the outbox)', async () => {
    await expect(withTenant(t.db.sql, tenantA, (db) => emitEvent(db, { type: 'patient.updated', tenantId: tenantB, aggregateId: 'x' }))).rejects.toMatchObject({
      cause: { code: '42501' },
    });
  });

  it('the app role reads only its tenant rows and cannot mark events published itself', async () => {
    await withTenant(t.db.sql, tenantB, (db) => emitEvent(db, { type: 'patient.viewed', tenantId: tenantB, aggregateId: 'x' }));
    const seen = await withTenant(t.db.sql, tenantA, (db) => db.execute<{ tenant_id: string }>(sql.raw('select distinct tenant_id from outbox')));
    expect(seen.map((r) => r.tenant_id)).toEqual([tenantA]);
    await expect(withTenant(t.db.sql, tenantA, (db) => db.execute(sql.raw('update outbox set published_at = now()')))).rejects.toMatchObject({ cause: { code: '42501' } });
  });

  it('runs repeatable (cron) jobs declared by modules', async () => {
    await until(() => calls.some((c) => c.job === 'testJobs.tick'), 10_000);
    expect(calls.find((c) => c.job === 'testJobs.tick')!.payload).toEqual({ kind: 'tick' });
  });
});

describe('dead-letter queue', () => {
  const DLQ = 'query DLQ($queue: String) { deadLetterJobs(queue: $queue) { id queue eventType aggregateId attemptsMade failedReason failedAt } }';

  it('moves a poison job to the dead-letter queue after N attempts; an admin lists and retries it', async () => {
    poison.on = true;
    const patientId = randomUUID();
    const id = await withTenant(t.db.sql, tenantA, (db) => emitEvent(db, { type: 'patient.poisoned', tenantId: tenantA, aggregateId: patientId, payload: { patientId } }));
    type Res = { deadLetterJobs: { id: string; queue: string; attemptsMade: number; failedReason: string; eventType: string }[] };
    const listed = await until(async () => {
      const res = await t.gql<Res>(DLQ, { queue: 'testJobs.poison' }, { authorization: `Bearer ${adminA}` });
      return res.body.data?.deadLetterJobs.find((j) => j.id === id);
    });
    expect(listed).toMatchObject({ id, queue: 'testJobs.poison', attemptsMade: 3, failedReason: 'CONFLICT: still poisoned', eventType: 'patient.poisoned' });
    expect(calls.filter((c) => c.jobId === id).map((c) => c.attempt)).toEqual([1, 2, 3]);

    // another tenant's admin sees nothing and cannot retry it
    const other = await t.gql<Res>(DLQ, {}, { authorization: `Bearer ${adminB}` });
    expect(other.body.data?.deadLetterJobs.map((j) => j.id)).not.toContain(id);
    const denied = await t.gql('mutation R($q: String!, $id: String!) { retryDeadLetterJob(queue: $q, id: $id) }', { q: 'testJobs.poison', id }, { authorization: `Bearer ${adminB}` });
    expect(denied.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');

    // without jobs:manage: FORBIDDEN
    const clerk = await signTestToken({ userId: randomUUID(), tenantId: tenantA, permissions: [] });
    const forbidden = await t.gql<Res>(DLQ, {}, { authorization: `Bearer ${clerk}` });
    expect(forbidden.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

    poison.on = false;
    const retried = await t.gql('mutation R($q: String!, $id: String!) { retryDeadLetterJob(queue: $q, id: $id) }', { q: 'testJobs.poison', id }, { authorization: `Bearer ${adminA}` });
    expect(retried.body).toEqual({ data: { retryDeadLetterJob: true } });
    await until(() => calls.filter((c) => c.jobId === id).length === 4);
    expect(calls.filter((c) => c.jobId === id).at(-1)!.attempt).toBe(1);
    await until(async () => {
      const res = await t.gql<Res>(DLQ, { queue: 'testJobs.poison' }, { authorization: `Bearer ${adminA}` });
      return !res.body.data?.deadLetterJobs.some((j) => j.id === id);
    });
    // retrying a job that is no longer dead-lettered is a CONFLICT, not a silent success
    const again = await t.gql('mutation R($q: String!, $id: String!) { retryDeadLetterJob(queue: $q, id: $id) }', { q: 'testJobs.poison', id }, { authorization: `Bearer ${adminA}` });
    expect(again.body.errors?.[0]?.extensions?.code).toBe('CONFLICT');
  });

  it('keeps PHI out of the stored failure, the logs and the admin API; discards a job', async () => {
    const id = await withTenant(t.db.sql, tenantA, (db) => emitEvent(db, { type: 'patient.leaky', tenantId: tenantA, aggregateId: randomUUID() }));
    type Res = { deadLetterJobs: { id: string; failedReason: string }[] };
    const listed = await until(async () => {
      const res = await t.gql<Res>(DLQ, { queue: 'testJobs.leaky' }, { authorization: `Bearer ${adminA}` });
      return res.body.data?.deadLetterJobs.find((j) => j.id === id);
    });
    expect(listed.failedReason).toBe('Error');
    const job = await t.app.background.jobs['queueOrThrow']('testJobs.leaky').getJob(id);
    expect(JSON.stringify(job)).not.toContain('Jane');
    expect(t.logText()).not.toContain('Jane');
    expect(t.logText()).not.toContain('123-45-6789');
    const discarded = await t.gql('mutation D($q: String!, $id: String!) { discardDeadLetterJob(queue: $q, id: $id) }', { q: 'testJobs.leaky', id }, { authorization: `Bearer ${adminA}` });
    expect(discarded.body).toEqual({ data: { discardDeadLetterJob: true } });
    const res = await t.gql<Res>(DLQ, { queue: 'testJobs.leaky' }, { authorization: `Bearer ${adminA}` });
    expect(res.body.data?.deadLetterJobs.some((j) => j.id === id)).toBe(false);
  });

  it('validates admin arguments', async () => {
    const res = await t.gql('query { deadLetterJobs(queue: "no spaces allowed") { id } }', {}, { authorization: `Bearer ${adminA}` });
    expect(res.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const unknown = await t.gql('query { deadLetterJobs(queue: "nobody.there") { id } }', {}, { authorization: `Bearer ${adminA}` });
    expect(unknown.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });
});

describe('metrics', () => {
  it('exports queue depth per state, latency and duration on /metrics', async () => {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    expect(text).toMatch(/carebase_jobs\{queue="testJobs\.recordEffect",state="waiting"\} \d+/);
    expect(text).toMatch(/carebase_jobs\{queue="testJobs\.poison",state="failed"\} \d+/);
    expect(text).toContain('carebase_job_latency_seconds_bucket');
    expect(text).toContain('carebase_job_duration_seconds_count{queue="testJobs.recordEffect",outcome="completed"}');
    expect(text).toContain('carebase_outbox_published_total');
    expect(text).toContain('carebase_realtime_connections');
  });
});
