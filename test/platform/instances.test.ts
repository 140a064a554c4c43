import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import type { FieldCrypto } from '../../src/platform/crypto/index.js';
import { withTenant } from '../../src/platform/db/index.js';
import { enqueueJob } from '../../src/platform/jobs/index.js';
import { createLogger } from '../../src/platform/logger.js';
import type { ModuleDeps, ModuleManifest } from '../../src/schema/index.js';
import { startWorker, type WorkerProcess } from '../../src/worker.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { testDataDir } from '../helpers/global-setup.js';
import { createTenant, until } from '../helpers/realtime.js';

/**
 * Module instances: init(deps) returns the module's instance, kept per app
 * (never per process or per manifest), reached through the scope, closed in
 * reverse module order; the worker boots the same dependencies as the API
 * (one FieldCrypto per process from src/boot.ts), so a job decrypts what the
 * API encrypted.
 */
interface Probe {
  id: string;
  deps: ModuleDeps;
  crypto: FieldCrypto;
  closed: boolean;
  close(): Promise<void>;
}

const closedOrder: string[] = [];
/** envelopes by id (a job payload carries ids only) and what the job decrypted, by the process that ran it */
const envelopes = new Map<string, Buffer>();
const decrypted: { id: string; plain: string; instance: string }[] = [];

function probeModule(name: string, jobs: ModuleManifest['jobs'] = {}): ModuleManifest {
  return {
    name,
    provides: { 'probe:capability': `from ${name}` },
    phase: 0,
    description: 'test module: its instance records which app it belongs to',
    dependsOn: [],
    entitlement: null,
    jobs,
    async init(deps): Promise<Probe> {
      const probe: Probe = {
        id: randomUUID(),
        deps,
        crypto: deps.crypto,
        closed: false,
        async close() {
          probe.closed = true;
          closedOrder.push(`${name}:${probe.id}`);
        },
      };
      return probe;
    },
  };
}

const probeA = probeModule('probeA', {
  'probeA.decrypt': async (payload, ctx) => {
    const probe = ctx.scope.module<Probe>('probeA');
    const id = String(payload.secretId);
    const plain = await probe.crypto.decrypt(envelopes.get(id)!, { tenantId: ctx.tenantId!, table: 'probe', column: 'secret' });
    decrypted.push({ id, plain, instance: probe.id });
  },
});
const probeB = probeModule('probeB');
const modules = [probeA, probeB];

const instanceOf = (t: TestApp, name: string) => t.app.scopes.create({ door: 'job', principal: null }).module<Probe>(name);

describe('module instances', () => {
  let db: TestDatabase;
  let api1: TestApp;
  let api2: TestApp;
  let worker: WorkerProcess | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
    // the API relays the outbox into the queues but runs no job: the worker process does
    api1 = await startTestApp({ db, modules, env: { JOB_WORKERS: 'off' } });
    api2 = await startTestApp({ db, modules, env: { JOB_WORKERS: 'off' } });
  }, 60_000);

  afterAll(async () => {
    await worker?.close();
    await api1?.close();
    await api2?.close();
    await db?.drop();
  });

  it('gives each app in one process its own instance of the same manifest', () => {
    const a1 = instanceOf(api1, 'probeA');
    const a2 = instanceOf(api2, 'probeA');
    expect(a1.id).not.toBe(a2.id);
    expect(a1.deps.config).toBe(api1.app.config);
    expect(a2.deps.config).toBe(api2.app.config);
    // the app's shared dependencies, not copies
    expect(a1.deps.database).toBe(api1.app.database);
    expect(instanceOf(api1, 'probeB').crypto).toBe(a1.crypto);
    expect(a1.crypto).not.toBe(a2.crypto);
    expect(() => api1.app.scopes.create({ door: 'job', principal: null }).module('nope')).toThrow(/no instance/);
  });

  it('hands every door what the enabled modules provide, in module order, per app', () => {
    const scope = api1.app.scopes.create({ door: 'job', principal: null });
    expect(scope.provided<string>('probe:capability')).toEqual(['from probeA', 'from probeB']);
    expect(scope.provided('nobody:provides')).toEqual([]);
    // kept per app: the other app's registry holds its own entries, not a second copy in one process-wide map
    expect(api2.app.scopes.create({ door: 'job', principal: null }).provided('probe:capability')).toHaveLength(2);
  });

  it('the worker gives a job its module instance with the same FieldCrypto-backed behaviour as the API', { timeout: 30_000 }, async () => {
    const config = loadConfig({
      NODE_ENV: 'test',
      LOG_LEVEL: 'warn',
      DATABASE_URL: db.ownerUrl,
      DATABASE_APP_URL: db.appUrl,
      FEATURES: 'all',
      DATA_DIR: testDataDir(),
    });
    const quiet = new Writable({ write: (_c, _e, cb) => cb() });
    worker = await startWorker(config, { modules, database: db, logger: createLogger('warn', quiet) });

    const tenantId = await createTenant(db.sql);
    const secretId = randomUUID();
    // encrypted by the API's instance (its FieldCrypto), decrypted by the worker's
    envelopes.set(secretId, await instanceOf(api1, 'probeA').crypto.encrypt('123-45-6789', { tenantId, table: 'probe', column: 'secret' }));
    await withTenant(db.sql, tenantId, (tx) => enqueueJob(tx, { job: 'probeA.decrypt', tenantId, aggregateId: secretId, payload: { secretId } }));
    await until(() => decrypted.length > 0, 20_000);
    expect(decrypted).toHaveLength(1);
    expect(decrypted[0]!.plain).toBe('123-45-6789');
    const apiInstances = [instanceOf(api1, 'probeA').id, instanceOf(api2, 'probeA').id];
    expect(apiInstances).not.toContain(decrypted[0]!.instance);
  });

  it('closes an app\u2019s instances in reverse module order, leaving the other app\u2019s open', async () => {
    const a2 = instanceOf(api2, 'probeA');
    const b2 = instanceOf(api2, 'probeB');
    const a1 = instanceOf(api1, 'probeA');
    closedOrder.length = 0;
    await api2.close();
    expect(closedOrder).toEqual([`probeB:${b2.id}`, `probeA:${a2.id}`]);
    expect(a1.closed).toBe(false);
    // the other app still serves with its own instance
    expect(instanceOf(api1, 'probeA').id).toBe(a1.id);
    const res = await api1.gql<{ serverInfo: { version: string } }>('{ serverInfo { version } }');
    expect(res.body.errors).toBeUndefined();
  });
});
