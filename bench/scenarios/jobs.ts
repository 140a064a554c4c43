/**
 * jobs: throughput end to end, from committed outbox rows to the handler,
 * on BullMQ's PostgreSQL backend and (with redisUrl) on Redis.
 *
 * For each backend: a real app (createApp, JOB_WORKERS=inline) with a bench
 * module whose job subscribes to `bench.ping`; N events are committed to the
 * outbox while the relay is stopped, then a relay is started and the clock
 * runs until the handler has seen all N (claim -> enqueue -> worker ->
 * handler). A second pass does the same with a handler that applies its
 * effect through JobContext.once (one transaction + processed_jobs row per
 * job), the exactly-once path real handlers use.
 *
 * Env: BENCH_JOBS (default 20000), BENCH_JOBS_CONCURRENCY (per worker, default 200).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { createApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { tenants } from '../../src/db/schema.js';
import { appUrlFor, withTenant } from '../../src/platform/db/index.js';
import { createJobBackend, emitEvent, OutboxRelay } from '../../src/platform/jobs/index.js';
import { createLogger } from '../../src/platform/logger.js';
import type { ModuleManifest } from '../../src/schema/index.js';

export interface RunOptions {
  baseUrl?: string;
  redisUrl?: string;
  databaseUrl: string;
}

const N = Number(process.env.BENCH_JOBS ?? 20_000);
const CONCURRENCY = Number(process.env.BENCH_JOBS_CONCURRENCY ?? 200);

interface Counter {
  target: number;
  seen: number;
  done?: () => void;
}

function benchModule(counter: Counter, mode: 'plain' | 'once'): ModuleManifest {
  return {
    name: 'bench-jobs',
    phase: 0,
    description: 'benchmark job',
    dependsOn: [],
    jobs: {
      'bench.ping': {
        on: ['bench.ping'],
        attempts: 3,
        concurrency: CONCURRENCY,
        handler: async (_payload, ctx) => {
          if (mode === 'once') await ctx.once(async (db) => db.execute(sql`select 1`));
          counter.seen++;
          if (counter.seen >= counter.target) counter.done?.();
        },
      },
    },
  };
}

async function pass(opts: RunOptions, backend: 'postgres' | 'redis', mode: 'plain' | 'once'): Promise<number> {
  const prefix = `cbbench-${randomBytes(4).toString('hex')}`;
  const config = loadConfig({
    ...process.env,
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    DATABASE_URL: opts.databaseUrl,
    REDIS_URL: backend === 'redis' ? opts.redisUrl : '',
    JOB_WORKERS: 'inline',
    JOBS_KEY_PREFIX: prefix,
    FEATURES: 'all',
    DATABASE_POOL_MAX: '40',
  });
  const counter: Counter = { target: N, seen: 0 };
  const app: App = await createApp(config, { modules: [benchModule(counter, mode)], logger: createLogger('warn'), background: { relay: false } });
  try {
    const tenantId = randomUUID();
    await withTenant(app.database.sql, tenantId, (db) => db.insert(tenants).values({ id: tenantId, slug: `bench-${tenantId.slice(0, 8)}`, name: 'Bench clinic' }));
    // commit N events (relay stopped), in transactions of 1000
    for (let i = 0; i < N; i += 1000) {
      await withTenant(app.database.sql, tenantId, async (db) => {
        for (let j = i; j < Math.min(N, i + 1000); j++) await emitEvent(db, { type: 'bench.ping', tenantId, aggregateId: `p${j}`, payload: { seq: j } });
      });
    }
    const finished = new Promise<void>((resolve) => (counter.done = resolve));
    const started = process.hrtime.bigint();
    const relay = new OutboxRelay({ database: app.database, log: app.log, registry: app.metrics.registry, jobs: app.background.jobs, batchSize: 1000 });
    await relay.start();
    await finished;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    await relay.close();
    return N / seconds;
  } finally {
    await app.close();
    if (backend === 'redis' && opts.redisUrl) await dropPrefix(opts.redisUrl, prefix);
  }
}

async function dropPrefix(url: string, prefix: string) {
  const { Redis } = await import('ioredis');
  const r = new Redis(url, { maxRetriesPerRequest: 1 });
  let cursor = '0';
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await r.del(...keys);
  } while (cursor !== '0');
  r.disconnect();
}

/**
 * Baseline measured in the same run: bare BullMQ on the same datastore and
 * settings (addBulk of N jobs in chunks of 1000 while a worker with the same
 * concurrency drains them; no outbox, no relay, no platform wrapper).
 */
