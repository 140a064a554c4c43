import { createPostgresBackend, createRedisBackend, Queue, runMigrations as runBullmqMigrations, Worker, type Job, type QueueOptions, type WorkerOptions } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { Logger } from '../logger.js';

/** PostgreSQL schema of BullMQ's tables (created by the jobs migration, filled by BullMQ's migrator). */
export const BULLMQ_SCHEMA = 'bullmq';

export type JobProcessor = (job: Job) => Promise<unknown>;

/**
 * The one place where the queue datastore is chosen: BullMQ on Redis when
 * REDIS_URL is set, on BullMQ's PostgreSQL backend otherwise. Everything
 * above this (queues, workers, schedulers, the relay, the admin API) is the
 * same code for both.
 */
export interface JobBackend {
  kind: 'redis' | 'postgres';
  queue(name: string, opts?: Omit<QueueOptions, 'connection'>): Queue;
  worker(name: string, processor: JobProcessor, opts?: Omit<WorkerOptions, 'connection'>): Worker;
  close(): Promise<void>;
}

export interface JobBackendOptions {
  redisUrl?: string;
  /** Redis key prefix (Redis only; PostgreSQL namespaces by database + schema) */
  prefix: string;
  /** app-role URL (PostgreSQL backend) */
  appUrl: string;
  /** owner URL: BullMQ's schema migrations run as the owner, never as the app role */
  ownerUrl: string;
  /** PostgreSQL pool size for queues + workers (each worker holds one LISTEN connection) */
  poolMax: number;
  /** every queue this process uses (PostgreSQL: their id sequences are created up front, as the owner) */
  queues: readonly string[];
  log: Logger;
}

export async function createJobBackend(opts: JobBackendOptions): Promise<JobBackend> {
  if (opts.redisUrl) return createRedisJobBackend(opts.redisUrl, opts.prefix, opts.log);
  await migrateBullmqSchema(opts.ownerUrl, opts.queues);
  return createPostgresJobBackend(opts.appUrl, opts.poolMax, opts.log);
}

function createRedisJobBackend(url: string, prefix: string, log: Logger): JobBackend {
  // BullMQ requires maxRetriesPerRequest: null on connections it blocks on.
  const connection = new Redis(url, { maxRetriesPerRequest: null, lazyConnect: false });
  connection.on('error', (e) => log.warn({ errorName: e.name, code: (e as { code?: string }).code }, 'jobs: redis connection error'));
  const opened: { close(): Promise<void> }[] = [];
  return {
    kind: 'redis',
    queue(name, o = {}) {
      const q = new Queue(name, { ...o, connection, prefix }, createRedisBackend);
      q.on('error', (e) => log.warn({ queue: name, errorName: e.name }, 'jobs: queue error'));
      opened.push(q);
      return q;
    },
    worker(name, processor, o = {}) {
      const w = new Worker(name, processor, { ...o, connection, prefix }, createRedisBackend);
      opened.push(w);
      return w;
    },
    async close() {
      await Promise.allSettled(opened.map((c) => c.close()));
      connection.disconnect();
    },
  };
}

function createPostgresJobBackend(appUrl: string, poolMax: number, log: Logger): JobBackend {
  // One pool for every queue and worker, connected as the app role with the
  // BullMQ schema first on the search_path (BullMQ's SQL uses unqualified names).
  const pool = new pg.Pool({
    connectionString: appUrl,
    max: poolMax,
    idleTimeoutMillis: 30_000,
    application_name: 'carebase-jobs',
    options: `-c search_path=${BULLMQ_SCHEMA}`,
    keepAlive: true,
  });
  // the pool's errors (an idle connection dropped, e.g. by a PostgreSQL restart) are reported here, once
  pool.on('error', (e) => log.warn({ errorName: e.name, code: (e as { code?: string }).code }, 'jobs: postgres pool error'));
  const opened: { close(): Promise<void> }[] = [];
  // The pool is ours (BullMQ leaves caller-owned pools open); its type is structurally BullMQ's PgPool.
  const connection = sharedPoolView(pool) as unknown as string;
  return {
    kind: 'postgres',
    queue(name, o = {}) {
      const q = new Queue(name, { ...o, connection } as QueueOptions<string>, createPostgresBackend);
      q.on('error', (e) => log.warn({ queue: name, errorName: e.name }, 'jobs: queue error'));
      opened.push(q);
      return q as unknown as Queue;
    },
    worker(name, processor, o = {}) {
      const w = new Worker(name, processor, { ...o, connection } as WorkerOptions<string>, createPostgresBackend);
      opened.push(w);
      return w as unknown as Worker;
    },
    async close() {
      await Promise.allSettled(opened.map((c) => c.close()));
      await pool.end();
    },
  };
}

/**
 * The shared pool as BullMQ's queues and workers see it. BullMQ builds one PostgresConnection per Queue and per
 * Worker, and each adds an 'error' listener to the pool it is given and never removes it (its close() leaves a
 * caller-owned pool alone). On one shared pool that made one listener per queue and per worker: past Node's limit of
 * 10 with 7 jobs (MaxListenersExceededWarning ... [BoundPool], plain text on stderr; raising the limit only moved
 * the threshold as modules add jobs), a listener leaked for every queue or worker closed and opened again on the
 * pool, and every idle-connection error of a PostgreSQL restart was logged once per queue and worker. The pool's
 * errors are reported once (the listener above); this view takes the per-connection 'error' subscriptions without
 * adding them to the pool and passes everything else through.
 */
function sharedPoolView(pool: pg.Pool): pg.Pool {
  const subscribe = new Set<PropertyKey>(['on', 'addListener', 'once', 'prependListener', 'prependOnceListener']);
  const view: pg.Pool = new Proxy(pool, {
    get(target, prop) {
      if (subscribe.has(prop)) {
        const add = Reflect.get(target, prop, target) as (event: string | symbol, listener: (...a: unknown[]) => void) => unknown;
        return (event: string | symbol, listener: (...a: unknown[]) => void) => (event === 'error' ? view : (add.call(target, event, listener), view));
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return view;
}

/**
 * Brings BullMQ's PostgreSQL schema up to date as the owner (idempotent,
 * serialised by BullMQ's advisory lock), then grants the app role data
 * access to what it created.
 */
export async function migrateBullmqSchema(ownerUrl: string, queues: readonly string[] = []): Promise<void> {
  const client = new pg.Client({ connectionString: ownerUrl, application_name: 'carebase-jobs-migrate' });
  await client.connect();
  try {
    await client.query('SET client_min_messages = warning');
    await client.query('SELECT pg_advisory_lock(hashtext($1))', ['carebase:bullmq:grants']);
    await runBullmqMigrations(client, BULLMQ_SCHEMA);
    // BullMQ creates a job-id sequence per queue on first use; the app role has
    // no CREATE on the schema, so the owner creates them for the known queues.
    for (const q of queues) {
      const { rows } = await client.query<{ name: string }>(`SELECT ${BULLMQ_SCHEMA}.job_id_seq_name($1) AS name`, [q]);
      await client.query(`CREATE SEQUENCE IF NOT EXISTS ${BULLMQ_SCHEMA}."${rows[0]!.name.replace(/"/g, '')}"`);
    }
    await client.query(`GRANT USAGE ON SCHEMA ${BULLMQ_SCHEMA} TO carebase_app`);
    await client.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${BULLMQ_SCHEMA} TO carebase_app`);
    await client.query(`GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA ${BULLMQ_SCHEMA} TO carebase_app`);
    await client.query('SELECT pg_advisory_unlock(hashtext($1))', ['carebase:bullmq:grants']);
  } finally {
    await client.end();
  }
}
