import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { withTenant } from '../../src/platform/db/index.js';
import { emitEvent } from '../../src/platform/jobs/index.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createTenant, dropRedisPrefix, testAuthModule, until } from '../helpers/realtime.js';
import { jobsModule } from './fixtures/jobs-module.js';
import { enableTenantRls } from '../helpers/rls.js';

/**
 * Exactly-once effects with a real worker process that is SIGKILLed mid-job
 * and restarted, on both backends. The API (relay, queues) runs here with
 * JOB_WORKERS=off; workers are `tsx test/platform/fixtures/job-worker.ts`
 * (src/worker.ts's startWorker with the test jobs module).
 */
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const WORKER = path.resolve('test/platform/fixtures/job-worker.ts');

interface Worker {
  child: ChildProcess;
  lines: string[];
  waitFor(prefix: string, timeoutMs?: number): Promise<string>;
}

describe.each([
  ['postgres', {} as Record<string, string>],
  ['redis', { REDIS_URL, JOBS_KEY_PREFIX: `cbtest-crash-${randomBytes(4).toString('hex')}` }],
])('a worker killed mid-job (%s backend)', (kind, backendEnv) => {
  let t: TestApp;
  let tenant: string;
  const children: ChildProcess[] = [];
  process.once('exit', () => children.forEach((c) => c.kill('SIGKILL')));

  function startWorkerProcess(crashMode?: 'before-commit' | 'after-commit'): Worker {
    // node --import tsx: one process (the tsx CLI would fork a grandchild that SIGKILL does not reach)
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
      env: {
        ...process.env,
        NODE_ENV: 'test',
        LOG_LEVEL: 'warn',
        FEATURES: 'all',
        DATABASE_URL: t.db.ownerUrl,
        DATABASE_APP_URL: t.db.appUrl,
        ...backendEnv,
        ...(crashMode ? { CRASH_MODE: crashMode } : {}),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    const lines: string[] = [];
    let buf = '';
    const waiters: (() => void)[] = [];
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop()!;
      lines.push(...parts);
      for (const w of waiters.splice(0)) w();
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code, sig) => (stderr += `\n[exit ${code} ${sig}]`));
    return {
      child,
      lines,
      waitFor(prefix, timeoutMs = 90_000) {
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`worker never printed ${prefix}; stderr: ${stderr.slice(-2000)}`)), timeoutMs);
          const check = () => {
            const hit = lines.find((l) => l.startsWith(prefix));
            if (hit) {
              clearTimeout(timer);
              resolve(hit);
            } else waiters.push(check);
          };
          check();
        });
      },
    };
  }

  function kill9(w: Worker): Promise<void> {
    return new Promise((resolve) => {
      w.child.once('exit', () => resolve());
      w.child.kill('SIGKILL');
    });
  }

  async function effects(jobId: string): Promise<number> {
    const [row] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from test_effects where job_id = ${jobId}`;
    return row!.n;
  }

  async function emit(): Promise<string> {
    const patientId = randomUUID();
    return withTenant(t.db.sql, tenant, (db) => emitEvent(db, { type: 'patient.updated', tenantId: tenant, aggregateId: patientId, payload: { patientId } }));
  }

  async function jobState(id: string): Promise<string | undefined> {
    const queue = (t.app.background.jobs as unknown as { queueOrThrow(n: string): { getJob(id: string): Promise<{ getState(): Promise<string> } | undefined> } }).queueOrThrow(
      'testJobs.recordEffect',
    );
    return (await queue.getJob(id))?.getState();
  }

  beforeAll(async () => {
    t = await startTestApp({ modules: [testAuthModule, jobsModule], env: { ...backendEnv, JOB_WORKERS: 'off' } });
    expect(t.app.background.jobs.kind).toBe(kind);
    tenant = await createTenant(t.db.sql);
    await t.db.owner`create table test_effects (job_id text not null, queue text not null, patient_id text not null, tenant_id uuid not null default carebase_current_tenant() references tenants(id))`;
    await enableTenantRls(t.db.owner, 'test_effects');
    await t.db.owner`grant select, insert on test_effects to carebase_app`;
  });

  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });

  afterAll(async () => {
    await t?.close();
    if (backendEnv.JOBS_KEY_PREFIX) await dropRedisPrefix(REDIS_URL, backendEnv.JOBS_KEY_PREFIX);
  });

  it('killed before the effect commits: the restarted worker applies it exactly once', async () => {
    const a = startWorkerProcess('before-commit');
    await a.waitFor('READY');
    const id = await emit();
    await a.waitFor(`MIDJOB ${id}`);
    await kill9(a);
    expect(await effects(id)).toBe(0); // the killed transaction rolled back

    const b = startWorkerProcess();
    await b.waitFor('READY');
    await b.waitFor(`APPLIED ${id}`);
    await until(async () => (await jobState(id)) === 'completed');
    expect(await effects(id)).toBe(1);
    await kill9(b);
  });

  it('killed after the effect commits but before the job completes: the rerun skips it', async () => {
    const a = startWorkerProcess('after-commit');
    await a.waitFor('READY');
    const id = await emit();
    await a.waitFor(`COMMITTED ${id}`);
    await kill9(a);
    expect(await effects(id)).toBe(1);
    expect(await jobState(id)).toBe('active'); // the dead worker never completed it

    const b = startWorkerProcess();
    await b.waitFor('READY');
    await b.waitFor(`SKIPPED ${id}`); // redelivered to the handler, effect not applied again
    await until(async () => (await jobState(id)) === 'completed');
    expect(await effects(id)).toBe(1);
    expect(b.lines.filter((l) => l === `APPLIED ${id}`)).toHaveLength(0);
    await kill9(b);
  });

  it('a graceful SIGTERM lets the active job finish', async () => {
    const w = startWorkerProcess();
    await w.waitFor('READY');
    const id = await emit();
    await w.waitFor(`APPLIED ${id}`);
    const exited = new Promise<number | null>((resolve) => w.child.once('exit', (code) => resolve(code)));
    w.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await until(async () => (await jobState(id)) === 'completed');
    expect(await effects(id)).toBe(1);
  });
}, 180_000);
