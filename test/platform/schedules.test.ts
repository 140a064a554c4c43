import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import auditModule from '../../src/modules/audit/index.js';
import identityModule from '../../src/modules/identity/index.js';
import { AppError, ErrorCode } from '../../src/platform/errors.js';
import { createLogger } from '../../src/platform/logger.js';
import type { JobSystem } from '../../src/platform/jobs/index.js';
import type { ModuleManifest } from '../../src/schema/index.js';
import { startWorker, type WorkerProcess } from '../../src/worker.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { testDataDir } from '../helpers/global-setup.js';
import { dropRedisPrefix, signTestToken, testAuthModule, until } from '../helpers/realtime.js';
import { appendEvents, createTenant } from '../modules/audit/fixtures.js';

/**
 * Schedules are BullMQ job schedulers: two API processes (workers inline) and
 * one worker process on the same database and queues, every schedule shortened
 * to 500 ms. Each period's run happens once, in one of the three processes; a
 * failing run is retried and then listed by the dead-letter admin API.
 * Periods are read from the run's job id (`repeat:schedule.<job>:<period ms>`),
 * never from the wall clock.
 */
const EVERY = 500;
const REAL_SCHEDULES = ['audit.drainSecurityEvents', 'audit.anomalies', 'audit.partitions', 'audit.checkpoints', 'platform.purgeIdempotencyKeys', 'platform.purgeOutbox'];
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Every handler call of the test schedules, with the process (config object) that ran it. */
const runs: { job: string; jobId: string; attempt: number; by: string }[] = [];
const processOf = new WeakMap<object, string>();
const failing = { on: true };

const schedulesModule: ModuleManifest = {
  name: 'test-schedules',
  phase: 0,
  description: 'scheduled jobs for the schedule tests',
  dependsOn: [],
  jobs: {
    'testSchedules.tick': {
      every: 60_000, // shortened by JOB_SCHEDULE_INTERVALS
      handler: async (_p, ctx) => {
        runs.push({ job: ctx.queue, jobId: ctx.jobId, attempt: ctx.attempt, by: processOf.get(ctx.config) ?? '?' });
      },
    },
    'testSchedules.flaky': {
      every: EVERY,
      attempts: 2,
      backoffMs: 20,
      handler: async (_p, ctx) => {
        runs.push({ job: ctx.queue, jobId: ctx.jobId, attempt: ctx.attempt, by: processOf.get(ctx.config) ?? '?' });
        if (failing.on) throw new AppError(ErrorCode.CONFLICT, 'scheduled run failed');
      },
    },
  },
};

const period = (jobId: string) => Number(/:(\d+)$/.exec(jobId)?.[1]);

/** Periods are distinct and at least one interval apart: one run per period, whatever the number of processes. */
function expectOnePerPeriod(jobIds: readonly string[], every = EVERY) {
  const periods = [...jobIds].map(period).sort((a, b) => a - b);
  expect(periods.every((p) => Number.isFinite(p))).toBe(true);
  for (let i = 1; i < periods.length; i++) expect(periods[i]! - periods[i - 1]!).toBeGreaterThanOrEqual(every);
}

/** Handler completions of a queue counted by a process's metrics (carebase_job_duration_seconds_count). */
async function completions(registry: WorkerProcess['metrics']['registry'], queue: string): Promise<number> {
  const metric = registry.getSingleMetric('carebase_job_duration_seconds');
  if (!metric) return 0;
  const { values } = await metric.get();
  return values.filter((v) => (v as { metricName?: string }).metricName === 'carebase_job_duration_seconds_count' && v.labels.queue === queue && v.labels.outcome === 'completed').reduce((n, v) => n + v.value, 0);
}

const BACKENDS = [
  { backend: 'redis' as const, env: (prefix: string): Record<string, string> => ({ REDIS_URL, JOBS_KEY_PREFIX: prefix, RATE_LIMIT_STORE: 'memory' }) },
  { backend: 'postgres' as const, env: (): Record<string, string> => ({}) },
];

