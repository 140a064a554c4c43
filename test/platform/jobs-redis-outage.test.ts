import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTenant } from '../../src/platform/db/index.js';
import { emitEvent } from '../../src/platform/jobs/index.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createTenant, dropRedisPrefix, testAuthModule, until } from '../helpers/realtime.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { calls, jobsModule } from './fixtures/jobs-module.js';
import { enableTenantRls } from '../helpers/rls.js';

/**
 * Redis goes away (a proxy in front of it is cut) while the app keeps taking
 * writes: events are buffered in the transactional outbox (nothing is lost,
 * nothing fails), and once Redis is back the relay publishes them and the
 * workers run each exactly once — without a restart.
 */
const REDIS = new URL(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');
const PREFIX = `cbtest-outage-${randomBytes(4).toString('hex')}`;
let t: TestApp;
let proxy: Awaited<ReturnType<typeof startTcpProxy>>;
let tenant: string;

beforeAll(async () => {
  proxy = await startTcpProxy({ host: REDIS.hostname, port: Number(REDIS.port || 6379) });
  t = await startTestApp({
    modules: [testAuthModule, jobsModule],
    env: { JOB_WORKERS: 'inline', REDIS_URL: proxy.url(REDIS.toString()), JOBS_KEY_PREFIX: PREFIX, RATE_LIMIT_STORE: 'memory' },
  });
  tenant = await createTenant(t.db.sql);
  await t.db.owner`create table test_effects (job_id text not null, queue text not null, patient_id text not null, tenant_id uuid not null default carebase_current_tenant() references tenants(id))`;
  await enableTenantRls(t.db.owner, 'test_effects');
  await t.db.owner`grant select, insert on test_effects to carebase_app`;
});

afterAll(async () => {
  proxy?.up();
  await t?.close();
  await proxy?.close();
  await dropRedisPrefix(REDIS.toString(), PREFIX).catch(() => undefined);
});

describe('Redis outage with jobs on Redis', () => {
  it('buffers events in the outbox while Redis is down and delivers each once after it returns', { timeout: 90_000 }, async () => {
    expect(t.app.background.jobs.kind).toBe('redis');
    const warm = await withTenant(t.db.sql, tenant, (db) => emitEvent(db, { type: 'patient.updated', tenantId: tenant, aggregateId: randomUUID(), payload: { patientId: randomUUID() } }));
    await until(() => calls.some((c) => c.jobId === warm));

    proxy.down();
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const patientId = randomUUID();
      // the write (and its event) commits although Redis is unreachable
      ids.push(await withTenant(t.db.sql, tenant, (db) => emitEvent(db, { type: 'patient.updated', tenantId: tenant, aggregateId: patientId, payload: { patientId } })));
    }
    await new Promise((r) => setTimeout(r, 1500));
    const [pending] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from outbox where id = any(${ids}) and published_at is null`;
    expect(pending!.n).toBe(10);
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);

    proxy.up();
    await until(async () => {
      const [row] = await t.db.owner<{ n: number }[]>`select count(distinct job_id)::int as n from test_effects where job_id = any(${ids})`;
      return row!.n === 10 ? true : undefined;
    }, 60_000, 200);
    const [dupes] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from test_effects where job_id = any(${ids})`;
    expect(dupes!.n).toBe(10);
  });
});