async function baseline(opts: RunOptions, backend: 'postgres' | 'redis'): Promise<number> {
  const prefix = `cbbench-${randomBytes(4).toString('hex')}`;
  const log = createLogger('warn');
  const config = loadConfig({ ...process.env, NODE_ENV: 'test', DATABASE_URL: opts.databaseUrl, LOG_LEVEL: 'warn' });
  const appUrl = config.databaseAppUrl ?? appUrlFor(opts.databaseUrl);
  const backendImpl = await createJobBackend({
    redisUrl: backend === 'redis' ? opts.redisUrl : undefined,
    prefix,
    appUrl,
    ownerUrl: opts.databaseUrl,
    poolMax: 10,
    queues: ['bench.raw'],
    log,
  });
  const queue = backendImpl.queue('bench.raw');
  let seen = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const worker = backendImpl.worker(
    'bench.raw',
    async () => {
      if (++seen >= N) done();
    },
    { concurrency: CONCURRENCY },
  );
  await worker.waitUntilReady();
  const run = randomBytes(4).toString('hex');
  const started = process.hrtime.bigint();
  for (let i = 0; i < N; i += 1000) {
    await queue.addBulk(
      Array.from({ length: Math.min(1000, N - i) }, (_, j) => ({
        name: 'bench.raw',
        data: { tenantId: null, payload: { seq: i + j } },
        opts: { jobId: `r${run}-${i + j}`, attempts: 3, removeOnComplete: { age: 3600, count: 50_000 }, stackTraceLimit: 0 },
      })),
    );
  }
  await finished;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await queue.obliterate({ force: true }).catch(() => undefined);
  await backendImpl.close();
  if (backend === 'redis' && opts.redisUrl) await dropPrefix(opts.redisUrl, prefix);
  return N / seconds;
}

export async function run(opts: RunOptions): Promise<Record<string, number>> {
  const out: Record<string, number> = { jobs: N, concurrency: CONCURRENCY };
  // BENCH_JOBS_BACKENDS=redis skips the (slow) PostgreSQL-backend passes, e.g. for a 20,000-job Redis figure
  const backends = (process.env.BENCH_JOBS_BACKENDS ?? 'postgres,redis').split(',');
  if (backends.includes('postgres')) {
    out.postgres_bullmq_baseline_jobs_per_s = Math.round(await baseline(opts, 'postgres'));
    out.postgres_jobs_per_s = Math.round(await pass(opts, 'postgres', 'plain'));
    out.postgres_once_jobs_per_s = Math.round(await pass(opts, 'postgres', 'once'));
    out.postgres_ratio_vs_baseline = Number((out.postgres_jobs_per_s / out.postgres_bullmq_baseline_jobs_per_s).toFixed(2));
  }
  if (opts.redisUrl && backends.includes('redis')) {
    out.redis_bullmq_baseline_jobs_per_s = Math.round(await baseline(opts, 'redis'));
    out.redis_jobs_per_s = Math.round(await pass(opts, 'redis', 'plain'));
    out.redis_once_jobs_per_s = Math.round(await pass(opts, 'redis', 'once'));
    out.redis_ratio_vs_baseline = Number((out.redis_jobs_per_s / out.redis_bullmq_baseline_jobs_per_s).toFixed(2));
  }
  return out;
}

// standalone: tsx bench/scenarios/jobs.ts (DATABASE_URL required, REDIS_URL optional)
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/bench\//, '/bench/'))) {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is required');
  console.log(await run({ databaseUrl, redisUrl: process.env.REDIS_URL }));
  process.exit(0);
}