describe.each(BACKENDS)('schedules on BullMQ job schedulers ($backend)', ({ backend, env: backendEnv }) => {
  const prefix = `cbtest-sched-${randomBytes(4).toString('hex')}`;
  let db: TestDatabase;
  let api1: TestApp;
  let api2: TestApp;
  let worker: WorkerProcess;

  beforeAll(async () => {
    runs.length = 0;
    failing.on = true;
    db = await createTestDatabase();
    const env = {
      ...backendEnv(prefix),
      JOB_WORKERS: 'inline',
      JOB_SCHEDULE_INTERVALS: [...REAL_SCHEDULES, 'testSchedules.tick'].map((n) => `${n}=${EVERY}`).join(','),
    };
    const modules = [testAuthModule, identityModule, auditModule, schedulesModule]; // test tokens first: identity refuses any JWT it did not sign
    api1 = await startTestApp({ db, env, modules });
    api2 = await startTestApp({ db, env, modules });
    const config = loadConfig({
      NODE_ENV: 'test',
      LOG_LEVEL: 'warn',
      DATABASE_URL: db.ownerUrl,
      DATABASE_APP_URL: db.appUrl,
      FEATURES: 'all',
      DATA_DIR: testDataDir(),
      ...env,
    });
    const quiet = new Writable({ write: (_c, _e, cb) => cb() });
    worker = await startWorker(config, { modules, database: db, logger: createLogger('warn', quiet) });
    processOf.set(api1.app.config, 'api1');
    processOf.set(api2.app.config, 'api2');
    processOf.set(config, 'worker');
  }, 60_000);

  afterAll(async () => {
    await api1?.close();
    await api2?.close();
    await worker?.close();
    await db?.drop();
    if (backend === 'redis') await dropRedisPrefix(REDIS_URL, prefix).catch(() => undefined);
  });

  it('runs on the intended backend, with one job scheduler per schedule for all processes', async () => {
    expect(api1.app.background.jobs.kind).toBe(backend);
    expect(worker.jobs.kind).toBe(backend);
    const schedules = await worker.jobs.schedules();
    for (const queue of [...REAL_SCHEDULES, 'testSchedules.tick', 'testSchedules.flaky']) {
      expect(schedules.filter((s) => s.queue === queue)).toEqual([expect.objectContaining({ id: `schedule.${queue}`, every: EVERY })]);
    }
  });

  it('runs each period of a schedule exactly once across two API processes and a worker', { timeout: 60_000 }, async () => {
    const ticks = () => runs.filter((r) => r.job === 'testSchedules.tick');
    await until(() => new Set(ticks().map((r) => r.jobId)).size >= 6, 30_000);
    const seen = ticks();
    // one handler call per period id, never a second one for the same period
    const perPeriod = new Map<string, number>();
    for (const r of seen) perPeriod.set(r.jobId, (perPeriod.get(r.jobId) ?? 0) + 1);
    expect([...perPeriod.values()].every((n) => n === 1)).toBe(true);
    expect(seen.every((r) => r.attempt === 1 && r.jobId.startsWith('repeat:schedule.testSchedules.tick:'))).toBe(true);
    expectOnePerPeriod([...perPeriod.keys()]);
  });

  it('runs the real schedules (audit, platform purges) once per period too, and signs checkpoints', { timeout: 60_000 }, async () => {
    const tenantId = await createTenant(db.owner);
    await appendEvents(db.sql, tenantId, 1);
    await until(async () => (await db.owner`select 1 from audit_checkpoints where tenant_id = ${tenantId}`).length > 0, 30_000);
    const systems: JobSystem[] = [api1.app.background.jobs, api2.app.background.jobs, worker.jobs];
    const registries = [api1.app.metrics.registry, api2.app.metrics.registry, worker.metrics.registry];
    for (const queue of REAL_SCHEDULES) {
      // the completed runs in the queue are the handler completions of the three processes: no period ran twice
      const ids = await until(async () => {
        const jobs = await systems[2]!['queueOrThrow'](queue).getCompleted(0, -1);
        let handled = 0;
        for (const r of registries) handled += await completions(r, queue);
        return jobs.length >= 3 && handled === jobs.length ? jobs.map((j) => j.id!) : null;
      }, 30_000);
      expect(ids.every((id) => id.startsWith(`repeat:schedule.${queue}:`))).toBe(true);
      expectOnePerPeriod(ids);
    }
    // the checkpoint of the tenant's one event was signed once
    const rows = await db.owner<{ seq: string }[]>`select seq from audit_checkpoints where tenant_id = ${tenantId}`;
    expect(rows.map((r) => Number(r.seq))).toEqual([1]);
  });

  it('retries a failing scheduled run, then lists it in the dead-letter queue for platform administrators only', { timeout: 60_000 }, async () => {
    const tenant = randomUUID();
    const platformAdmin = await signTestToken({ userId: randomUUID(), tenantId: tenant, permissions: ['jobs:manage', 'jobs:platform'] });
    const tenantAdmin = await signTestToken({ userId: randomUUID(), tenantId: tenant, permissions: ['jobs:manage'] });
    const DLQ = 'query DLQ($queue: String) { deadLetterJobs(queue: $queue) { id queue schedule attemptsMade failedReason } }';
    type Res = { deadLetterJobs: { id: string; queue: string; schedule: string | null; attemptsMade: number; failedReason: string }[] };
    const dead = await until(async () => {
      const res = await api1.gql<Res>(DLQ, { queue: 'testSchedules.flaky' }, { authorization: `Bearer ${platformAdmin}` });
      return res.body.data?.deadLetterJobs[0];
    }, 30_000);
    expect(dead).toMatchObject({ queue: 'testSchedules.flaky', schedule: 'schedule.testSchedules.flaky', attemptsMade: 2, failedReason: 'CONFLICT: scheduled run failed' });
    expect(dead.id).toMatch(/^repeat:schedule\.testSchedules\.flaky:\d+$/);
    // retried once (attempts: 2), in whichever process took each attempt
    expect(runs.filter((r) => r.jobId === dead.id).map((r) => r.attempt)).toEqual([1, 2]);
    // a failing period does not stop the schedule, and no period ran twice
    const firstAttempts = runs.filter((r) => r.job === 'testSchedules.flaky' && r.attempt === 1).map((r) => r.jobId);
    expect(new Set(firstAttempts).size).toBe(firstAttempts.length);
    expectOnePerPeriod(firstAttempts);

    // a tenant's admin does not see platform-wide runs and cannot retry them
    const other = await api2.gql<Res>(DLQ, { queue: 'testSchedules.flaky' }, { authorization: `Bearer ${tenantAdmin}` });
    expect(other.body.data?.deadLetterJobs).toEqual([]);
    const RETRY = 'mutation R($q: String!, $id: String!) { retryDeadLetterJob(queue: $q, id: $id) }';
    const denied = await api2.gql(RETRY, { q: 'testSchedules.flaky', id: dead.id }, { authorization: `Bearer ${tenantAdmin}` });
    expect(denied.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');

    // fixed: the platform admin retries the dead run, which then succeeds
    failing.on = false;
    const retried = await api2.gql(RETRY, { q: 'testSchedules.flaky', id: dead.id }, { authorization: `Bearer ${platformAdmin}` });
    expect(retried.body).toEqual({ data: { retryDeadLetterJob: true } });
    await until(() => runs.filter((r) => r.jobId === dead.id).length === 3, 15_000);
    await until(async () => {
      const res = await api1.gql<Res>(DLQ, { queue: 'testSchedules.flaky' }, { authorization: `Bearer ${platformAdmin}` });
      return !res.body.data?.deadLetterJobs.some((j) => j.id === dead.id);
    });
  });
});
